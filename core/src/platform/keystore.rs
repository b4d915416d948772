//! The device keystore trait (Android Keystore / iOS Secure Enclave on phones) and the software
//! stand-in used by the CLI and tests.
//!
//! The device key is a P-256 key that never leaves the keystore: the core asks for its public
//! key and for signatures. `wrap`/`unwrap` protect small secrets at rest (the data key that
//! encrypts the session), so a copied database file is useless without the device.

use std::path::{Path, PathBuf};

use crate::crypto::aead::{random_key, SealingKey};

use super::PlatformError;
use crate::crypto::{P256Signer, Signer};

/// The phone's keystore. Every method may ask the platform for user presence (PIN, biometrics).
pub trait Keystore: Send + Sync {
    /// The device key's public key as an uncompressed SEC1 point (65 bytes), creating the key
    /// on first use.
    fn device_public_key(&self) -> Result<Vec<u8>, PlatformError>;
    /// ECDSA P-256 / SHA-256 signature of `message` with the device key, as 64 bytes `r‖s`.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, PlatformError>;
    /// Like [`Keystore::sign`], but only after the resident confirms they are present (PIN,
    /// pattern or biometrics), shown with `reason` (Vietnamese and English, what is being signed).
    /// For signature decisions and dossier signatures, never for the DPoP proofs of every call.
    /// Blocks the calling thread (one of the core's) until the resident answers; a refusal or a
    /// cancelled prompt is an error and nothing is signed.
    fn sign_with_presence(&self, message: &[u8], reason: &str) -> Result<Vec<u8>, PlatformError>;
    /// Encrypts a small secret with a key that stays in the keystore.
    fn wrap(&self, plaintext: &[u8]) -> Result<Vec<u8>, PlatformError>;
    /// Reverses [`Keystore::wrap`]; fails on anything this keystore did not wrap.
    fn unwrap(&self, wrapped: &[u8]) -> Result<Vec<u8>, PlatformError>;
}

/// SOFTWARE keystore, for the CLI and tests only: its key-encryption key is a file readable by
/// the user (mode 0600), not hardware. The device's private key is kept sealed with that key
/// (AES-256-GCM), never in the clear on disk.
pub struct SoftwareKeystore {
    kek: SealingKey,
    signer: P256Signer,
    /// The reasons of every [`Keystore::sign_with_presence`], in order: there is no person to ask
    /// here, so the CLI and tests can at least see that presence was asked, and for what.
    presence_reasons: std::sync::Mutex<Vec<String>>,
}

const KEK_FILE: &str = "software-keystore.kek";
const DEVICE_KEY_FILE: &str = "software-keystore.device-key";
const DEVICE_KEY_AAD: &[u8] = b"congdan software keystore: device key v1";
const WRAP_AAD: &[u8] = b"congdan software keystore: wrapped secret v1";

fn failed(what: &str) -> impl Fn(std::io::Error) -> PlatformError + '_ {
    move |e| PlatformError(format!("software keystore: {what}: {e}"))
}

/// Writes a key file atomically (temporary file, fsync, rename): a crash never leaves half a key.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), PlatformError> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(&tmp).map_err(failed("creating a key file"))?;
    f.write_all(bytes).map_err(failed("writing a key file"))?;
    f.sync_all().map_err(failed("syncing a key file"))?;
    std::fs::rename(&tmp, path).map_err(failed("installing a key file"))
}

impl SoftwareKeystore {
    /// Opens the keystore kept in `dir`, creating its keys on first use.
    pub fn open(dir: &Path) -> Result<SoftwareKeystore, PlatformError> {
        std::fs::create_dir_all(dir).map_err(failed("creating its directory"))?;
        let kek_path: PathBuf = dir.join(KEK_FILE);
        if !kek_path.exists() {
            let kek = random_key().map_err(|e| PlatformError(format!("software keystore: {e}")))?;
            write_private(&kek_path, &kek)?;
        }
        let kek_bytes = std::fs::read(&kek_path).map_err(failed("reading its key"))?;
        let kek = SealingKey::new(&kek_bytes)
            .map_err(|_| PlatformError("software keystore: key file damaged".into()))?;
        let device_path = dir.join(DEVICE_KEY_FILE);
        let pkcs8 = if device_path.exists() {
            let sealed = std::fs::read(&device_path).map_err(failed("reading the device key"))?;
            open_sealed(&kek, &sealed, DEVICE_KEY_AAD)?
        } else {
            let pkcs8 = P256Signer::generate_pkcs8().map_err(|e| PlatformError(e.to_string()))?;
            write_private(&device_path, &seal(&kek, &pkcs8, DEVICE_KEY_AAD)?)?;
            pkcs8
        };
        let signer = P256Signer::from_pkcs8(&pkcs8, None).map_err(|e| PlatformError(e.to_string()))?;
        Ok(SoftwareKeystore { kek, signer, presence_reasons: std::sync::Mutex::new(Vec::new()) })
    }

