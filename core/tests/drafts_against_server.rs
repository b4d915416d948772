//! Drafts written offline and submitted through the one outbox to the real server: exactly once
//! whatever happens between phone and server (server down, requests dropped, answers lost after
//! the server committed).

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use common::{is_request, Fault, FaultProxy};
use congdan_core::drafts::store::DraftState;
use congdan_core::drafts::validation::{FieldValue, IssueCode};
use congdan_core::identity::dev_browser;
use congdan_core::outbox::OutboxState;
use congdan_core::platform::Platform;
use congdan_core::{Core, CoreConfig, Error};
use congdan_server::db::Db;
use congdan_server::{RunningServer, ServerConfig};

const REDIRECT: &str = "http://127.0.0.1:1/callback";

fn config(dir: &std::path::Path) -> ServerConfig {
    let mut config = ServerConfig::embedded(dir);
    config.listen = "127.0.0.1:0".parse().unwrap();
    config
}

fn phone(dir: &std::path::Path, url: &str) -> Core {
    Core::open(CoreConfig::new(dir, url), Platform::software(dir).unwrap()).unwrap()
}

async fn login(core: &Core, user: &str) {
    let request = core.identity().login_start(REDIRECT).unwrap();
    let callback = dev_browser::demo_login(&request.authorize_url, user, "demo", REDIRECT).await.unwrap();
    core.identity().login_finish(&callback).await.unwrap();
}

fn quiet(_: congdan_core::sync::SyncProgress) -> bool {
    true
}

/// Fills a hotline report (PA-1022: category, location, description).
fn fill_report(core: &Core, id: &str, n: usize) {
    let d = core.drafts();
    assert!(d.set_field(id, "category", FieldValue::Choice(vec!["flooding".into()])).unwrap().is_empty());
    assert!(d.set_field(id, "location", FieldValue::Location { lat: 10.7769, lon: 106.7009 }).unwrap().is_empty());
    let text = format!("Đường Nguyễn Hữu Cảnh ngập sâu, báo cáo số {n}.");
    assert!(d.set_field(id, "description", FieldValue::Text(text)).unwrap().is_empty());
}

/// Makes every postponed command due now, so the test need not wait out the backoff.
fn make_due(core: &Core) {
    core.store()
        .write("test", |tx| {
            tx.execute("UPDATE outbox SET next_attempt_at = 0 WHERE state = 'waiting'", [])
                .map_err(|source| Error::Database { context: "test", source })
        })
        .unwrap();
}

