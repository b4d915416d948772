package vn.congdan.core

import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import java.nio.file.Files
import java.time.LocalDate
import java.time.ZoneOffset

/**
 * Issue 4's "Done when", from Kotlin: a temporary-residence registration drafted offline with a
 * photo, submitted while the server is down, sent when it is back; the demo agency (a second
 * core, logged in as `staff`) asks for more information, the resident answers, the agency marks
 * it done. Both sides drive the real library through the generated bindings.
 */
class AgencyBindingTest {
    private val redirectUri = "http://127.0.0.1:1/callback"

    private suspend fun loggedIn(url: String, user: String): CongdanCore {
        val core = CongdanCore.open(
            CoreSettings(Files.createTempDirectory("congdan-$user").toString(), url),
            SwitchableNetwork(),
            SoftwareP256Keystore(),
        )
        val request = core.identity().loginStart(redirectUri)
        core.identity().loginFinish(DemoBrowser.login(request.authorizeUrl, redirectUri, user))
        assertEquals(SyncState.UP_TO_DATE, core.sync(null).state)
        return core
    }

    @Test
    fun `temporary residence offline with a photo, server down and up, more information, done`() = runBlocking {
        var server = TestServer("--auth-rate-burst", "200")
        try {
            val lan = loggedIn(server.url, "lan")
            val staff = loggedIn(server.url, "staff")
            assertThrows<CongdanException.Forbidden> { lan.agency().listCases(null, 10u, null) }
            server.close()

            // The server is down: draft, fill, attach, submit.
            val drafts = lan.drafts()
            val draft = drafts.create("CT-TAM-TRU", null)
            val today = LocalDate.now(ZoneOffset.ofHours(7))
            val values = mapOf(
                "tenant_national_id" to FieldValue.Text("079165012345"),
                "tenant_full_name" to FieldValue.Text("Nguyễn Thị Lan"),
                "tenant_date_of_birth" to FieldValue.Date("1990-05-12"),
                "tenant_phone" to FieldValue.Text("0901234567"),
                "temporary_address" to FieldValue.Text("12 Lê Lợi, phường Bến Nghé, Quận 1"),
                "stay_from" to FieldValue.Date(today.toString()),
                "stay_until" to FieldValue.Date(today.plusDays(365).toString()),
                "relationship_to_owner" to FieldValue.Choice(listOf("tenant")),
                "owner_national_id" to FieldValue.Text("079088004321"),
                "owner_full_name" to FieldValue.Text("Trần Văn Chủ"),
                "host_consent" to FieldValue.Choice(listOf("agree")),
            )
            for ((field, value) in values) {
                assertTrue(drafts.setField(draft.id, field, value).isEmpty(), field)
            }
            val missing = assertThrows<CongdanException.InvalidDraft> { drafts.submit(draft.id) }
            assertEquals(listOf("rental_contract"), missing.issues.map { it.fieldId })
            assertThrows<CongdanException.InvalidInput> {
                drafts.attachBytes(draft.id, "rental_contract", "MZ this is a program".toByteArray())
            }
            val jpeg = byteArrayOf(0xFF.toByte(), 0xD8.toByte(), 0xFF.toByte(), 0xE0.toByte(), 0, 0x10) +
                "JFIF".toByteArray() + ByteArray(4000) { (it % 251).toByte() } + byteArrayOf(0xFF.toByte(), 0xD9.toByte())
            val photo = drafts.attachBytes(draft.id, "rental_contract", jpeg)
            assertEquals("image/jpeg", photo.mediaType)
            assertEquals(jpeg.size.toULong(), photo.size)
            drafts.submit(draft.id)
            val waiting = lan.sendOutbox()
            assertTrue(waiting.sent == 0u && waiting.waiting >= 1u, "$waiting")

            // The server is back with the same data on the same address: sent once.
            server = TestServer("--auth-rate-burst", "200", dir = server.dir, port = server.port)
            lan.outboxWakeup() // what the shell does when the network comes back
            val sent = lan.sendOutbox()
            assertTrue(sent.sent >= 1u && sent.rejected == 0u, "$sent")
            val caseNumber = drafts.get(draft.id)!!.summary.caseNumber
            assertNotNull(caseNumber)
            assertTrue(caseNumber!!.startsWith("HCM-"))

            // The agency asks for more information on the phone number.
            val agency = staff.agency()
            val page = agency.listCases("received", 50u, null)
            assertEquals(null, page.nextCursor)
            val incoming = page.cases.single { it.caseNumber == caseNumber }
            val seen = agency.getCase(incoming.caseId)
            assertEquals("Nguyễn Thị Lan", seen.resident!!.displayName)
            // The photo, as the agency sees it and downloads it: the resident's bytes.
            val file = seen.attachments.single()
            assertEquals(Triple("rental_contract", photo.sha256, "image/jpeg"), Triple(file.field, file.sha256, file.mediaType))
            assertEquals(jpeg.size.toULong(), file.size)
            val out = Files.createTempDirectory("congdan-agency").resolve("contract.jpg")
            assertEquals(jpeg.size.toULong(), agency.downloadAttachment(incoming.caseId, file.sha256, out.toString()))
            assertTrue(jpeg.contentEquals(Files.readAllBytes(out)))
            assertThrows<CongdanException.NotFound> {
                agency.downloadAttachment(incoming.caseId, "00".repeat(32), out.toString())
            }
            assertEquals(FieldValue.Text("0901234567"), seen.fields.single { it.fieldId == "tenant_phone" }.value)
            val asked = agency.setStatus(
                incoming.caseId, "needs_information",
                "Số điện thoại không liên lạc được, vui lòng kiểm tra lại.", listOf("tenant_phone"), null,
            )
            assertEquals("needs_information", asked.status)
            val early = assertThrows<CongdanException.Rejected> { agency.setStatus(incoming.caseId, "done", null, listOf(), null) }
            assertEquals("invalid_transition", early.code)
            assertThrows<CongdanException.NotFound> { agency.getCase("00000000-0000-4000-8000-000000000000") }

            // The resident sees the request and answers it, exactly once.
            lan.sync(null)
            val asking = drafts.cases().single()
            assertEquals("needs_information", asking.status)
            assertEquals(listOf("tenant_phone"), asking.requestedFields)
            assertTrue(asking.timeline.any { it.message?.contains("không liên lạc được") == true })
            assertThrows<CongdanException.InvalidDraft> {
                drafts.answer(asking.caseId, listOf(DraftField("tenant_phone", FieldValue.Text("12345"))))
            }
            drafts.answer(asking.caseId, listOf(DraftField("tenant_phone", FieldValue.Text("0912345678"))))
            assertEquals(1u, lan.sendOutbox().sent)
            assertEquals(0u, lan.sendOutbox().sent)

            // The agency finishes it; the resident sees it done with the result.
            assertEquals("information_provided", agency.getCase(incoming.caseId).status)
            val done = agency.setStatus(incoming.caseId, "done", null, listOf(), "Giấy xác nhận tạm trú số 123/2026")
            assertEquals("done", done.status)
            lan.sync(null)
            val finished = drafts.cases().single()
            assertEquals("done", finished.status)
            assertEquals("Giấy xác nhận tạm trú số 123/2026", finished.resultDocument)
            assertEquals(caseNumber, finished.caseNumber)
        } finally {
            server.close()
        }
    }
}
