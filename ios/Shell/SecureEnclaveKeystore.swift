import Foundation
#if canImport(CryptoKit)
import CryptoKit
import LocalAuthentication
import Security

/// The iOS side of the core's keystore trait, backed by the Secure Enclave through CryptoKit.
///
/// Two keys, created on first use:
///
/// - the **device key**, a `SecureEnclave.P256.Signing.PrivateKey`. It signs the DPoP proofs that
///   bind every access and refresh token to this phone (docs/identity.md), and later signature
///   decisions. The private key is generated inside the Secure Enclave and never leaves it: what
///   the app keeps is its `dataRepresentation`, a blob encrypted by this device's enclave that no
///   other device (and no other chip) can use. The blob is stored in the Keychain with
///   `kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly`, so it is in no backup that restores onto
///   another phone, and background syncs after the first unlock can still sign.
/// - the **wrapping key**, derived from a `SecureEnclave.P256.KeyAgreement.PrivateKey` `d` by an
///   ECDH of the key with its own public key (`d·(d·G)`, computable only inside the enclave) and
///   HKDF-SHA256. It seals the core's 32-byte data key with AES-GCM; the output is
///   `nonce(12) ‖ ciphertext ‖ tag(16)` (`AES.GCM.SealedBox.combined`). Anything not sealed by
///   this key, or altered, fails authentication in `unwrap`.
///
/// Byte formats are the trait's contract, identical on Android and in the tests:
/// `devicePublicKey()` is the 65-byte uncompressed SEC1 point (`x963Representation`), and
/// `sign(message:)` returns the raw 64-byte `r ‖ s` (`ECDSASignature.rawRepresentation`, which
/// is exactly the ES256 JWS form; CryptoKit hashes the message with SHA-256 itself, and no DER
/// conversion is needed on this side).
///
/// `requireUserPresence` (off by default) creates the device key with a `.userPresence` access
/// control: every signature then shows the system's Face ID / Touch ID / passcode sheet and
/// blocks the calling thread (one of the core's, never the main thread) until the resident
/// answers. Meant for an instance with its own `alias` that signs signature decisions, not for
/// the DPoP key used on every call. It only applies when the key is created.
///
/// Without a Secure Enclave (the simulator), the same formats come from software keys kept in
/// the Keychain with `ThisDeviceOnly` accessibility; user presence is not enforced there.
///
/// Every failure reaches the core as `PlatformError.Failed(reason:)` with a short reason (never key
/// material). Not compiled here (no Swift toolchain on this machine); its syntax is checked with
/// the generated bindings.
final class SecureEnclaveKeystore: Keystore, @unchecked Sendable {
    private let alias: String
    private let requireUserPresence: Bool
    private let service = "vn.congdan.keystore"
    private let lock = NSLock()
    private var signingKey: DeviceSigningKey?

    init(alias: String = "congdan-device-key", requireUserPresence: Bool = false) {
        self.alias = alias
        self.requireUserPresence = requireUserPresence
    }

    func devicePublicKey() throws -> Data {
        return try platform("device key unavailable") {
            let point = try loadSigningKey().publicPoint
            guard point.count == 65, point.first == 0x04 else {
                throw PlatformError.Failed(reason: "device key is not an uncompressed P-256 point")
            }
            return point
        }
    }

    func sign(message: Data) throws -> Data {
        let key = try platform("device key unavailable") { try loadSigningKey() }
        return try platform("signing failed or was not authorised") {
            let signature = try key.signature(for: message)
            guard signature.count == 64 else {
                throw PlatformError.Failed(reason: "unexpected signature length")
            }
            return signature
        }
    }