async fn server_count(s: &RunningServer, sql: &'static str) -> i64 {
    match &s.state.db {
        Db::Sqlite(pool) => pool.read("count", move |c| c.query_row(sql, [], |r| r.get(0))).await.unwrap(),
        Db::Postgres(_) => unreachable!("embedded SQLite here"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_written_offline_is_submitted_once_when_the_server_is_back() {
    let tmp = tempfile::tempdir().unwrap();
    let server_dir = tmp.path().join("server");
    let s = congdan_server::start(config(&server_dir)).await.unwrap();
    let addr = s.addr;
    let core = phone(&tmp.path().join("phone"), &s.url());
    login(&core, "lan").await;
    core.sync(&quiet).await.unwrap();
    s.shutdown().await;

    // Offline from here: the draft, live checks, and the submission all work.
    let drafts = core.drafts();
    let draft = drafts.create("PA-1022", Some("Ngập đường trước nhà")).unwrap();
    assert_eq!(draft.state, DraftState::Editing);
    match drafts.submit(&draft.id) {
        Err(Error::DraftInvalid { issues, .. }) => {
            let fields: Vec<&str> = issues.iter().map(|i| i.field_id.as_str()).collect();
            assert_eq!(fields, vec!["category", "location", "description"]);
            assert!(issues.iter().all(|i| i.code == IssueCode::Required && !i.message.vi.is_empty()));
        }
        other => panic!("expected the missing fields, got {other:?}"),
    }
    let live = drafts.set_field(&draft.id, "description", FieldValue::Text("ngập".into())).unwrap();
    assert_eq!(live[0].code, IssueCode::TooShort, "checked while typing");
    assert!(matches!(
        drafts.set_field(&draft.id, "no_such_field", FieldValue::Text("x".into())),
        Err(Error::NotFound { .. })
    ));
    fill_report(&core, &draft.id, 1);
    let key = drafts.submit(&draft.id).unwrap();
    assert_eq!(drafts.get(&draft.id).unwrap().unwrap().summary.state, DraftState::Submitting);
    let report = core.send_outbox().await.unwrap();
    assert!(report.offline && report.waiting == 1 && report.sent == 0, "{report:?}");
    let item = &drafts.outbox(&draft.id).unwrap()[0];
    assert_eq!((item.idempotency_key.as_str(), item.state), (key.as_str(), OutboxState::Waiting));

    // The server comes back on the same address; the next drain sends it, once.
    let mut again = config(&server_dir);
    again.listen = addr;
    let s = congdan_server::start(again).await.unwrap();
    make_due(&core);
    let report = core.send_outbox().await.unwrap();
    assert_eq!((report.sent, report.waiting), (1, 0), "{report:?}");
    let submitted = drafts.get(&draft.id).unwrap().unwrap();
    assert_eq!(submitted.summary.state, DraftState::Submitted);
    let number = submitted.summary.case_number.clone().unwrap();
    assert!(number.starts_with("HCM-"), "{number}");
    assert_eq!(drafts.outbox(&draft.id).unwrap()[0].state, OutboxState::Sent);
    assert!(matches!(
        drafts.set_field(&draft.id, "description", FieldValue::Text("sửa sau khi gửi".into())),
        Err(Error::DraftLocked { .. })
    ));

    // The case arrives on the account feed with its status and due date.
    core.sync(&quiet).await.unwrap();
    let cases = drafts.cases().unwrap();
    assert_eq!(cases.len(), 1);
    assert_eq!(cases[0].case_number, number);
    assert_eq!(cases[0].status, "received");
    assert_eq!(cases[0].draft_id.as_deref(), Some(draft.id.as_str()));
    assert_eq!(server_count(&s, "SELECT count(*) FROM cases").await, 1);
    assert_eq!(core.send_outbox().await.unwrap().sent, 0, "nothing left to send");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_requests_and_lost_answers_still_make_exactly_n_cases() {
    const N: usize = 12;
    let tmp = tempfile::tempdir().unwrap();
    let proxy = FaultProxy::start().await;
    let mut config = config(&tmp.path().join("server"));
    config.identity.public_url = Some(proxy.url());
    let s = congdan_server::start(config).await.unwrap();
    proxy.set_upstream(s.addr);
    let core = phone(&tmp.path().join("phone"), &proxy.url());
    login(&core, "minh").await;
    core.sync(&quiet).await.unwrap();

    let mut ids = Vec::new();
    for n in 0..N {
        let d = core.drafts().create("PA-1022", None).unwrap();
        fill_report(&core, &d.id, n);
        core.drafts().submit(&d.id).unwrap();
        ids.push(d.id);
    }
    // Every other submission request is dropped before the server, or answered and then cut
    // after the server committed the case.
    let seen = Arc::new(AtomicU32::new(0));
    let counter = seen.clone();
    proxy.set_faults(move |raw| {
        if !is_request(raw, "POST /v1/cases") {
            return Fault::Pass;
        }
        match counter.fetch_add(1, Ordering::SeqCst) % 4 {
            0 => Fault::CutResponse,
            1 => Fault::DropRequest,
            _ => Fault::Pass,
        }
    });
    for _ in 0..20 {
        make_due(&core);
        core.send_outbox().await.unwrap();
        if ids.iter().all(|id| core.drafts().get(id).unwrap().unwrap().summary.state == DraftState::Submitted) {
            break;
        }
    }
    assert!(seen.load(Ordering::SeqCst) as usize > N, "faults were injected");
    let mut numbers = std::collections::BTreeSet::new();
    for id in &ids {
        let d = core.drafts().get(id).unwrap().unwrap();
        assert_eq!(d.summary.state, DraftState::Submitted, "draft {id}");
        numbers.insert(d.summary.case_number.unwrap());
    }
    assert_eq!(numbers.len(), N, "one distinct case per draft");
    assert_eq!(server_count(&s, "SELECT count(*) FROM cases").await, N as i64, "exactly N cases");
    assert_eq!(server_count(&s, "SELECT count(DISTINCT draft_id) FROM cases").await, N as i64);
    s.shutdown().await;
}
