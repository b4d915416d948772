package vn.congdan.core

import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestInstance
import org.junit.jupiter.api.assertThrows
import java.nio.file.Files

/** Login, session state, refresh and logout through the real library against a real server. */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class IdentityBindingTest {
    // Access tokens live 3 s here, so the test sees them expire and get refreshed.
    private val server = TestServer("--access-token-ttl", "3", "--auth-rate-burst", "200")
    private val redirectUri = "http://127.0.0.1:1/callback"

    @AfterAll
    fun stop() = server.close()

    private fun openCore(keystore: Keystore = SoftwareP256Keystore(), dataDir: String = Files.createTempDirectory("congdan-core").toString()) =
        CongdanCore.open(CoreSettings(dataDir, server.url), SwitchableNetwork(), keystore)

    private suspend fun login(core: CongdanCore, user: String): AccountInfo {
        val request = core.identity().loginStart(redirectUri)
        assertTrue(request.authorizeUrl.contains("code_challenge_method=S256"))
        val callback = DemoBrowser.login(request.authorizeUrl, redirectUri, user)
        return core.identity().loginFinish(callback)
    }

    @Test
    fun `a resident logs in, calls the server, survives expiry by refresh, and is locked out after logout`() = runBlocking {
        val keystore = SoftwareP256Keystore()
        val dataDir = Files.createTempDirectory("congdan-core").toString()
        val core = openCore(keystore, dataDir)
        val identity = core.identity()
        assertEquals(SessionState.LoggedOut, identity.sessionState())
        assertThrows<CongdanException.LoginRequired> { runBlocking { identity.account() } }

        val account = login(core, "lan")
        assertEquals("Nguyễn Thị Lan", account.displayName)
        assertEquals("079*******45", account.nationalIdMasked)
        assertTrue("resident" in account.roles)
        val state = identity.sessionState()
        assertTrue(state is SessionState.Active, "$state")
        assertTrue(keystore.signatures > 0, "the device key signed the DPoP proofs")

        // An authenticated call, and a sync of the public and the account feed.
        assertEquals(account.accountId, identity.account().accountId)
        assertEquals(SyncState.UP_TO_DATE, core.sync(null).state)

        // The access token expires; the next calls refresh it (several at once: one refresh).
        Thread.sleep(4_000)
        val results = (1..4).map { async { identity.account() } }.awaitAll()
        assertTrue(results.all { it.accountId == account.accountId })

        // The app restarts: the session is still there (sealed, unwrapped by the keystore).
        val reopened = openCore(keystore, dataDir)
        assertEquals(account.accountId, reopened.identity().account().accountId)

        // Another device's keystore cannot open this session: a typed platform error, no crash.
        val stranger = openCore(SoftwareP256Keystore(), dataDir)
        assertThrows<CongdanException.Platform> { runBlocking { stranger.identity().account() } }

        // Logout: revoked on the server, wiped here, the catalog kept.
        val procedures = reopened.catalog().status().procedureCount
        assertTrue(reopened.identity().logout())
        assertEquals(SessionState.LoggedOut, reopened.identity().sessionState())
        assertThrows<CongdanException.LoginRequired> { runBlocking { reopened.identity().account() } }
        assertEquals(procedures, reopened.catalog().status().procedureCount)
        assertEquals(SyncState.UP_TO_DATE, reopened.sync(null).state)
    }

    @Test
    fun `a forged or stale callback is refused with its own error and the login can still finish`() = runBlocking {
        val core = openCore()
        val identity = core.identity()
        assertThrows<CongdanException.LoginFailed> { runBlocking { identity.loginFinish("$redirectUri?code=x&state=y") } }
            .also { assertEquals("no_pending_login", it.code) }

        val request = identity.loginStart(redirectUri)
        val forged = assertThrows<CongdanException.LoginFailed> {
            runBlocking { identity.loginFinish("$redirectUri?code=attacker&state=not-the-state") }
        }
        assertEquals("state_mismatch", forged.code)
        assertTrue(forged.messageVi.isNotBlank() && forged.messageEn.isNotBlank())
        assertFalse(forged.detail.contains(request.state), "the state is not echoed in errors")

        val callback = DemoBrowser.login(request.authorizeUrl, redirectUri, "staff")
        val staff = identity.loginFinish(callback)
        assertTrue(staff.roles.any { it.startsWith("agency:") }, "${staff.roles}")

        // The same code again (a replayed redirect): refused by the server.
        identity.loginStart(redirectUri)
        val pendingState = Regex("state=([^&]+)").find(callback)!!.groupValues[1]
        val replay = assertThrows<CongdanException.LoginFailed> { runBlocking { identity.loginFinish(callback) } }
        assertTrue(replay.code == "state_mismatch" || replay.code == "code_rejected", "${replay.code} $pendingState")
    }

    @Test
    fun `a declined login is a typed error and leaves no session`() = runBlocking {
        val core = openCore()
        val request = core.identity().loginStart(redirectUri)
        val denied = "$redirectUri?error=access_denied&state=${request.state}"
        val e = assertThrows<CongdanException.LoginFailed> { runBlocking { core.identity().loginFinish(denied) } }
        assertEquals("denied", e.code)
        assertEquals(SessionState.LoggedOut, core.identity().sessionState())
    }
    @Test
    fun `the identity credential is shown as a QR with only the chosen fields and checked offline at a desk`() = runBlocking {
        val core = openCore()
        login(core, "ba")
        val held = core.credential().refresh()
        assertEquals(
            listOf(CredentialAttribute.FULL_NAME, CredentialAttribute.NATIONAL_ID, CredentialAttribute.BIRTH_DATE,
                CredentialAttribute.AGE_OVER18, CredentialAttribute.AGE_OVER60),
            held.fields.map { it.attribute },
        )
        val nationalId = held.fields.first { it.attribute == CredentialAttribute.NATIONAL_ID }.value

        // A desk device that never logs in keeps the city's keys.
        val desk = openCore().identityVerifier()
        assertEquals(1u, desk.updateKeys())

        val code = core.credential().present(listOf(CredentialAttribute.FULL_NAME, CredentialAttribute.AGE_OVER60))
        assertFalse(code.text.contains(nationalId))
        assertTrue(code.size > 0u && code.rows.size == code.size.toInt())
        val check = desk.verify(code.text)
        assertTrue(check.accepted, check.messageEn)
        assertEquals(listOf("Họ và tên", "Đủ 60 tuổi"), check.fields.map { it.labelVi })
        assertEquals(listOf("Đặng Văn Ba", "true"), check.fields.map { it.value })
        assertEquals(CredentialAttribute.AGE_OVER60, check.fields[1].attribute)

        val refused = desk.verify(code.text.dropLast(2) + if (code.text.endsWith("AA")) "BB" else "AA")
        assertFalse(refused.accepted)
        assertTrue(refused.refusalCode.isNotEmpty() && refused.messageVi.isNotBlank())

        core.identity().logout()
        assertEquals(null, core.credential().held())
    }
}