    /// Signs with the same device key after the resident confirmed their presence: an
    /// `LAContext` evaluates `.deviceOwnerAuthentication` (Face ID / Touch ID, else the passcode)
    /// with `reason` as the sheet's text, and this (core) thread waits for the answer. The device
    /// key also signs every DPoP proof, so presence is asked here rather than baked into the key
    /// with `.userPresence`; an instance created with `requireUserPresence` gets the enclave's
    /// enforcement on top. A refusal or cancel is an error and nothing is signed.
    func signWithPresence(message: Data, reason: String) throws -> Data {
        let context = LAContext()
        var canError: NSError?
        guard context.canEvaluatePolicy(.deviceOwnerAuthentication, error: &canError) else {
            throw PlatformError.Failed(reason: "no passcode or biometrics set up on this device")
        }
        let answered = DispatchSemaphore(value: 0)
        var confirmed = false
        context.evaluatePolicy(.deviceOwnerAuthentication, localizedReason: reason) { success, _ in
            confirmed = success
            answered.signal()
        }
        answered.wait()
        guard confirmed else {
            throw PlatformError.Failed(reason: "user presence not confirmed")
        }
        return try sign(message: message)
    }

    func wrap(plaintext: Data) throws -> Data {
        return try platform("wrapping failed") {
            let key = try wrappingKey(create: true)
            let box = try AES.GCM.seal(plaintext, using: key)
            guard let combined = box.combined else {
                throw PlatformError.Failed(reason: "sealed box without combined form")
            }
            return combined
        }
    }

    func unwrap(wrapped: Data) throws -> Data {
        guard wrapped.count >= 12 + 16 else {
            throw PlatformError.Failed(reason: "wrapped data too short")
        }
        let key = try platform("no wrapping key on this device") { try wrappingKey(create: false) }
        return try platform("wrapped data is damaged or not ours") {
            let box = try AES.GCM.SealedBox(combined: wrapped)
            return try AES.GCM.open(box, using: key)
        }
    }

    /// Deletes every key of this alias (for "forget this device"). Afterwards the server no longer
    /// recognises this phone's tokens and nothing wrapped before can be unwrapped: only call it
    /// when the core's session is gone anyway; the next login creates new keys.
    func deleteKeys() throws {
        try platform("deleting keys failed") {
            lock.lock()
            defer { lock.unlock() }
            signingKey = nil
            for kind in ["se.signing", "se.agreement", "sw.signing", "sw.wrap"] {
                try keychainDelete(account: "\(alias).\(kind)")
            }
        }
    }

    // MARK: - Keys

    private func loadSigningKey() throws -> DeviceSigningKey {
        lock.lock()
        defer { lock.unlock() }
        if let key = signingKey {
            return key
        }
        let key: DeviceSigningKey
        if SecureEnclave.isAvailable {
            let flags: SecAccessControlCreateFlags = requireUserPresence
                ? [.privateKeyUsage, .userPresence]
                : [.privateKeyUsage]
            let blob = try keychainLoadOrCreate(account: "\(alias).se.signing") {
                let access = try accessControl(flags)
                let created = try SecureEnclave.P256.Signing.PrivateKey(
                    compactRepresentable: false, accessControl: access)
                return created.dataRepresentation
            }
            key = .enclave(try SecureEnclave.P256.Signing.PrivateKey(dataRepresentation: blob))
        } else {
            let raw = try keychainLoadOrCreate(account: "\(alias).sw.signing") {
                return P256.Signing.PrivateKey(compactRepresentable: false).rawRepresentation
            }
            key = .software(try P256.Signing.PrivateKey(rawRepresentation: raw))
        }
        signingKey = key
        return key
    }

