//! The exported entry object.

use std::sync::Arc;

use congdan_core::platform::Platform;
use congdan_core::sync::{SyncReport, SyncState};
use congdan_core::{Core, CoreConfig};

use crate::agency::AgencyApi;
use crate::catalog::CatalogApi;
use crate::drafts::DraftsApi;
use congdan_core::outbox::DrainReport;
use crate::error::CongdanError;
use crate::identity::IdentityApi;
use crate::platform::{Keystore, KeystoreAdapter, NetworkAdapter, NetworkMonitor, SyncProgressListener};

/// What the shell passes when it opens the core.
#[derive(uniffi::Record)]
pub struct CoreSettings {
    /// The app's private data directory.
    pub data_dir: String,
    /// `https://…` (plain `http://` only to loopback, for development).
    pub server_url: String,
}

#[uniffi::remote(Enum)]
pub enum SyncState {
    UpToDate,
    Offline,
    LoginRequired,
}

#[uniffi::remote(Record)]
pub struct DrainReport {
    pub sent: u32,
    pub rejected: u32,
    pub waiting: u32,
    pub offline: bool,
    pub login_required: bool,
}

#[uniffi::remote(Record)]
pub struct SyncReport {
    pub state: SyncState,
    pub changes_applied: u32,
    pub pages: u32,
    pub clock_offset_ms: Option<i64>,
}

/// The core, opened once per app.
#[derive(uniffi::Object)]
pub struct CongdanCore {
    inner: Core,
}

#[uniffi::export(async_runtime = "tokio")]
impl CongdanCore {
    /// Opens (creating on first use) the core's storage in `settings.data_dir`, with the
    /// phone's network monitor and keystore.
    #[uniffi::constructor]
    pub fn open(
        settings: CoreSettings,
        network: Arc<dyn NetworkMonitor>,
        keystore: Arc<dyn Keystore>,
    ) -> Result<Arc<Self>, CongdanError> {
        let platform = Platform {
            network: Arc::new(NetworkAdapter(network)),
            keystore: Arc::new(KeystoreAdapter(keystore)),
        };
        let inner = Core::open(CoreConfig::new(settings.data_dir, settings.server_url), platform)?;
        Ok(Arc::new(CongdanCore { inner }))
    }

    pub fn catalog(&self) -> Arc<CatalogApi> {
        Arc::new(CatalogApi { inner: self.inner.catalog() })
    }

    pub fn identity(&self) -> Arc<IdentityApi> {
        Arc::new(IdentityApi { inner: self.inner.identity() })
    }

    pub fn drafts(&self) -> Arc<DraftsApi> {
        Arc::new(DraftsApi { inner: self.inner.drafts() })
    }

    /// The agency side of cases, for staff with a role `agency:<CODE>`.
    pub fn agency(&self) -> Arc<AgencyApi> {
        Arc::new(AgencyApi { inner: self.inner.agency() })
    }

    /// Document signing, the resident's side: requests, documents, approve or decline.
    pub fn signing(&self) -> Arc<crate::signing::SigningApi> {
        Arc::new(crate::signing::SigningApi { inner: self.inner.signing() })
    }

    /// The identity credential, the resident's side: renew online, show a QR offline.
    pub fn credential(&self) -> Arc<crate::credential::CredentialApi> {
        Arc::new(crate::credential::CredentialApi { inner: self.inner.credential() })
    }

    /// A front-desk verifier of identity codes (no login; offline once it has the city keys).
    pub fn identity_verifier(&self) -> Arc<crate::credential::IdentityVerifierApi> {
        Arc::new(crate::credential::IdentityVerifierApi { inner: self.inner.credential_verifier() })
    }

    /// QR transit tickets, the rider's side: buy, list, the rotating code for the gate.
    pub fn tickets(&self) -> Arc<crate::tickets::TicketsApi> {
        Arc::new(crate::tickets::TicketsApi { inner: self.inner.tickets() })
    }

    /// Sends every due command in the outbox now. Offline is reported, not thrown.
    pub async fn send_outbox(&self) -> Result<DrainReport, CongdanError> {
        Ok(self.inner.send_outbox().await?)
    }

    /// Tell the core the network is back (or the app came to the foreground): its outbox sender
    /// looks again at once.
    pub fn outbox_wakeup(&self) {
        self.inner.outbox_wakeup();
    }

    /// Runs the outbox sender until the calling coroutine/task is cancelled: it sends when woken
    /// (a new command, `outboxWakeup`) or when a postponed command falls due; no polling.
    pub async fn run_outbox_sender(&self) {
        self.inner.run_outbox_sender().await;
    }

    /// Pulls every change feed to its end. Offline is reported in the result's `state`, not
    /// thrown. Cancelling the calling coroutine/task stops the sync between pages; every applied
    /// page is complete.
    pub async fn sync(
        &self,
        listener: Option<Arc<dyn SyncProgressListener>>,
    ) -> Result<SyncReport, CongdanError> {
        let report = self
            .inner
            .sync(&move |p| listener.as_ref().is_none_or(|l| l.on_progress(p)))
            .await?;
        Ok(report)
    }
}

impl CongdanCore {
    /// The core inside, for the sub-objects built from it (the gate).
    pub(crate) fn core(&self) -> &Core {
        &self.inner
    }
}
