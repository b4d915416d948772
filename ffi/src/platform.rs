//! Foreign traits the shells implement, and their adapters to the core's platform traits.

use std::sync::Arc;

use congdan_core::platform as core_platform;
use congdan_core::platform::NetworkState;
use congdan_core::sync::SyncProgress;

#[uniffi::remote(Enum)]
pub enum NetworkState {
    Offline,
    Unmetered,
    Metered,
}

#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum PlatformError {
    #[error("{reason}")]
    Failed { reason: String },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for PlatformError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        PlatformError::Failed { reason: e.reason }
    }
}

/// The phone's connectivity service (Android ConnectivityManager, iOS NWPathMonitor).
#[uniffi::export(with_foreign)]
pub trait NetworkMonitor: Send + Sync {
    fn current_state(&self) -> Result<core_platform::NetworkState, PlatformError>;
}

pub(crate) struct NetworkAdapter(pub Arc<dyn NetworkMonitor>);

impl core_platform::NetworkMonitor for NetworkAdapter {
    fn current_state(&self) -> Result<core_platform::NetworkState, core_platform::PlatformError> {
        self.0.current_state().map_err(|e| core_platform::PlatformError(e.to_string()))
    }
}

/// The phone's keystore (Android Keystore / iOS Secure Enclave): a P-256 device key that never
/// leaves it, and wrapping of small secrets at rest. Any method may ask for user presence.
#[uniffi::export(with_foreign)]
pub trait Keystore: Send + Sync {
    /// The device key's public key as an uncompressed SEC1 point (65 bytes: 0x04 ‖ x ‖ y),
    /// creating the key on first use.
    fn device_public_key(&self) -> Result<Vec<u8>, PlatformError>;
    /// ECDSA P-256 with SHA-256 over `message`, as 64 bytes `r ‖ s` (convert from DER).
    fn sign(&self, message: Vec<u8>) -> Result<Vec<u8>, PlatformError>;
    /// Like `sign`, but only after the resident confirms their presence (PIN or biometrics) in a
    /// system prompt showing `reason`; blocks until they answer (called on one of the core's
    /// threads, never the main thread). Refused or cancelled: an error, nothing signed. Used for
    /// signature decisions and dossier signatures, never for the DPoP proof of every call.
    fn sign_with_presence(&self, message: Vec<u8>, reason: String) -> Result<Vec<u8>, PlatformError>;
    /// Encrypts a small secret with a key that stays in the keystore (AES-GCM).
    fn wrap(&self, plaintext: Vec<u8>) -> Result<Vec<u8>, PlatformError>;
    /// Reverses `wrap`; fails on anything this keystore did not wrap.
    fn unwrap(&self, wrapped: Vec<u8>) -> Result<Vec<u8>, PlatformError>;
}

pub(crate) struct KeystoreAdapter(pub Arc<dyn Keystore>);

fn platform_error(e: PlatformError) -> core_platform::PlatformError {
    core_platform::PlatformError(e.to_string())
}

impl core_platform::Keystore for KeystoreAdapter {
    fn device_public_key(&self) -> Result<Vec<u8>, core_platform::PlatformError> {
        self.0.device_public_key().map_err(platform_error)
    }
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, core_platform::PlatformError> {
        self.0.sign(message.to_vec()).map_err(platform_error)
    }
    fn sign_with_presence(&self, message: &[u8], reason: &str) -> Result<Vec<u8>, core_platform::PlatformError> {
        self.0.sign_with_presence(message.to_vec(), reason.to_string()).map_err(platform_error)
    }
    fn wrap(&self, plaintext: &[u8]) -> Result<Vec<u8>, core_platform::PlatformError> {
        self.0.wrap(plaintext.to_vec()).map_err(platform_error)
    }
    fn unwrap(&self, wrapped: &[u8]) -> Result<Vec<u8>, core_platform::PlatformError> {
        self.0.unwrap(wrapped.to_vec()).map_err(platform_error)
    }
}

#[uniffi::remote(Record)]
pub struct SyncProgress {
    pub feed: String,
    pub changes_applied: u32,
    pub has_more: bool,
}

/// Told after every applied page of a sync, for a progress bar. Returns whether to go on:
/// `false` stops the sync after this page (which stays applied) with a `Cancelled` error.
#[uniffi::export(with_foreign)]
pub trait SyncProgressListener: Send + Sync {
    fn on_progress(&self, progress: congdan_core::sync::SyncProgress) -> bool;
}