    /// The AES-256 key for wrap/unwrap, derived anew on every call (nothing is cached).
    /// `create: false` (unwrap) never creates a key: with none stored nothing could be ours.
    private func wrappingKey(create: Bool) throws -> SymmetricKey {
        lock.lock()
        defer { lock.unlock() }
        if SecureEnclave.isAvailable {
            let account = "\(alias).se.agreement"
            let blob: Data
            if create {
                blob = try keychainLoadOrCreate(account: account) {
                    let access = try accessControl([.privateKeyUsage])
                    let created = try SecureEnclave.P256.KeyAgreement.PrivateKey(
                        compactRepresentable: false, accessControl: access)
                    return created.dataRepresentation
                }
            } else {
                guard let stored = try keychainRead(account: account) else {
                    throw PlatformError.Failed(reason: "no wrapping key on this device")
                }
                blob = stored
            }
            let agreement = try SecureEnclave.P256.KeyAgreement.PrivateKey(dataRepresentation: blob)
            let secret = try agreement.sharedSecretFromKeyAgreement(with: agreement.publicKey)
            return secret.hkdfDerivedSymmetricKey(
                using: SHA256.self,
                salt: Data("congdan keystore".utf8),
                sharedInfo: Data("wrap v1".utf8),
                outputByteCount: 32)
        }
        let account = "\(alias).sw.wrap"
        let raw: Data
        if create {
            raw = try keychainLoadOrCreate(account: account) {
                return SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }
            }
        } else {
            guard let stored = try keychainRead(account: account) else {
                throw PlatformError.Failed(reason: "no wrapping key on this device")
            }
            raw = stored
        }
        guard raw.count == 32 else {
            throw PlatformError.Failed(reason: "stored wrapping key has the wrong length")
        }
        return SymmetricKey(data: raw)
    }

    private func accessControl(_ flags: SecAccessControlCreateFlags) throws -> SecAccessControl {
        var error: Unmanaged<CFError>?
        guard let access = SecAccessControlCreateWithFlags(
            kCFAllocatorDefault, kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly, flags, &error)
        else {
            error?.release()
            throw PlatformError.Failed(reason: "access control could not be created")
        }
        return access
    }

    // MARK: - Keychain (generic passwords, this device only)

    private func baseQuery(account: String) -> [String: Any] {
        return [
            kSecClass as String: kSecClassGenericPassword,
            kSecAttrService as String: service,
            kSecAttrAccount as String: account,
            kSecUseDataProtectionKeychain as String: true,
        ]
    }

    /// The stored item, or a new one from `create` stored first. If another writer stored one in
    /// between, that one wins, so every caller ends up with the same key.
    private func keychainLoadOrCreate(account: String, create: () throws -> Data) throws -> Data {
        if let stored = try keychainRead(account: account) {
            return stored
        }
        let value = try create()
        var query = baseQuery(account: account)
        query[kSecValueData as String] = value
        query[kSecAttrAccessible as String] = kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly
        let status = SecItemAdd(query as CFDictionary, nil)
        if status == errSecSuccess {
            return value
        }
        if status == errSecDuplicateItem, let stored = try keychainRead(account: account) {
            return stored
        }
        throw PlatformError.Failed(reason: "keychain write failed (\(status))")
    }

    private func keychainRead(account: String) throws -> Data? {
        var query = baseQuery(account: account)
        query[kSecReturnData as String] = true
        query[kSecMatchLimit as String] = kSecMatchLimitOne
        var result: CFTypeRef?
        let status = SecItemCopyMatching(query as CFDictionary, &result)
        if status == errSecItemNotFound {
            return nil
        }
        guard status == errSecSuccess, let data = result as? Data else {
            throw PlatformError.Failed(reason: "keychain read failed (\(status))")
        }
        return data
    }

    private func keychainDelete(account: String) throws {
        let status = SecItemDelete(baseQuery(account: account) as CFDictionary)
        guard status == errSecSuccess || status == errSecItemNotFound else {
            throw PlatformError.Failed(reason: "keychain delete failed (\(status))")
        }
    }

    /// Runs `body`, turning every error into `PlatformError.Failed` with a short reason. Platform
    /// errors (CryptoKit, LocalAuthentication) are dropped on purpose: the core logs the reason.
    private func platform<T>(_ reason: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as PlatformError {
            throw error
        } catch {
            throw PlatformError.Failed(reason: reason)
        }
    }
}

/// The device key: in the Secure Enclave, or (simulator only) in software.
private enum DeviceSigningKey {
    case enclave(SecureEnclave.P256.Signing.PrivateKey)
    case software(P256.Signing.PrivateKey)

    var publicPoint: Data {
        switch self {
        case .enclave(let key):
            return key.publicKey.x963Representation
        case .software(let key):
            return key.publicKey.x963Representation
        }
    }

    func signature(for message: Data) throws -> Data {
        switch self {
        case .enclave(let key):
            return try key.signature(for: message).rawRepresentation
        case .software(let key):
            return try key.signature(for: message).rawRepresentation
        }
    }
}
#endif
