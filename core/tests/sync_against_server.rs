//! The real core against the real server on loopback (in-process server, real port, SQLite file).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use congdan_core::catalog::ProcedureKind;
use congdan_core::platform::{NetworkMonitor, NetworkState, Platform, PlatformError};
use congdan_core::sync::SyncState;
use congdan_core::{Core, CoreConfig, Error};
use congdan_server::catalog::{self, store};
use congdan_server::{RunningServer, ServerConfig};

struct Network(std::sync::Mutex<NetworkState>);
impl NetworkMonitor for Network {
    fn current_state(&self) -> Result<NetworkState, PlatformError> {
        Ok(*self.0.lock().unwrap())
    }
}

async fn server(dir: &std::path::Path) -> RunningServer {
    let mut config = ServerConfig::embedded(dir);
    config.listen = "127.0.0.1:0".parse().unwrap();
    congdan_server::start(config).await.unwrap()
}

fn open(dir: &std::path::Path, url: &str) -> (Core, Arc<Network>) {
    let net = Arc::new(Network(std::sync::Mutex::new(NetworkState::Unmetered)));
    let keystore = Arc::new(congdan_core::platform::SoftwareKeystore::open(&dir.join("keystore")).unwrap());
    let core = Core::open(CoreConfig::new(dir, url), Platform { network: net.clone(), keystore }).unwrap();
    (core, net)
}

