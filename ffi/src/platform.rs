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
