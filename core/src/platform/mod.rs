//! The platform boundary: small traits the phone implements (Android and iOS shells through the
//! ffi crate), each returning `Result`. The core ships software implementations for the CLI and
//! tests. Nothing else in the core knows which platform it runs on.

use std::path::Path;
use std::sync::Arc;

mod keystore;

pub use keystore::{Keystore, SoftwareKeystore};

/// What the phone's connectivity manager says about the network right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetworkState {
    /// No usable network: the core does not even try, which saves the radio and the battery.
    Offline,
    /// Online on an unmetered network (Wi-Fi, Ethernet).
    Unmetered,
    /// Online on a metered network (mobile data): the core keeps transfers small.
    Metered,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PlatformError(pub String);

/// The phone's network state service.
pub trait NetworkMonitor: Send + Sync {
    fn current_state(&self) -> Result<NetworkState, PlatformError>;
}

/// Software network monitor for the CLI and tests: the host is assumed online and the sync client
/// finds out the truth when it connects.
#[derive(Debug, Default)]
pub struct AssumeOnlineNetwork;

impl NetworkMonitor for AssumeOnlineNetwork {
    fn current_state(&self) -> Result<NetworkState, PlatformError> {
        Ok(NetworkState::Unmetered)
    }
}

/// All platform services the core needs, handed over once when the core is opened.
#[derive(Clone)]
pub struct Platform {
    pub network: Arc<dyn NetworkMonitor>,
    /// The device key and the wrapping of secrets at rest.
    pub keystore: Arc<dyn Keystore>,
}

impl Platform {
    /// Software services for the CLI and tests: the network assumed online and a SOFTWARE
    /// keystore kept in `keystore_dir` (never used in the phone apps).
    pub fn software(keystore_dir: &Path) -> Result<Self, PlatformError> {
        Ok(Platform {
            network: Arc::new(AssumeOnlineNetwork),
            keystore: Arc::new(SoftwareKeystore::open(keystore_dir)?),
        })
    }
}