    /// What every signature with user presence was asked for, oldest first.
    pub fn presence_reasons(&self) -> Vec<String> {
        self.presence_reasons.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

fn seal(kek: &SealingKey, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, PlatformError> {
    kek.seal(plaintext, aad).map_err(|e| PlatformError(format!("software keystore: {e}")))
}

fn open_sealed(kek: &SealingKey, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, PlatformError> {
    kek.open(sealed, aad).map_err(|e| PlatformError(format!("software keystore: {e}")))
}

impl Keystore for SoftwareKeystore {
    fn device_public_key(&self) -> Result<Vec<u8>, PlatformError> {
        Ok(self.signer.public_key().bytes)
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, PlatformError> {
        self.signer.sign(message).map(|s| s.to_vec()).map_err(|e| PlatformError(e.to_string()))
    }

    fn sign_with_presence(&self, message: &[u8], reason: &str) -> Result<Vec<u8>, PlatformError> {
        self.presence_reasons
            .lock()
            .map_err(|_| PlatformError("software keystore: presence log poisoned".into()))?
            .push(reason.to_string());
        self.sign(message)
    }

    fn wrap(&self, plaintext: &[u8]) -> Result<Vec<u8>, PlatformError> {
        seal(&self.kek, plaintext, WRAP_AAD)
    }

    fn unwrap(&self, wrapped: &[u8]) -> Result<Vec<u8>, PlatformError> {
        open_sealed(&self.kek, wrapped, WRAP_AAD)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{Algorithm, PublicKey};

    #[test]
    fn device_key_persists_sealed_and_signs_verifiably() {
        let dir = tempfile::tempdir().unwrap();
        let ks = SoftwareKeystore::open(dir.path()).unwrap();
        let public = ks.device_public_key().unwrap();
        assert_eq!(public.len(), 65);
        let sig = ks.sign(b"hello").unwrap();
        let key = PublicKey { algorithm: Algorithm::EcdsaP256Sha256, bytes: public.clone() };
        key.verify(b"hello", &sig).unwrap();
        assert!(key.verify(b"hellO", &sig).is_err());
        assert!(ks.presence_reasons().is_empty(), "a plain signature asks for no presence");
        let sig = ks.sign_with_presence(b"decision", "Ký quyết định / Sign the decision").unwrap();
        key.verify(b"decision", &sig).unwrap();
        assert_eq!(ks.presence_reasons(), vec!["Ký quyết định / Sign the decision".to_string()]);

        // Reopened: the same device key.
        drop(ks);
        let again = SoftwareKeystore::open(dir.path()).unwrap();
        assert_eq!(again.device_public_key().unwrap(), public);

        // The private key is not on disk in the clear: the sealed file does not contain the
        // PKCS#8 header of a P-256 key.
        let on_disk = std::fs::read(dir.path().join(DEVICE_KEY_FILE)).unwrap();
        let pkcs8_p256_prefix = [0x30u8, 0x81, 0x87, 0x02, 0x01, 0x00];
        assert!(!on_disk.windows(6).any(|w| w == pkcs8_p256_prefix));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEK_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "key file readable by others");
        }
    }

    #[test]
    fn wrap_round_trips_and_refuses_tampering_and_foreign_data() {
        let dir = tempfile::tempdir().unwrap();
        let ks = SoftwareKeystore::open(dir.path()).unwrap();
        let wrapped = ks.wrap(b"data key").unwrap();
        assert_eq!(ks.unwrap(&wrapped).unwrap(), b"data key");
        assert_ne!(ks.wrap(b"data key").unwrap(), wrapped, "fresh nonce every time");
        for i in 0..wrapped.len() {
            let mut t = wrapped.clone();
            t[i] ^= 0x01;
            assert!(ks.unwrap(&t).is_err(), "byte {i}");
        }
        assert!(ks.unwrap(&wrapped[..10]).is_err());
        let other_dir = tempfile::tempdir().unwrap();
        let other = SoftwareKeystore::open(other_dir.path()).unwrap();
        assert!(other.unwrap(&wrapped).is_err(), "another device cannot unwrap");
    }
}
