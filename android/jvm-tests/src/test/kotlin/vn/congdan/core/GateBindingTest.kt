package vn.congdan.core

import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestInstance
import org.junit.jupiter.api.assertThrows
import java.nio.file.Files

/**
 * Issue 5 from Kotlin, end to end: a rider buys a day pass and a single journey, shows codes, and
 * gates (Android-based gate devices, through the same library) decide offline; a screenshot a
 * minute later, the ticket on a second phone, a changed byte, a pass-back and a ticket revoked
 * by the server's clone detection are each refused with their own reason.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class GateBindingTest {
    private val server = TestServer("--auth-rate-burst", "200")
    private val redirectUri = "http://127.0.0.1:1/callback"

    @AfterAll
    fun stop() = server.close()

    private suspend fun phone(user: String, network: SwitchableNetwork = SwitchableNetwork()): CongdanCore {
        val core = CongdanCore.open(
            CoreSettings(Files.createTempDirectory("congdan-$user").toString(), server.url),
            network,
            SoftwareP256Keystore(),
        )
        val request = core.identity().loginStart(redirectUri)
        core.identity().loginFinish(DemoBrowser.login(request.authorizeUrl, redirectUri, user))
        return core
    }

    private fun settings(station: ULong, gateId: String) =
        GateSettings(station, gateId, true, null, null, null, null, null)

    @Test
    fun `codes pass offline gates and every attack is refused with its reason`() = runBlocking {
        val rider = phone("lan")
        val tickets = rider.tickets()
        tickets.buy(TicketProduct.DAY_PASS, null, null)
        tickets.buy(TicketProduct.SINGLE_JOURNEY, 1uL, 5uL)
        assertEquals(2u, rider.sendOutbox().sent)
        val dayPass = tickets.list().single { it.product == TicketProduct.DAY_PASS }
        val single = tickets.list().single { it.product == TicketProduct.SINGLE_JOURNEY }

        // Two gates of the operator: keys pulled while online, then the station link goes down.
        val networkA = SwitchableNetwork()
        val networkB = SwitchableNetwork()
        val gateA = GateApi.open(phone("operator", networkA), settings(1uL, "ben-thanh-1"))
        val gateB = GateApi.open(phone("operator", networkB), settings(3uL, "ba-son-1"))
        for (gate in listOf(gateA, gateB)) {
            val link = gate.syncWithServer()
            assertTrue(link.keys >= 1uL && link.keysError == null, "$link")
        }
        networkA.state = NetworkState.OFFLINE
        networkB.state = NetworkState.OFFLINE

        // The day pass passes gate A offline; shown again without an exit: pass-back.
        val accepted = gateA.validateText(tickets.currentCode(dayPass.id).text, null)
        assertTrue(accepted.accepted, "${accepted.code}: ${accepted.messageEn}")
        assertNull(accepted.refusal)
        assertEquals(dayPass.id, accepted.ticketId)
        assertEquals(GateRefusal.PASS_BACK, gateA.validateText(tickets.currentCode(dayPass.id).text, null).refusal)

        // A screenshot of the single journey's code shown a minute later.
        val now = System.currentTimeMillis() / 1000
        val screenshot = tickets.currentCode(single.id).text
        val stale = gateB.validateText(screenshot, (now + 60).toULong())
        assertEquals(GateRefusal.STALE_CODE, stale.refusal)
        assertTrue(stale.messageVi.isNotBlank() && stale.messageEn.isNotBlank())

        // One changed byte in the ticket part of the code.
        val bytes = Base45.decode(tickets.currentCode(single.id).text)
        bytes[20] = (bytes[20].toInt() xor 0x01).toByte()
        assertEquals(GateRefusal.TAMPERED, gateB.validateBytes(bytes, null).refusal)

        // The same ticket on the rider's second phone: listed there, but it cannot make a code.
        val secondPhone = phone("lan")
        secondPhone.sync(null)
        val there = secondPhone.tickets().list().single { it.id == dayPass.id }
        assertEquals(TicketStatus.OTHER_DEVICE, there.status)
        assertThrows<CongdanException.InvalidInput> { secondPhone.tickets().currentCode(dayPass.id) }

        // A cloned single journey: entries at two stations seconds apart. Both offline gates
        // accept; once their taps reach the server it revokes the ticket, and the next
        // revocation list makes the gates refuse it.
        assertTrue(gateA.validateText(tickets.currentCode(single.id).text, null).accepted)
        assertTrue(gateB.validateText(tickets.currentCode(single.id).text, null).accepted)
        networkA.state = NetworkState.UNMETERED
        networkB.state = NetworkState.UNMETERED
        gateA.syncWithServer()
        gateB.syncWithServer()
        val link = gateA.syncWithServer()
        assertTrue(link.revoked >= 1uL, "$link")
        networkA.state = NetworkState.OFFLINE
        val revoked = GateApi.open(phone("operator"), settings(5uL, "an-phu-1"))
        revoked.syncWithServer()
        assertEquals(GateRefusal.REVOKED, revoked.validateText(tickets.currentCode(single.id).text, null).refusal)
        rider.sync(null)
        assertEquals(TicketStatus.REVOKED, tickets.get(single.id).status)
    }
}

/** RFC 9285 base45, as the QR text carries the code (test helper). */
object Base45 {
    private const val ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"

    fun decode(text: String): ByteArray {
        val values = text.map { ALPHABET.indexOf(it).also { v -> require(v >= 0) } }
        val out = mutableListOf<Byte>()
        var i = 0
        while (i < values.size) {
            if (i + 2 < values.size) {
                val n = values[i] + values[i + 1] * 45 + values[i + 2] * 45 * 45
                out.add((n shr 8).toByte())
                out.add((n and 0xff).toByte())
                i += 3
            } else {
                out.add((values[i] + values[i + 1] * 45).toByte())
                i += 2
            }
        }
        return out.toByteArray()
    }
}
