package vn.congdan.core

import java.math.BigInteger
import java.security.KeyPairGenerator
import java.security.SecureRandom
import java.security.Signature
import java.security.interfaces.ECPublicKey
import java.security.spec.ECGenParameterSpec
import javax.crypto.AEADBadTagException
import javax.crypto.Cipher
import javax.crypto.KeyGenerator
import javax.crypto.SecretKey
import javax.crypto.spec.GCMParameterSpec

/**
 * A SOFTWARE keystore for the JVM tests: a P-256 key pair and an AES-256 key held in memory,
 * implementing the core's `Keystore` trait with exactly the byte formats the Android Keystore
 * and the Secure Enclave implementations produce (65-byte uncompressed public point, 64-byte
 * `r‖s` signatures converted from DER, `iv ‖ ciphertext‖tag` wrapping).
 */
class SoftwareP256Keystore : Keystore {
    private val pair = KeyPairGenerator.getInstance("EC").apply { initialize(ECGenParameterSpec("secp256r1")) }.generateKeyPair()
    private val wrapKey: SecretKey = KeyGenerator.getInstance("AES").apply { init(256) }.generateKey()
    private val random = SecureRandom()
    @Volatile var signatures = 0
        private set

    override fun devicePublicKey(): ByteArray {
        val point = (pair.public as ECPublicKey).w
        return byteArrayOf(0x04) + fixed32(point.affineX) + fixed32(point.affineY)
    }

    override fun sign(message: ByteArray): ByteArray {
        val signer = Signature.getInstance("SHA256withECDSA")
        signer.initSign(pair.private)
        signer.update(message)
        signatures++
        return derToRaw(signer.sign())
    }

    /** What every signature with user presence was asked for (there is no person to ask here). */
    val presenceReasons: MutableList<String> = java.util.Collections.synchronizedList(mutableListOf())

    override fun signWithPresence(message: ByteArray, reason: String): ByteArray {
        presenceReasons.add(reason)
        return sign(message)
    }

    override fun wrap(plaintext: ByteArray): ByteArray {
        val iv = ByteArray(12).also { random.nextBytes(it) }
        val cipher = Cipher.getInstance("AES/GCM/NoPadding")
        cipher.init(Cipher.ENCRYPT_MODE, wrapKey, GCMParameterSpec(128, iv))
        return iv + cipher.doFinal(plaintext)
    }

    override fun unwrap(wrapped: ByteArray): ByteArray {
        if (wrapped.size < 12 + 16) throw PlatformException.Failed("wrapped data too short")
        val cipher = Cipher.getInstance("AES/GCM/NoPadding")
        cipher.init(Cipher.DECRYPT_MODE, wrapKey, GCMParameterSpec(128, wrapped.copyOfRange(0, 12)))
        try {
            return cipher.doFinal(wrapped, 12, wrapped.size - 12)
        } catch (e: AEADBadTagException) {
            throw PlatformException.Failed("wrapped data is damaged or not ours")
        }
    }

    companion object {
        fun fixed32(v: BigInteger): ByteArray {
            val raw = v.toByteArray().dropWhile { it == 0.toByte() }.toByteArray()
            require(raw.size <= 32) { "coordinate too long" }
            return ByteArray(32 - raw.size) + raw
        }

        /** DER `SEQUENCE { INTEGER r, INTEGER s }` to 64 bytes `r ‖ s`. */
        fun derToRaw(der: ByteArray): ByteArray {
            var i = 0
            require(der[i++] == 0x30.toByte()) { "not a DER sequence" }
            var len = der[i++].toInt() and 0xff
            if (len and 0x80 != 0) i += len and 0x7f
            fun integer(): ByteArray {
                require(der[i++] == 0x02.toByte()) { "not a DER integer" }
                len = der[i++].toInt() and 0xff
                val value = der.copyOfRange(i, i + len)
                i += len
                return fixed32(BigInteger(1, value))
            }
            return integer() + integer()
        }
    }
}
