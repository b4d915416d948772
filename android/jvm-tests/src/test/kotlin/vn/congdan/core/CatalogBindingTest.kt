package vn.congdan.core

import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.BeforeAll
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestInstance
import org.junit.jupiter.api.assertThrows
import java.io.File
import java.net.HttpURLConnection
import java.net.ServerSocket
import java.net.URL
import java.nio.file.Files
import java.util.concurrent.CopyOnWriteArrayList
import java.util.concurrent.TimeUnit

/** A network monitor the test can switch, as a phone's connectivity changes. */
class SwitchableNetwork(@Volatile var state: NetworkState = NetworkState.UNMETERED) : NetworkMonitor {
    override fun currentState(): NetworkState = state
}

/** Loads the real congdan_ffi library and drives it against a real congdan-server process. */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class CatalogBindingTest {
    private lateinit var server: Process
    private lateinit var serverUrl: String
    private val serverDir: File = Files.createTempDirectory("congdan-server").toFile()

    private fun freePort(): Int = ServerSocket(0).use { it.localPort }

    private fun startServer(port: Int): Process {
        val bin = System.getProperty("congdan.server.bin") ?: error("congdan.server.bin not set")
        val process = ProcessBuilder(bin, "--listen", "127.0.0.1:$port", "--data-dir", serverDir.path)
            .redirectErrorStream(true)
            .redirectOutput(File(serverDir, "server.log"))
            .start()
        val deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30)
        while (System.nanoTime() < deadline) {
            try {
                val c = URL("http://127.0.0.1:$port/health").openConnection() as HttpURLConnection
                if (c.responseCode == 200) return process
            } catch (_: Exception) {
                Thread.sleep(100)
            }
        }
        process.destroyForcibly()
        error("server did not start: " + File(serverDir, "server.log").readText())
    }

    @BeforeAll
    fun start() {
        val port = freePort()
        serverUrl = "http://127.0.0.1:$port"
        server = startServer(port)
    }

    @AfterAll
    fun stop() {
        server.destroy()
        server.waitFor(10, TimeUnit.SECONDS)
    }

    private fun newDataDir(): String = Files.createTempDirectory("congdan-core").toString()

    @Test
    fun `catalog syncs once and is browsable and searchable offline`() = runBlocking {
        val network = SwitchableNetwork()
        val dataDir = newDataDir()
        val core = CongdanCore.open(CoreSettings(dataDir, serverUrl), network, SoftwareP256Keystore())
        val progress = CopyOnWriteArrayList<SyncProgress>()
        val listener = object : SyncProgressListener {
            override fun onProgress(p: SyncProgress): Boolean = progress.add(p)
        }
        val report = core.sync(listener)
        assertEquals(SyncState.UP_TO_DATE, report.state)
        assertTrue(report.changesApplied >= 8u, "applied ${report.changesApplied}")
        assertTrue(progress.isNotEmpty())
        assertEquals(false, progress.last().hasMore)
        assertNotNull(report.clockOffsetMs)

        val catalog = core.catalog()
        val all = catalog.list(null)
        assertTrue(all.size >= 8)
        assertEquals(all.size.toUInt(), catalog.status().procedureCount)
        val reports = catalog.list(ProcedureKind.REPORT)
        assertTrue(reports.any { it.code == "PA-1022" })

        // Vietnamese search with and without diacritics.
        assertEquals("CT-TAM-TRU", catalog.search("tam tru", 10u).first().code)
        assertEquals("CT-TAM-TRU", catalog.search("Tạm trú", 10u).first().code)
        assertTrue(catalog.search("khai sinh", 10u).any { it.code == "HT-KHAI-SINH" })

        val tamTru = catalog.get("CT-TAM-TRU")
        assertNotNull(tamTru)
        assertTrue(tamTru!!.fields.any { it.fieldType == FieldType.NATIONAL_ID })
        assertTrue(tamTru.fields.any { it.fieldType == FieldType.PHONE })
        assertTrue(tamTru.name.vi.contains("tạm trú", ignoreCase = true))
        assertNull(catalog.get("NO-SUCH-CODE"))

        // A second sync fetches nothing new.
        assertEquals(0u, core.sync(null).changesApplied)

        // The phone goes offline: no network attempt, a typed state, the cache still serves.
        network.state = NetworkState.OFFLINE
        assertEquals(SyncState.OFFLINE, core.sync(null).state)
        assertEquals(all, catalog.list(null))

        // Reopened (the app restarted) with the server unreachable: still browsable.
        val again = CongdanCore.open(CoreSettings(dataDir, "http://127.0.0.1:${freePort()}"), SwitchableNetwork(), SoftwareP256Keystore())
        assertEquals(SyncState.OFFLINE, again.sync(null).state)
        assertEquals(all.size, again.catalog().list(null).size)
    }

    @Test
    fun `a listener that says stop cancels the sync after a complete page`() = runBlocking {
        val core = CongdanCore.open(CoreSettings(newDataDir(), serverUrl), SwitchableNetwork(), SoftwareP256Keystore())
        val stopper = object : SyncProgressListener {
            override fun onProgress(p: SyncProgress): Boolean = false
        }
        val e = assertThrows<CongdanException.Cancelled> { runBlocking { core.sync(stopper) } }
        assertTrue(e.messageVi.isNotBlank())
        // The page that was reported is kept whole, and the next sync goes on from its cursor.
        val kept = core.catalog().status().procedureCount
        assertTrue(kept > 0u)
        assertEquals(SyncState.UP_TO_DATE, core.sync(null).state)
        assertEquals(kept, core.catalog().status().procedureCount)
    }

    @Test
    fun `bad settings and broken storage are typed errors`() {
        assertThrows<CongdanException.InvalidInput> {
            CongdanCore.open(CoreSettings(newDataDir(), "http://example.com"), SwitchableNetwork(), SoftwareP256Keystore())
        }
        val dir = newDataDir()
        File(dir, "congdan.db").writeBytes(ByteArray(8192) { 0x42 })
        val e = assertThrows<CongdanException.Storage> {
            CongdanCore.open(CoreSettings(dir, serverUrl), SwitchableNetwork(), SoftwareP256Keystore())
        }
        assertTrue(e.messageVi.isNotBlank() && e.messageEn.isNotBlank())
    }

    @Test
    fun `a failing platform service surfaces as a platform error`() = runBlocking {
        val broken = object : NetworkMonitor {
            override fun currentState(): NetworkState = throw PlatformException.Failed("connectivity service died")
        }
        val core = CongdanCore.open(CoreSettings(newDataDir(), serverUrl), broken, SoftwareP256Keystore())
        assertThrows<CongdanException.Platform> { runBlocking { core.sync(null) } }
        Unit
    }
}
