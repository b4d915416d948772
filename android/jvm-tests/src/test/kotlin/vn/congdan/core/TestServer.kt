package vn.congdan.core

import java.io.File
import java.net.HttpURLConnection
import java.net.ServerSocket
import java.net.URL
import java.net.URLEncoder
import java.nio.file.Files
import java.util.concurrent.TimeUnit

/**
 * A real `congdan-server` process on a free loopback port (embedded SQLite, demo data). Pass the
 * `dir` and `port` of a closed one to start it again with the same data on the same address.
 */
class TestServer(
    vararg extraArgs: String,
    val dir: File = Files.createTempDirectory("congdan-server").toFile(),
    val port: Int = ServerSocket(0).use { it.localPort },
) : AutoCloseable {
    val url = "http://127.0.0.1:$port"
    private val process: Process

    init {
        val bin = System.getProperty("congdan.server.bin") ?: error("congdan.server.bin not set")
        process = ProcessBuilder(listOf(bin, "--listen", "127.0.0.1:$port", "--data-dir", dir.path) + extraArgs)
            .redirectErrorStream(true)
            .redirectOutput(File(dir, "server.log"))
            .start()
        val deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30)
        var up = false
        while (!up && System.nanoTime() < deadline) {
            try {
                up = (URL("$url/health").openConnection() as HttpURLConnection).responseCode == 200
            } catch (_: Exception) {
                Thread.sleep(100)
            }
        }
        if (!up) {
            process.destroyForcibly()
            error("server did not start: " + File(dir, "server.log").readText())
        }
    }

    fun log(): String = File(dir, "server.log").readText()

    override fun close() {
        process.destroy()
        process.waitFor(10, TimeUnit.SECONDS)
    }
}

/**
 * Plays the system browser for the built-in development identity provider, exactly as a resident
 * would: follows the redirects to its login form, signs in, and follows the redirects back until
 * the one addressed to the app (`redirectUri`), which is returned, as Custom Tabs would hand it
 * to the app.
 */
object DemoBrowser {
    private fun open(url: String, method: String = "GET", form: String? = null): HttpURLConnection {
        val c = URL(url).openConnection() as HttpURLConnection
        c.instanceFollowRedirects = false
        c.requestMethod = method
        if (form != null) {
            c.doOutput = true
            c.setRequestProperty("Content-Type", "application/x-www-form-urlencoded")
            c.outputStream.use { it.write(form.toByteArray()) }
        }
        return c
    }

    private fun location(c: HttpURLConnection): String {
        check(c.responseCode in 300..399) { "expected a redirect, got ${c.responseCode}" }
        return URL(c.url, c.getHeaderField("Location")).toString()
    }

    fun login(authorizeUrl: String, redirectUri: String, username: String, password: String = "demo"): String {
        val formUrl = location(open(authorizeUrl))
        val page = open(formUrl)
        check(page.responseCode == 200) { "login page answered ${page.responseCode}" }
        val html = page.inputStream.bufferedReader().readText()
        val tag = Regex("<input[^>]*name=\"request_id\"[^>]*>").find(html)?.value ?: error("no login form")
        val requestId = Regex("value=\"([^\"]*)\"").find(tag)!!.groupValues[1]
        fun enc(s: String) = URLEncoder.encode(s, "UTF-8")
        val submitted = open(
            formUrl.substringBefore('?'), "POST",
            "request_id=${enc(requestId)}&username=${enc(username)}&password=${enc(password)}",
        )
        var next = location(submitted)
        repeat(5) {
            if (next.startsWith(redirectUri)) return next
            next = location(open(next))
        }
        error("too many redirects")
    }
}