fn quiet(_: congdan_core::sync::SyncProgress) -> bool {
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_sync_fetches_all_then_only_what_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let s = server(&tmp.path().join("server")).await;
    let (core, _) = open(&tmp.path().join("phone"), &s.url());
    let total = catalog::parse_catalog(catalog::DEMO_CATALOG).unwrap().len() as u32;

    let report = core.sync(&quiet).await.unwrap();
    assert_eq!(report.state, SyncState::UpToDate);
    assert_eq!(report.changes_applied, total);
    assert!(report.clock_offset_ms.unwrap().abs() < 5_000);
    assert_eq!(core.catalog().status().unwrap().procedure_count, total);
    assert!(core.catalog().list(Some(ProcedureKind::Report)).unwrap().iter().any(|p| p.code == "PA-1022"));

    // Nothing changed: nothing fetched.
    assert_eq!(core.sync(&quiet).await.unwrap().changes_applied, 0);

    // The operator changes one fee and withdraws one procedure: exactly two changes arrive.
    let mut procedures = catalog::parse_catalog(catalog::DEMO_CATALOG).unwrap();
    procedures[0].fee_vnd = 12_345;
    store::publish(&s.state.db, procedures.clone()).await.unwrap();
    store::withdraw(&s.state.db, "CT-BAN-SAO").await.unwrap();
    assert_eq!(core.sync(&quiet).await.unwrap().changes_applied, 2);
    assert_eq!(core.catalog().get(&procedures[0].code).unwrap().unwrap().fee_vnd, 12_345);
    assert!(core.catalog().get("CT-BAN-SAO").unwrap().is_none());
    assert_eq!(core.catalog().status().unwrap().procedure_count, total - 1);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_is_a_state_and_the_cache_keeps_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let s = server(&tmp.path().join("server")).await;
    let url = s.url();
    let (core, net) = open(&tmp.path().join("phone"), &url);
    core.sync(&quiet).await.unwrap();
    let cached = core.catalog().list(None).unwrap();

    // The phone says it is offline: no request is made even though the server is up.
    *net.0.lock().unwrap() = NetworkState::Offline;
    store::withdraw(&s.state.db, "CT-BAN-SAO").await.unwrap();
    let r = core.sync(&quiet).await.unwrap();
    assert_eq!((r.state, r.changes_applied, r.clock_offset_ms), (SyncState::Offline, 0, None));

    // The phone thinks it is online but the server is down.
    *net.0.lock().unwrap() = NetworkState::Metered;
    s.shutdown().await;
    let r = core.sync(&quiet).await.unwrap();
    assert_eq!(r.state, SyncState::Offline);
    assert_eq!(core.catalog().list(None).unwrap(), cached);
    assert_eq!(core.catalog().search("tam tru", 5).unwrap()[0].code, "CT-TAM-TRU");
    drop(core);

    // App restarted while offline: the catalog is still there.
    let (core, _) = open(&tmp.path().join("phone"), &url);
    assert_eq!(core.catalog().list(None).unwrap(), cached);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_pages_report_progress_and_a_cancelled_sync_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let s = server(&tmp.path().join("server")).await;
    let template = catalog::parse_catalog(catalog::DEMO_CATALOG).unwrap().remove(0);
    let extra: Vec<_> = (0..450)
        .map(|i| {
            let mut p = template.clone();
            p.code = format!("X-{i:04}");
            p
        })
        .collect();
    store::publish(&s.state.db, extra).await.unwrap();
    let total = 450 + catalog::parse_catalog(catalog::DEMO_CATALOG).unwrap().len() as u32;
    let (core, _) = open(&tmp.path().join("phone"), &s.url());

    // Stop after the first page: it stays applied, the rest waits.
    let err = core.sync(&|_| false).await.unwrap_err();
    assert!(matches!(err, Error::Cancelled));
    let after_cancel = core.catalog().status().unwrap().procedure_count;
    assert_eq!(after_cancel, 200, "exactly one page applied");
    assert_eq!(core.catalog().status().unwrap().last_synced_at_ms, None, "not pulled to the end yet");

    let pages = AtomicU32::new(0);
    let report = core
        .sync(&|p| {
            pages.fetch_add(1, Ordering::SeqCst);
            assert_eq!(p.feed, "public");
            true
        })
        .await
        .unwrap();
    assert_eq!(report.changes_applied, total - 200);
    assert_eq!(pages.load(Ordering::SeqCst), 2);
    assert!(core.catalog().status().unwrap().last_synced_at_ms.is_some());
    assert_eq!(core.catalog().status().unwrap().procedure_count, total);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_a_shorter_history_is_pulled_from_the_start() {
    let tmp = tempfile::tempdir().unwrap();
    let first = server(&tmp.path().join("server-a")).await;
    let (core, _) = open(&tmp.path().join("phone"), &first.url());
    let mut procedures = catalog::parse_catalog(catalog::DEMO_CATALOG).unwrap();
    for n in 0..3 {
        procedures[0].fee_vnd = n;
        store::publish(&first.state.db, procedures.clone()).await.unwrap();
    }
    core.sync(&quiet).await.unwrap();
    let addr = first.addr;
    first.shutdown().await;

    // A server restored from an older backup answers on the same address.
    let mut config = ServerConfig::embedded(&tmp.path().join("server-b"));
    config.listen = addr;
    let second = congdan_server::start(config).await.unwrap();
    store::withdraw(&second.state.db, "CT-BAN-SAO").await.unwrap();
    let report = core.sync(&quiet).await.unwrap();
    assert_eq!(report.state, SyncState::UpToDate);
    assert!(core.catalog().get("CT-BAN-SAO").unwrap().is_none());
    assert_eq!(core.catalog().get(&procedures[0].code).unwrap().unwrap().fee_vnd, template_fee(), "the restored server's catalog replaces ours");
    second.shutdown().await;
}

fn template_fee() -> u64 {
    catalog::parse_catalog(catalog::DEMO_CATALOG).unwrap()[0].fee_vnd
}

#[test]
fn bad_server_urls_are_refused_at_open() {
    let tmp = tempfile::tempdir().unwrap();
    for url in ["http://api.example.vn", "ftp://127.0.0.1", "::"] {
        let r = Core::open(CoreConfig::new(tmp.path(), url), Platform::software(tmp.path()).unwrap());
        assert!(matches!(r, Err(Error::InvalidConfig(_))), "{url}");
    }
}
