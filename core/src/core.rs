//! The entry object: open the core once per app with a data directory, a server URL and the
//! platform services; reach each capability through it.

use std::path::PathBuf;
use std::sync::Arc;

use crate::catalog::{self, CatalogStatus, Procedure, ProcedureKind, ProcedureSummary};
use crate::error::{Error, Result};
use crate::identity::wire::AccountInfo;
use crate::identity::{IdentityState, LoginRequest, Session, SessionState};
use crate::platform::Platform;
use crate::store::Store;
use crate::sync::client::{ApiClient, ClientConfig};
use crate::sync::{self, SyncProgress, SyncReport};

#[derive(Clone, Debug)]
pub struct CoreConfig {
    /// Where the database and files live (the app's private storage on a phone).
    pub data_dir: PathBuf,
    /// `https://…`, or `http://` to loopback for development.
    pub server_url: String,
    pub client: ClientConfig,
}

impl CoreConfig {
    pub fn new(data_dir: impl Into<PathBuf>, server_url: impl Into<String>) -> Self {
        CoreConfig { data_dir: data_dir.into(), server_url: server_url.into(), client: ClientConfig::default() }
    }
}

struct Inner {
    store: Store,
    client: ApiClient,
    platform: Platform,
    /// One sync at a time: a second caller waits for the first instead of pulling twice.
    sync_lock: tokio::sync::Mutex<()>,
    identity: IdentityState,
}

/// The core. Cheap to clone; every clone shares one store and one HTTP client.
#[derive(Clone)]
pub struct Core {
    inner: Arc<Inner>,
}

impl Core {
    pub const DATABASE_FILE: &'static str = "congdan.db";

    pub fn open(config: CoreConfig, platform: Platform) -> Result<Core> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|source| Error::DataDirectory { path: config.data_dir.clone(), source })?;
        let client = ApiClient::new(&config.server_url, config.client.clone())?;
        let store = Store::open(&config.data_dir.join(Self::DATABASE_FILE))?;
        Ok(Core {
            inner: Arc::new(Inner {
                store,
                client,
                platform,
                sync_lock: tokio::sync::Mutex::new(()),
                identity: IdentityState::default(),
            }),
        })
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Pulls every feed to its end. Offline is a state in the report, not an error.
    pub async fn sync(
        &self,
        progress: &(dyn Fn(SyncProgress) -> bool + Send + Sync),
    ) -> Result<SyncReport> {
        let _one_at_a_time = self.inner.sync_lock.lock().await;
        sync::pull_all(&self.inner.store, &self.inner.client, &self.inner.platform, &self.session(), progress).await
    }

    pub fn catalog(&self) -> CatalogService {
        CatalogService { core: self.clone() }
    }

    pub fn identity(&self) -> IdentityService {
        IdentityService { core: self.clone() }
    }

    pub(crate) fn session(&self) -> Session<'_> {
        Session {
            store: &self.inner.store,
            client: &self.inner.client,
            keystore: &self.inner.platform.keystore,
            state: &self.inner.identity,
        }
    }
}

/// Login, session state and logout (see `docs/identity.md`).
#[derive(Clone)]
pub struct IdentityService {
    core: Core,
}

impl IdentityService {
    /// Starts a login: open the returned URL in the system browser. `redirect_uri` is where the
    /// browser comes back to the app (its private-use scheme, or loopback for the CLI).
    pub fn login_start(&self, redirect_uri: &str) -> Result<LoginRequest> {
        self.core.session().login_start(redirect_uri)
    }

    /// Finishes a login with the address the browser came back to.
    pub async fn login_finish(&self, callback_url: &str) -> Result<AccountInfo> {
        self.core.session().login_finish(callback_url).await
    }

    pub fn state(&self) -> Result<SessionState> {
        self.core.session().state()
    }

    /// Revokes the session on the server (when reachable) and wipes it here. Local drafts and
    /// cached data stay. Returns whether the server confirmed.
    pub async fn logout(&self) -> Result<bool> {
        self.core.session().logout().await
    }

    /// Who the server says is logged in (an authenticated call).
    pub async fn account(&self) -> Result<AccountInfo> {
        self.core.session().account().await
    }
}

/// Offline reads of the procedure catalog.
#[derive(Clone)]
pub struct CatalogService {
    core: Core,
}

impl CatalogService {
    pub fn list(&self, kind: Option<ProcedureKind>) -> Result<Vec<ProcedureSummary>> {
        catalog::queries::list(&self.core.inner.store, kind)
    }

    pub fn search(&self, query: &str, limit: u32) -> Result<Vec<ProcedureSummary>> {
        catalog::queries::search(&self.core.inner.store, query, limit)
    }

    pub fn get(&self, code: &str) -> Result<Option<Procedure>> {
        catalog::queries::get(&self.core.inner.store, code)
    }

    pub fn status(&self) -> Result<CatalogStatus> {
        catalog::queries::status(&self.core.inner.store)
    }
}
