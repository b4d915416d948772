package vn.congdan.core

import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import java.io.File
import java.nio.file.Files

/**
 * Issue 6 from Kotlin: the demo agency (`staff`, a second core) asks Lan to sign a PDF; her phone
 * syncs the request, keeps the checked document, approves while the server is down (the keystore
 * is asked for her presence), and the decision goes when the server is back; the agency's bundle
 * carries the approval. Both sides drive the real library through the generated bindings.
 */
class SigningBindingTest {
    private val redirectUri = "http://127.0.0.1:1/callback"

    private suspend fun loggedIn(url: String, user: String, keystore: SoftwareP256Keystore): CongdanCore {
        val core = CongdanCore.open(
            CoreSettings(Files.createTempDirectory("congdan-$user").toString(), url),
            SwitchableNetwork(),
            keystore,
        )
        val request = core.identity().loginStart(redirectUri)
        core.identity().loginFinish(DemoBrowser.login(request.authorizeUrl, redirectUri, user))
        assertEquals(SyncState.UP_TO_DATE, core.sync(null).state)
        return core
    }

    @Test
    fun `a PDF approved offline reaches the agency once the server is back`() = runBlocking {
        var server = TestServer("--auth-rate-burst", "200")
        try {
            val lanKeys = SoftwareP256Keystore()
            val lan = loggedIn(server.url, "lan", lanKeys)
            val staff = loggedIn(server.url, "staff", SoftwareP256Keystore())
            val pdf = "%PDF-1.4\n% hop dong thue nha\n%%EOF\n".toByteArray()
            val summary = "Hợp đồng thuê nhà 12 tháng, 5.000.000 đồng/tháng."
            val agency = staff.signing().agency()
            val created = agency.create(
                NewSigningRequest("079165012345", "Hợp đồng thuê nhà", summary, "Xác nhận hợp đồng",
                    (System.currentTimeMillis() / 1000 + 86_400).toULong()),
                pdf,
            )
            val id = created.id
            assertEquals(RequestState.PENDING, created.state)
            assertEquals("079*******45", created.residentNationalIdMasked)
            assertEquals(pdf.size.toULong(), created.documentSize)
            assertEquals(null, created.decision)
            val listed = agency.list(RequestState.PENDING, null)
            assertEquals(listOf(id), listed.requests.map { it.id })
            assertEquals("079*******45", listed.requests.single().residentNationalIdMasked)
            assertEquals(null, listed.nextCursor)

            lan.sync(null)
            val signing = lan.signing()
            val pending = signing.list(RequestState.PENDING).single()
            assertEquals(id, pending.id)
            assertEquals(summary, pending.summary)
            assertEquals(null, pending.documentPath)
            // Not before the document was read.
            assertThrows<CongdanException.InvalidInput> { signing.approve(id) }
            val path = signing.fetchDocument(id)
            assertTrue(pdf.contentEquals(File(path).readBytes()))

            // The server is down: the document stays readable, the approval is signed and queued.
            server.close()
            assertEquals(path, signing.show(id).documentPath)
            signing.approve(id)
            assertEquals(1, lanKeys.presenceReasons.size)
            assertTrue(lanKeys.presenceReasons[0].contains("Hợp đồng thuê nhà"))
            assertEquals(DecisionStatus.QUEUED, signing.show(id).decisionStatus)
            assertEquals(SignatureDecision.APPROVE, signing.show(id).decision)

            server = TestServer("--auth-rate-burst", "200", dir = server.dir, port = server.port)
            lan.outboxWakeup()
            val sent = lan.sendOutbox()
            assertTrue(sent.sent >= 1u && sent.rejected == 0u, "$sent")
            val done = signing.show(id)
            assertEquals(DecisionStatus.SENT, done.decisionStatus)
            assertEquals(RequestState.SIGNED, done.state)
            assertNotNull(signing.outbox(id).single { it.kind == "signature.decision" })

            // The agency reads the result and the bundle as records.
            val result = agency.get(id)
            assertEquals(RequestState.SIGNED, result.state)
            assertEquals(SignatureDecision.APPROVE, result.decision?.decision)
            assertEquals(result.decidedAt, result.decision?.decidedAt)
            val bundle = agency.bundle(id)
            assertEquals(id, bundle.requestId)
            assertEquals(SignatureDecision.APPROVE, bundle.decision)
            assertEquals(summary, bundle.summary)
            assertTrue(bundle.decisionStatement.publicKeyPem.contains("BEGIN PUBLIC KEY"))
            assertNotNull(bundle.decisionStatement.signatureDer)
            assertEquals(bundle.attestation.part.publicKeyPem, bundle.serverPublicKeyPem)
            assertEquals(bundle.deviceKeyId, bundle.attestation.deviceKeyId)
        } finally {
            server.close()
        }
    }
}
