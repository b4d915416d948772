package vn.congdan.core

import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import java.nio.file.Files

/**
 * Issue 5, the rider's side from Kotlin: a day pass bought through the outbox on a real server,
 * listed, and its rotating code drawn (QR modules and PNG); an order that cannot be priced is
 * refused before anything is queued.
 */
class TicketsBindingTest {
    private val redirectUri = "http://127.0.0.1:1/callback"

    @Test
    fun `a day pass is bought, listed and shown as a QR code`() = runBlocking {
        TestServer().use { server ->
            val core = CongdanCore.open(
                CoreSettings(Files.createTempDirectory("congdan-rider").toString(), server.url),
                SwitchableNetwork(),
                SoftwareP256Keystore(),
            )
            val request = core.identity().loginStart(redirectUri)
            core.identity().loginFinish(DemoBrowser.login(request.authorizeUrl, redirectUri, "lan"))
            val tickets = core.tickets()
            assertEquals(14, tickets.stations().size)
            assertEquals(40_000uL, tickets.fullFare(TicketProduct.DAY_PASS, null, null))
            assertThrows<CongdanException.InvalidInput> { tickets.buy(TicketProduct.SINGLE_JOURNEY, 3uL, 3uL) }

            val purchase = tickets.buy(TicketProduct.DAY_PASS, null, null)
            val sent = core.sendOutbox()
            assertEquals(1u, sent.sent, "$sent")
            assertEquals(PurchaseState.ISSUED, tickets.purchases().single { it.id == purchase }.state)
            val ticket = tickets.list().single()
            assertEquals(TicketProduct.DAY_PASS, ticket.product)
            assertEquals(TicketStatus.ACTIVE, ticket.status)
            assertEquals(86_400uL, ticket.validUntil - ticket.validFrom)

            val code = tickets.currentCode(ticket.id)
            assertTrue(code.text.length <= 300)
            assertEquals(code.size.toInt(), code.rows.size)
            assertTrue(code.rows.all { it.size == code.size.toInt() })
            assertTrue(code.secondsRemaining in 1u..code.slotSeconds)
            val pngMagic = byteArrayOf(0x89.toByte(), 'P'.code.toByte(), 'N'.code.toByte(), 'G'.code.toByte())
            assertTrue(code.png.copyOfRange(0, 4).contentEquals(pngMagic))
        }
    }
}
