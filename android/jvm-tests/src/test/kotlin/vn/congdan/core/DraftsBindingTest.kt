package vn.congdan.core

import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestInstance
import org.junit.jupiter.api.assertThrows
import java.nio.file.Files

/** A hotline report drafted offline and submitted exactly once, through the real library. */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class DraftsBindingTest {
    private val server = TestServer("--auth-rate-burst", "200")
    private val redirectUri = "http://127.0.0.1:1/callback"

    @AfterAll
    fun stop() = server.close()

    @Test
    fun `draft offline, fill with live checks, submit, send once, follow the case`() = runBlocking {
        val network = SwitchableNetwork()
        val core = CongdanCore.open(
            CoreSettings(Files.createTempDirectory("congdan-core").toString(), server.url),
            network,
            SoftwareP256Keystore(),
        )
        val request = core.identity().loginStart(redirectUri)
        core.identity().loginFinish(DemoBrowser.login(request.authorizeUrl, redirectUri, "lan"))
        assertEquals(SyncState.UP_TO_DATE, core.sync(null).state)

        // The phone goes offline; the whole draft works without it.
        network.state = NetworkState.OFFLINE
        val drafts = core.drafts()
        val draft = drafts.create("PA-1022", "Ngập đường trước nhà")
        assertEquals(DraftState.EDITING, draft.state)
        val missing = assertThrows<CongdanException.InvalidDraft> { drafts.submit(draft.id) }
        assertEquals(listOf("category", "location", "description"), missing.issues.map { it.fieldId })
        assertTrue(missing.issues.all { it.code == IssueCode.REQUIRED && it.message.vi.isNotBlank() })

        val tooShort = drafts.setField(draft.id, "description", FieldValue.Text("ngập"))
        assertEquals(IssueCode.TOO_SHORT, tooShort.single().code)
        assertTrue(drafts.setField(draft.id, "category", FieldValue.Choice(listOf("flooding"))).isEmpty())
        assertTrue(drafts.setField(draft.id, "location", FieldValue.Location(10.7769, 106.7009)).isEmpty())
        assertTrue(drafts.setField(draft.id, "description", FieldValue.Text("Nước ngập tới đầu gối trên đường.")).isEmpty())
        assertEquals(3, drafts.get(draft.id)!!.fields.size)

        val key = drafts.submit(draft.id)
        assertEquals(DraftState.SUBMITTING, drafts.get(draft.id)!!.summary.state)
        assertThrows<CongdanException.DraftLocked> { drafts.setField(draft.id, "description", FieldValue.Text("đổi ý sau khi gửi")) }
        val waiting = core.sendOutbox()
        assertTrue(waiting.offline && waiting.waiting == 1u, "$waiting")
        assertEquals(OutboxState.WAITING, drafts.outbox(draft.id).single().state)
        assertEquals(key, drafts.outbox(draft.id).single().idempotencyKey)

        // Back online: sent once, the case number arrives, the case follows on the feed.
        network.state = NetworkState.UNMETERED
        val sent = core.sendOutbox()
        assertEquals(1u, sent.sent, "$sent")
        val submitted = drafts.get(draft.id)!!.summary
        assertEquals(DraftState.SUBMITTED, submitted.state)
        assertNotNull(submitted.caseNumber)
        assertTrue(submitted.caseNumber!!.startsWith("HCM-"))
        assertEquals(0u, core.sendOutbox().sent)
        core.sync(null)
        val case = drafts.cases().single()
        assertEquals(submitted.caseNumber, case.caseNumber)
        assertEquals("received", case.status)
        assertTrue(case.dueDate.matches(Regex("\\d{4}-\\d{2}-\\d{2}")))
    }
}
