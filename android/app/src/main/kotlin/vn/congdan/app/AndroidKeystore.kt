package vn.congdan.app

import android.content.Context
import android.content.pm.PackageManager
import android.os.Build
import android.security.keystore.KeyGenParameterSpec
import android.security.keystore.KeyPermanentlyInvalidatedException
import android.security.keystore.KeyProperties
import android.security.keystore.UserNotAuthenticatedException
import java.math.BigInteger
import java.security.KeyPairGenerator
import java.security.KeyStore
import java.security.PrivateKey
import java.security.ProviderException
import java.security.Signature
import java.security.interfaces.ECPublicKey
import java.security.spec.ECGenParameterSpec
import javax.crypto.AEADBadTagException
import javax.crypto.Cipher
import javax.crypto.KeyGenerator
import javax.crypto.SecretKey
import javax.crypto.spec.GCMParameterSpec
import vn.congdan.core.Keystore
import vn.congdan.core.PlatformException

/**
 * The Android side of the core's keystore trait, backed by the Android Keystore.
 *
 * Two keys live in the Android Keystore under this app's uid:
 *
 * - the **device key** (`alias`): P-256, purpose SIGN, digest SHA-256. It signs the DPoP proofs
 *   that bind every access and refresh token to this phone (docs/identity.md), and later signature
 *   decisions. The private key is generated inside the secure hardware (StrongBox when the phone
 *   has one, else the TEE) and is **never** exported: this class only ever holds a handle to it,
 *   so a copy of the app's files or memory is not enough to impersonate the phone.
 * - the **wrapping key** (`"$alias.wrap"`): AES-256-GCM, purpose ENCRYPT/DECRYPT, randomized
 *   encryption required (the keystore picks the IV, so an IV can never be reused). It wraps the
 *   core's 32-byte data key that seals the stored tokens; the output is `iv(12) ‖ ciphertext‖tag`
 *   (128-bit tag). Anything not wrapped by this key, or altered, fails authentication in [unwrap].
 *
 * Byte formats are the trait's contract, identical on iOS and in the JVM tests:
 * [devicePublicKey] is the 65-byte uncompressed SEC1 point `0x04 ‖ X ‖ Y`, and [sign] returns the
 * 64-byte raw `r ‖ s`. The core puts signatures into ES256 JWTs (RFC 7518 §3.4), which require the
 * fixed-size raw form, while the Android Keystore (like the JCA in general) returns ASN.1 DER
 * `SEQUENCE { INTEGER r, INTEGER s }` of varying length; [derToRaw] converts strictly.
 *
 * StrongBox: requested when the phone declares [PackageManager.FEATURE_STRONGBOX_KEYSTORE]. Some
 * phones declare it and still refuse a key (StrongBoxUnavailableException, or a bare
 * ProviderException from the StrongBox HAL); the key is then generated in the TEE instead, which
 * is still hardware-backed and non-exportable. StrongBox is slower (tens of milliseconds per
 * signature), which is acceptable for one DPoP proof per API call.
 *
 * User authentication ([requireUserAuthentication], off by default): when on, the device key can
 * only sign within [authenticationValiditySeconds] after the resident authenticated (strong
 * biometric or device credential). Meant for a keystore instance with its own alias that signs
 * **signature decisions**, not for the DPoP key used on every call. The trait is synchronous and
 * called from the core's threads, so this class cannot show a prompt: without a recent
 * authentication [sign] throws `PlatformException.Failed("user authentication required")`; the
 * app then shows BiometricPrompt (without a CryptoObject) or the device credential screen and
 * retries. The flag only applies when the key is created: an existing key keeps its settings.
 *
 * Every failure reaches the core as `PlatformException.Failed` with a short reason (never key
 * material, never the platform's message). Not compiled in this repository's CI (no Android SDK
 * here); the JVM tests exercise the same byte formats through `SoftwareP256Keystore`.
 * Requires API 23; StrongBox is used from API 28.
 */
class AndroidKeystore(
    context: Context,
    private val alias: String = "congdan-device-key",
    private val requireUserAuthentication: Boolean = false,
    private val authenticationValiditySeconds: Int = 30,
    /**
     * Shows BiometricPrompt with the given reason and blocks until the resident answers: `true`
     * when they authenticated. Supplied by the activity layer (it owns the FragmentActivity the
     * prompt needs); `null` refuses every [signWithPresence].
     */
    private val presencePrompt: ((reason: String) -> Boolean)? = null,
) : Keystore {
    private val wrapAlias = "$alias.wrap"
    private val hasStrongBox: Boolean =
        Build.VERSION.SDK_INT >= Build.VERSION_CODES.P &&
            context.applicationContext.packageManager.hasSystemFeature(PackageManager.FEATURE_STRONGBOX_KEYSTORE)
    private val lock = Any()

    @Volatile
    private var publicPoint: ByteArray? = null

    init {
        require(alias.isNotEmpty()) { "alias must not be empty" }
        require(!requireUserAuthentication || authenticationValiditySeconds > 0) {
            "authenticationValiditySeconds must be positive: the trait cannot show a per-use prompt"
        }
    }

    override fun devicePublicKey(): ByteArray = platform("device key unavailable") {
        publicPoint?.let { return@platform it.copyOf() }
        synchronized(lock) {
            val store = androidKeyStore()
            if (!store.containsAlias(alias)) generateDeviceKey()
            val certificate = store.getCertificate(alias) ?: throw PlatformException.Failed("device key has no certificate")
            val key = certificate.publicKey as? ECPublicKey ?: throw PlatformException.Failed("device key is not EC")
            if (key.params.curve.field.fieldSize != 256) throw PlatformException.Failed("device key is not P-256")
            val point = byteArrayOf(0x04) + fixed32(key.w.affineX) + fixed32(key.w.affineY)
            publicPoint = point
            point.copyOf()
        }
    }

    override fun sign(message: ByteArray): ByteArray = platform("signing failed") {
        val key = synchronized(lock) {
            val store = androidKeyStore()
            if (!store.containsAlias(alias)) {
                generateDeviceKey()
                publicPoint = null
            }
            store.getKey(alias, null) as? PrivateKey ?: throw PlatformException.Failed("device key missing")
        }
        val signer = Signature.getInstance("SHA256withECDSA")
        signer.initSign(key)
        signer.update(message)
        derToRaw(signer.sign())
    }

    /**
     * Signs with the same device key after the resident confirmed their presence. The device key
     * also signs the DPoP proof of every call, so it cannot require authentication itself
     * (setUserAuthenticationRequired would prompt on every request); instead [presencePrompt]
     * shows BiometricPrompt (BIOMETRIC_STRONG or DEVICE_CREDENTIAL, title [reason]) on the main
     * thread and blocks this one (a core thread) until the resident answers. Only a confirmed
     * prompt signs; a refusal, a cancel or no enrolled credential is an error and nothing is signed.
     * An instance created with [requireUserAuthentication] (its own alias) gets the keystore's
     * enforcement on top: the key itself refuses to sign without a recent authentication.
     */
    override fun signWithPresence(message: ByteArray, reason: String): ByteArray {
        val gate = presencePrompt ?: throw PlatformException.Failed("no user presence prompt on this keystore")
        val confirmed = try {
            gate(reason)
        } catch (e: Exception) {
            false
        }
        if (!confirmed) throw PlatformException.Failed("user presence not confirmed")
        return sign(message)
    }

    override fun wrap(plaintext: ByteArray): ByteArray = platform("wrapping failed") {
        val cipher = Cipher.getInstance(AES_GCM)
        cipher.init(Cipher.ENCRYPT_MODE, wrappingKey())
        val iv = cipher.iv ?: throw PlatformException.Failed("keystore gave no IV")
        if (iv.size != IV_BYTES) throw PlatformException.Failed("unexpected IV length")
        iv + cipher.doFinal(plaintext)
    }

    override fun unwrap(wrapped: ByteArray): ByteArray = platform("unwrapping failed") {
        if (wrapped.size < IV_BYTES + TAG_BYTES) throw PlatformException.Failed("wrapped data too short")
        val key = synchronized(lock) {
            androidKeyStore().getKey(wrapAlias, null) as? SecretKey
        } ?: throw PlatformException.Failed("no wrapping key on this device")
        val cipher = Cipher.getInstance(AES_GCM)
        cipher.init(Cipher.DECRYPT_MODE, key, GCMParameterSpec(TAG_BYTES * 8, wrapped, 0, IV_BYTES))
        try {
            cipher.doFinal(wrapped, IV_BYTES, wrapped.size - IV_BYTES)
        } catch (e: AEADBadTagException) {
            throw PlatformException.Failed("wrapped data is damaged or not ours")
        }
    }

    /**
     * Deletes both keys (for "forget this device"). Afterwards the server no longer recognises
     * this phone's tokens and everything wrapped before can no longer be unwrapped: only call it
     * when the core's session is gone anyway; the next login creates new keys.
     */
    fun deleteKeys() = platform("deleting keys failed") {
        synchronized(lock) {
            val store = androidKeyStore()
            if (store.containsAlias(alias)) store.deleteEntry(alias)
            if (store.containsAlias(wrapAlias)) store.deleteEntry(wrapAlias)
            publicPoint = null
        }
    }

    private fun wrappingKey(): SecretKey = synchronized(lock) {
        val store = androidKeyStore()
        (store.getKey(wrapAlias, null) as? SecretKey) ?: generateWrappingKey()
    }

    /** Caller holds [lock]. */
    private fun generateDeviceKey() {
        withStrongBoxFallback(alias) { strongBox ->
            val builder = KeyGenParameterSpec.Builder(alias, KeyProperties.PURPOSE_SIGN)
                .setAlgorithmParameterSpec(ECGenParameterSpec("secp256r1"))
                .setDigests(KeyProperties.DIGEST_SHA256)
            if (requireUserAuthentication) {
                builder.setUserAuthenticationRequired(true)
                if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.R) {
                    builder.setUserAuthenticationParameters(
                        authenticationValiditySeconds,
                        KeyProperties.AUTH_BIOMETRIC_STRONG or KeyProperties.AUTH_DEVICE_CREDENTIAL,
                    )
                } else {
                    @Suppress("DEPRECATION")
                    builder.setUserAuthenticationValidityDurationSeconds(authenticationValiditySeconds)
                }
            }
            if (strongBox && Build.VERSION.SDK_INT >= Build.VERSION_CODES.P) builder.setIsStrongBoxBacked(true)
            val generator = KeyPairGenerator.getInstance(KeyProperties.KEY_ALGORITHM_EC, ANDROID_KEYSTORE)
            generator.initialize(builder.build())
            generator.generateKeyPair()
        }
    }

    /** Caller holds [lock]. */
    private fun generateWrappingKey(): SecretKey = withStrongBoxFallback(wrapAlias) { strongBox ->
        val builder = KeyGenParameterSpec.Builder(
            wrapAlias,
            KeyProperties.PURPOSE_ENCRYPT or KeyProperties.PURPOSE_DECRYPT,
        )
            .setKeySize(256)
            .setBlockModes(KeyProperties.BLOCK_MODE_GCM)
            .setEncryptionPaddings(KeyProperties.ENCRYPTION_PADDING_NONE)
            .setRandomizedEncryptionRequired(true)
        if (strongBox && Build.VERSION.SDK_INT >= Build.VERSION_CODES.P) builder.setIsStrongBoxBacked(true)
        val generator = KeyGenerator.getInstance(KeyProperties.KEY_ALGORITHM_AES, ANDROID_KEYSTORE)
        generator.init(builder.build())
        generator.generateKey()
    }

    /**
     * Runs [generate] with StrongBox when the phone declares it, and once more in the TEE if
     * StrongBox refuses (StrongBoxUnavailableException is a ProviderException). A half-created
     * entry is removed before the retry.
     */
    private fun <T> withStrongBoxFallback(entry: String, generate: (strongBox: Boolean) -> T): T {
        if (!hasStrongBox) return generate(false)
        return try {
            generate(true)
        } catch (e: ProviderException) {
            val store = androidKeyStore()
            if (store.containsAlias(entry)) store.deleteEntry(entry)
            generate(false)
        }
    }

    private fun androidKeyStore(): KeyStore = KeyStore.getInstance(ANDROID_KEYSTORE).apply { load(null) }

    /**
     * Runs [block], turning every exception into `PlatformException.Failed` with a short reason.
     * Platform messages are dropped on purpose: they are not meant for people and the core logs
     * the reason.
     */
    private inline fun <T> platform(reason: String, block: () -> T): T {
        try {
            return block()
        } catch (e: PlatformException) {
            throw e
        } catch (e: UserNotAuthenticatedException) {
            throw PlatformException.Failed("user authentication required")
        } catch (e: KeyPermanentlyInvalidatedException) {
            throw PlatformException.Failed("key permanently invalidated")
        } catch (e: Exception) {
            // GeneralSecurityException, ProviderException (keystore daemon errors), ClassCast…
            throw PlatformException.Failed("$reason (${e.javaClass.simpleName})")
        }
    }

    companion object {
        private const val ANDROID_KEYSTORE = "AndroidKeyStore"
        private const val AES_GCM = "AES/GCM/NoPadding"
        private const val IV_BYTES = 12
        private const val TAG_BYTES = 16

        /** A non-negative integer as exactly 32 big-endian bytes (left-padded with zeros). */
        internal fun fixed32(value: BigInteger): ByteArray {
            if (value.signum() < 0) throw PlatformException.Failed("negative coordinate")
            val bytes = value.toByteArray()
            // toByteArray() adds a leading 0x00 when the top bit is set; drop all leading zeros.
            var start = 0
            while (start < bytes.size && bytes[start] == 0.toByte()) start++
            val len = bytes.size - start
            if (len > 32) throw PlatformException.Failed("value longer than 32 bytes")
            val out = ByteArray(32)
            System.arraycopy(bytes, start, out, 32 - len, len)
            return out
        }

        /**
         * DER `SEQUENCE { INTEGER r, INTEGER s }` to 64 bytes `r ‖ s`: each INTEGER loses the
         * leading 0x00 DER adds to keep it positive and is left-padded to 32 bytes. Anything
         * else (negative or oversized integers, wrong tags or lengths, trailing bytes) is refused.
         */
        internal fun derToRaw(der: ByteArray): ByteArray {
            var pos = 0
            fun byte(): Int {
                if (pos >= der.size) throw PlatformException.Failed("truncated DER signature")
                return der[pos++].toInt() and 0xff
            }
            fun length(): Int {
                val first = byte()
                if (first < 0x80) return first
                // Long form; a P-256 signature never needs more than one length byte.
                if (first != 0x81) throw PlatformException.Failed("bad DER length")
                val len = byte()
                if (len < 0x80) throw PlatformException.Failed("bad DER length")
                return len
            }
            fun integer(): ByteArray {
                if (byte() != 0x02) throw PlatformException.Failed("DER signature: INTEGER expected")
                val len = length()
                if (len < 1 || len > 33 || pos + len > der.size) throw PlatformException.Failed("bad DER integer length")
                val value = der.copyOfRange(pos, pos + len)
                pos += len
                if (value[0].toInt() and 0x80 != 0) throw PlatformException.Failed("negative DER integer")
                val n = BigInteger(1, value)
                if (n.signum() == 0) throw PlatformException.Failed("zero DER integer")
                return fixed32(n)
            }
            if (byte() != 0x30) throw PlatformException.Failed("DER signature: SEQUENCE expected")
            val seqLen = length()
            if (pos + seqLen != der.size) throw PlatformException.Failed("bad DER sequence length")
            val r = integer()
            val s = integer()
            if (pos != der.size) throw PlatformException.Failed("trailing bytes in DER signature")
            return r + s
        }
    }
}
