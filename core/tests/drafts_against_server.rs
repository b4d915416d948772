//! Drafts written offline and submitted through the one outbox to the real server: exactly once
//! whatever happens between phone and server (server down, requests dropped, answers lost after
//! the server committed).

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use common::{is_request, Fault, FaultProxy};
use congdan_core::drafts::store::DraftState;
use congdan_core::drafts::validation::{FieldValue, IssueCode};
use congdan_core::outbox::OutboxState;
use congdan_core::platform::Platform;
use congdan_core::{Core, CoreConfig, Error};
use congdan_server::db::Db;
use congdan_server::RunningServer;

mod phone;
use phone::{login, phone, quiet, server_config as config};

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
    let (proxy, s) = FaultProxy::in_front_of(config(&tmp.path().join("server"))).await;
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

// ---- attachments ----

fn sha_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A valid baseline JPEG of one grey pixel, grown to about `target` bytes with comment (COM)
/// segments of varied bytes, as a phone photo's metadata would: any decoder opens it.
fn jpeg_photo(target: usize) -> Vec<u8> {
    let mut j = vec![0xFF, 0xD8]; // SOI
    j.extend([0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00]);
    let mut n: u32 = 0x2545_F491;
    while j.len() + 65_540 < target {
        j.extend([0xFF, 0xFE, 0xFF, 0xFF]); // COM, length 65535 (with the length bytes)
        j.extend((0..65_533).map(|_| {
            n ^= n << 13;
            n ^= n >> 17;
            n ^= n << 5;
            (n >> 8) as u8
        }));
    }
    j.extend([0xFF, 0xDB, 0x00, 0x43, 0x00]); // DQT: table 0, all ones
    j.extend([1u8; 64]);
    j.extend([0xFF, 0xC0, 0x00, 0x0B, 0x08, 0x00, 0x01, 0x00, 0x01, 0x01, 0x01, 0x11, 0x00]); // SOF0 1x1 grey
    // DHT: DC table 0 and AC table 0, one code of length 1 each (DC category 0; AC end of block).
    j.extend([0xFF, 0xC4, 0x00, 0x14, 0x00, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00]);
    j.extend([0xFF, 0xC4, 0x00, 0x14, 0x10, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00]);
    j.extend([0xFF, 0xDA, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3F, 0x00]); // SOS
    j.push(0x3F); // DC diff 0 ("0"), end of block ("0"), padded with ones
    j.extend([0xFF, 0xD9]); // EOI
    j
}

async fn server_text(s: &RunningServer, sql: &'static str) -> String {
    match &s.state.db {
        Db::Sqlite(pool) => pool.read("read", move |c| c.query_row(sql, [], |r| r.get(0))).await.unwrap(),
        Db::Postgres(_) => unreachable!("embedded SQLite here"),
    }
}

/// The server's copy of an upload, reassembled from its stored chunks.
async fn server_copy(s: &RunningServer, sha: &str) -> Vec<u8> {
    let account = server_text(s, "SELECT account_id FROM blobs").await;
    let mut out = Vec::new();
    while let Some(chunk) = congdan_server::blobs::store::chunk_at(&s.state.db, &account, sha, out.len() as i64).await.unwrap() {
        out.extend(chunk);
    }
    out
}

/// A hotline report with a photo attached (PA-1022 `photos`), submitted and sent.
async fn report_with_photo(core: &Core, photo: &[u8]) -> (String, String) {
    let d = core.drafts().create("PA-1022", Some("Ngập có ảnh")).unwrap();
    fill_report(core, &d.id, 1);
    let attached = core.drafts().attach_bytes(&d.id, "photos", photo).unwrap();
    assert_eq!((attached.size as usize, attached.media_type.as_str()), (photo.len(), "image/jpeg"));
    assert!(core.drafts().validate(&d.id).unwrap().is_empty());
    core.drafts().submit(&d.id).unwrap();
    (d.id, attached.sha256)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_with_a_photo_arrives_intact() {
    let tmp = tempfile::tempdir().unwrap();
    let s = congdan_server::start(config(&tmp.path().join("server"))).await.unwrap();
    let core = phone(&tmp.path().join("phone"), &s.url());
    login(&core, "lan").await;
    core.sync(&quiet).await.unwrap();

    // A disguised program is refused before it is stored.
    let probe = core.drafts().create("PA-1022", None).unwrap();
    let mut exe = b"MZ\x90\x00\x03\x00\x00\x00".to_vec();
    exe.extend([0u8; 2048]);
    let exe_path = tmp.path().join("anh-ngap.jpg");
    std::fs::write(&exe_path, &exe).unwrap();
    assert!(matches!(core.drafts().attach_file(&probe.id, "photos", &exe_path), Err(Error::AttachmentRefused { .. })));

    let photo = jpeg_photo(700 * 1024);
    assert!(photo.len() > 2 * 256 * 1024 && photo.len() <= 700 * 1024, "three chunks: {}", photo.len());
    let (draft, sha) = report_with_photo(&core, &photo).await;
    let report = core.send_outbox().await.unwrap();
    // The probe draft's backup (a draft never submitted is backed up), the upload, then the case.
    assert_eq!((report.sent, report.rejected, report.waiting), (3, 0, 0), "{report:?}");
    let d = core.drafts().get(&draft).unwrap().unwrap();
    assert_eq!(d.summary.state, DraftState::Submitted);
    assert_eq!(sha_hex(&server_copy(&s, &sha).await), sha_hex(&photo), "the server has the photo intact");
    assert_eq!(server_text(&s, "SELECT sha256 FROM case_attachments").await, sha);
    let local = core.drafts().attachments(&draft).unwrap();
    assert_eq!(local[0].uploaded_bytes as usize, photo.len());
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_upload_resumes_from_the_last_finished_chunk() {
    let tmp = tempfile::tempdir().unwrap();
    let (proxy, s) = FaultProxy::in_front_of(config(&tmp.path().join("server"))).await;
    let core = phone(&tmp.path().join("phone"), &proxy.url());
    login(&core, "minh").await;
    core.sync(&quiet).await.unwrap();

    let photo = jpeg_photo(700 * 1024);
    let chunks = photo.len().div_ceil(256 * 1024);
    assert_eq!(chunks, 3);
    let (draft, sha) = report_with_photo(&core, &photo).await;
    // The second chunk reaches the server (which stores it), and its answer is cut.
    let patches = Arc::new(AtomicU32::new(0));
    let counter = patches.clone();
    proxy.set_faults(move |raw| {
        if !is_request(raw, "PATCH /v1/blobs/") {
            return Fault::Pass;
        }
        match counter.fetch_add(1, Ordering::SeqCst) + 1 {
            2 => Fault::CutResponse,
            _ => Fault::Pass,
        }
    });
    for _ in 0..5 {
        make_due(&core);
        core.send_outbox().await.unwrap();
        if core.drafts().get(&draft).unwrap().unwrap().summary.state == DraftState::Submitted {
            break;
        }
    }
    assert_eq!(core.drafts().get(&draft).unwrap().unwrap().summary.state, DraftState::Submitted);
    assert_eq!(
        patches.load(Ordering::SeqCst) as usize,
        chunks + 1,
        "each chunk once, plus the one whose answer was lost; never a full re-send"
    );
    assert_eq!(sha_hex(&server_copy(&s, &sha).await), sha);
    assert_eq!(server_count(&s, "SELECT count(*) FROM cases").await, 1);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_killed_mid_upload_sends_only_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let (proxy, s) = FaultProxy::in_front_of(config(&tmp.path().join("server"))).await;
    let phone_dir = tmp.path().join("phone");
    let core = phone(&phone_dir, &proxy.url());
    login(&core, "minh").await;
    core.sync(&quiet).await.unwrap();

    let photo = jpeg_photo(700 * 1024);
    let (draft, sha) = report_with_photo(&core, &photo).await;
    // Every chunk after the first is dropped: the network is gone mid-upload.
    let patches = Arc::new(AtomicU32::new(0));
    let counter = patches.clone();
    proxy.set_faults(move |raw| {
        if is_request(raw, "PATCH /v1/blobs/") && counter.fetch_add(1, Ordering::SeqCst) > 0 {
            return Fault::DropRequest;
        }
        Fault::Pass
    });
    let report = core.send_outbox().await.unwrap();
    assert!(report.offline && report.sent == 0, "{report:?}");
    let recorded = core.drafts().attachments(&draft).unwrap()[0].uploaded_bytes;
    assert_eq!(recorded, 256 * 1024, "the acknowledged chunk is recorded");
    drop(core);

    // The app starts again, the network is back: one offer, then only the two chunks left.
    let core = phone(&phone_dir, &proxy.url());
    let after = Arc::new(AtomicU32::new(0));
    let counter = after.clone();
    proxy.set_faults(move |raw| {
        if is_request(raw, "PATCH /v1/blobs/") {
            counter.fetch_add(1, Ordering::SeqCst);
        }
        Fault::Pass
    });
    make_due(&core);
    let report = core.send_outbox().await.unwrap();
    assert_eq!((report.sent, report.waiting), (2, 0), "{report:?}");
    assert_eq!(after.load(Ordering::SeqCst), 2, "finished chunks are not sent again");
    assert_eq!(sha_hex(&server_copy(&s, &sha).await), sha);
    assert_eq!(core.drafts().get(&draft).unwrap().unwrap().summary.state, DraftState::Submitted);
    s.shutdown().await;
}

/// Plays the agency on the server's own store (the core has no agency API): applies `step`.
async fn agency_step(s: &RunningServer, case_id: &str, step: congdan_server::cases::store::Step, key: &str) {
    use congdan_server::cases::store::{run_step, Decision};
    let (status, body) = run_step(&s.state.db, case_id, "test-agency", key, move |case| {
        assert!(case.is_some(), "the case exists");
        Decision::Apply(step)
    })
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agency_asks_for_more_information_the_resident_answers_and_the_case_is_done() {
    use congdan_server::cases::store::Step;
    let tmp = tempfile::tempdir().unwrap();
    let s = congdan_server::start(config(&tmp.path().join("server"))).await.unwrap();
    let core = phone(&tmp.path().join("phone"), &s.url());
    login(&core, "lan").await;
    core.sync(&quiet).await.unwrap();
    let drafts = core.drafts();

    // Only reports may be anonymous; this one is.
    let permit = drafts.create("CT-TAM-TRU", None).unwrap();
    assert!(matches!(drafts.set_anonymous(&permit.id, true), Err(Error::DraftInvalid { .. })));
    let draft = drafts.create("PA-1022", Some("Ngập trước nhà")).unwrap();
    fill_report(&core, &draft.id, 7);
    drafts.set_anonymous(&draft.id, true).unwrap();
    drafts.submit(&draft.id).unwrap();
    assert_eq!(core.send_outbox().await.unwrap().sent, 2, "the permit draft's backup, and the report");
    assert_eq!(server_count(&s, "SELECT anonymous FROM cases").await, 1, "stored as anonymous");
    core.sync(&quiet).await.unwrap();
    let case_id = drafts.cases().unwrap()[0].case_id.clone();

    // The hotline asks for the address and a longer description.
    let ask = Step {
        status: "needs_information".into(),
        message: Some("Xin cho biết địa chỉ cụ thể.".into()),
        requested_fields: vec!["address_note".into(), "description".into()],
        ..Step::default()
    };
    agency_step(&s, &case_id, ask, "ask").await;
    core.sync(&quiet).await.unwrap();
    let case = drafts.cases().unwrap().remove(0);
    assert_eq!(case.status, "needs_information");
    assert_eq!(case.requested_fields, vec!["address_note", "description"]);
    assert_eq!(case.timeline.last().unwrap().message.as_deref(), Some("Xin cho biết địa chỉ cụ thể."));

    // Checked on the phone first: only the requested fields, with valid values.
    let one = |field: &str, value: &str| [(field.to_string(), FieldValue::Text(value.into()))].into_iter().collect();
    match drafts.answer(&case_id, one("category", "garbage")) {
        Err(Error::DraftInvalid { issues, .. }) => assert_eq!(issues[0].field_id, "category"),
        other => panic!("expected a refusal of an unrequested field, got {other:?}"),
    }
    assert!(matches!(drafts.answer(&case_id, one("address_note", "12")), Err(Error::DraftInvalid { .. })));
    let key = drafts.answer(&case_id, one("address_note", "Trước số 12 Nguyễn Hữu Cảnh, Bình Thạnh")).unwrap();
    let report = core.send_outbox().await.unwrap();
    assert_eq!((report.sent, report.rejected), (1, 0), "{report:?}");
    let sent = congdan_core::outbox::item(core.store(), &key).unwrap().unwrap();
    assert_eq!((sent.kind.as_str(), sent.state), ("case.answer", OutboxState::Sent));
    assert_eq!(drafts.cases().unwrap()[0].status, "information_provided", "shown at once from the answer");
    assert_eq!(server_count(&s, "SELECT count(*) FROM cases WHERE status = 'information_provided'").await, 1);

    // The hotline finishes it; the resident sees the whole timeline.
    let done = Step {
        status: "done".into(),
        message: Some("Đã xử lý xong điểm ngập.".into()),
        result_document: Some("https://1022.hochiminhcity.gov.vn/kq/7".into()),
        ..Step::default()
    };
    agency_step(&s, &case_id, done, "done").await;
    core.sync(&quiet).await.unwrap();
    let case = drafts.cases().unwrap().remove(0);
    assert_eq!(case.status, "done");
    assert_eq!(case.result_document.as_deref(), Some("https://1022.hochiminhcity.gov.vn/kq/7"));
    assert!(case.requested_fields.is_empty());
    let steps: Vec<&str> = case.timeline.iter().map(|e| e.status.as_str()).collect();
    assert_eq!(steps, vec!["received", "needs_information", "information_provided", "done"]);
    assert!(matches!(
        drafts.answer(&case_id, one("address_note", "Trước số 14 Nguyễn Hữu Cảnh")),
        Err(Error::NoInformationRequested { .. })
    ));
    s.shutdown().await;
}

/// The values of a draft as the phone shows them.
fn values_of(core: &Core, id: &str) -> std::collections::BTreeMap<String, FieldValue> {
    core.drafts().get(id).unwrap().expect("the draft is there").values
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draft_continues_on_another_phone_and_concurrent_edits_merge_per_field() {
    let tmp = tempfile::tempdir().unwrap();
    let s = congdan_server::start(config(&tmp.path().join("server"))).await.unwrap();
    // Two phones of the same resident (two data directories).
    let a = phone(&tmp.path().join("phone-a"), &s.url());
    let b = phone(&tmp.path().join("phone-b"), &s.url());
    for p in [&a, &b] {
        login(p, "lan").await;
        p.sync(&quiet).await.unwrap();
    }
    let draft = a.drafts().create("PA-1022", Some("Ngập đường trước nhà")).unwrap();
    fill_report(&a, &draft.id, 1);
    let sent = a.send_outbox().await.unwrap();
    assert_eq!(sent.sent, 1, "fifty keystrokes or three: one backup of the latest state ({sent:?})");
    b.sync(&quiet).await.unwrap();
    assert_eq!(values_of(&b, &draft.id), values_of(&a, &draft.id), "the draft continues on phone B");
    assert_eq!(b.drafts().get(&draft.id).unwrap().unwrap().summary.title, "Ngập đường trước nhà");

    // Offline on both: different fields, and one common field edited later on B.
    let tick = || tokio::time::sleep(std::time::Duration::from_millis(5));
    a.drafts().set_field(&draft.id, "description", FieldValue::Text("A: nước ngập tới đầu gối, cả con hẻm.".into())).unwrap();
    tick().await;
    a.drafts().set_field(&draft.id, "location", FieldValue::Location { lat: 10.8, lon: 106.6 }).unwrap();
    tick().await;
    b.drafts().set_field(&draft.id, "category", FieldValue::Choice(vec!["streetlight".into()])).unwrap();
    tick().await;
    b.drafts().set_field(&draft.id, "description", FieldValue::Text("B: nước ngập tới thắt lưng, xe chết máy.".into())).unwrap();
    tick().await;
    a.drafts().rename(&draft.id, "Ngập nặng").unwrap();

    for _ in 0..2 {
        for p in [&a, &b] {
            p.send_outbox().await.unwrap();
            p.sync(&quiet).await.unwrap();
        }
    }
    let merged = values_of(&a, &draft.id);
    assert_eq!(merged, values_of(&b, &draft.id), "both phones end with the same draft");
    assert_eq!(merged["description"], FieldValue::Text("B: nước ngập tới thắt lưng, xe chết máy.".into()));
    assert_eq!(merged["location"], FieldValue::Location { lat: 10.8, lon: 106.6 });
    assert_eq!(merged["category"], FieldValue::Choice(vec!["streetlight".into()]));
    assert_eq!(b.drafts().get(&draft.id).unwrap().unwrap().summary.title, "Ngập nặng");

    // An edit on A after seeing B's orders after it, whatever A's clock says.
    a.drafts().set_field(&draft.id, "description", FieldValue::Text("A: đã rút bớt, còn ngập mắt cá.".into())).unwrap();
    a.send_outbox().await.unwrap();
    b.sync(&quiet).await.unwrap();
    assert_eq!(values_of(&b, &draft.id)["description"], FieldValue::Text("A: đã rút bớt, còn ngập mắt cá.".into()));

    // Deleted on A, gone on B.
    a.drafts().delete(&draft.id).unwrap();
    a.send_outbox().await.unwrap();
    b.sync(&quiet).await.unwrap();
    assert!(b.drafts().get(&draft.id).unwrap().is_none());
    assert!(b.drafts().list().unwrap().iter().all(|d| d.id != draft.id));
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_phone_two_residents_each_command_goes_with_its_own_account() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = config(&tmp.path().join("server"));
    // Three logins from one address: more than the login rate limit's burst allows.
    c.identity.auth_rate_limit = congdan_server::config::RateLimit { burst: 1_000, refill_secs: 0.01 };
    let s = congdan_server::start(c).await.unwrap();
    let core = phone(&tmp.path().join("phone"), &s.url());
    let photo = jpeg_photo(40 * 1024);

    // Lan sends a report with a photo, queues a second one and hands the phone over.
    login(&core, "lan").await;
    core.sync(&quiet).await.unwrap();
    report_with_photo(&core, &photo).await;
    assert_eq!(core.send_outbox().await.unwrap().sent, 2, "the upload and the case");
    let (lans_second, _) = report_with_photo(&core, &photo).await;
    assert!(core.identity().logout().await.unwrap());

    // Minh logs in on the same phone: Lan's queued case is not sent with Minh's tokens.
    login(&core, "minh").await;
    let report = core.send_outbox().await.unwrap();
    assert_eq!(report.sent, 0, "{report:?}");
    assert_eq!(core.drafts().outbox(&lans_second).unwrap()[0].state, OutboxState::Waiting);
    assert_eq!(server_count(&s, "SELECT count(*) FROM cases").await, 1);
    // Minh's own report with the same photo: the server has it for Lan only, so it is uploaded
    // again for Minh before his case.
    let (minhs, _) = report_with_photo(&core, &photo).await;
    let report = core.send_outbox().await.unwrap();
    assert_eq!((report.sent, report.rejected), (2, 0), "Minh's upload and case: {report:?}");
    assert_eq!(core.drafts().get(&minhs).unwrap().unwrap().summary.state, DraftState::Submitted);
    assert_eq!(core.drafts().outbox(&lans_second).unwrap()[0].state, OutboxState::Waiting);
    assert!(core.identity().logout().await.unwrap());

    // Lan comes back: her case goes, as hers.
    login(&core, "lan").await;
    let report = core.send_outbox().await.unwrap();
    assert_eq!((report.sent, report.rejected), (1, 0), "{report:?}");
    assert_eq!(server_count(&s, "SELECT count(*) FROM cases").await, 3);
    assert_eq!(server_count(&s, "SELECT count(DISTINCT account_id) FROM cases").await, 2);
    assert_eq!(
        server_count(&s, "SELECT count(*) FROM cases c JOIN cases f ON f.account_id = c.account_id AND f.id <> c.id").await,
        2,
        "Lan's two cases under one account"
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_reach_the_other_phone_through_the_running_sender_in_one_backup_per_burst() {
    let tmp = tempfile::tempdir().unwrap();
    let s = congdan_server::start(config(&tmp.path().join("server"))).await.unwrap();
    let mut a_config = CoreConfig::new(tmp.path().join("phone-a"), s.url());
    a_config.draft_backup_delay_ms = 1_000;
    let a = Core::open(a_config, Platform::software(&tmp.path().join("phone-a")).unwrap()).unwrap();
    let b = phone(&tmp.path().join("phone-b"), &s.url());
    for p in [&a, &b] {
        login(p, "lan").await;
        p.sync(&quiet).await.unwrap();
    }
    // Phone A runs its sender as the app does; nobody calls send_outbox on it.
    let sender = tokio::spawn({
        let a = a.clone();
        async move { a.run_outbox_sender().await }
    });
    let draft = a.drafts().create("PA-1022", Some("Đèn đường hỏng")).unwrap();
    let backups_sent = |core: &Core| {
        core.store()
            .read("t", |c| {
                c.query_row("SELECT count(*) FROM outbox WHERE kind = 'draft.backup' AND state = 'sent'", [], |r| {
                    r.get::<_, i64>(0)
                })
            })
            .unwrap()
    };
    wait_until("the new draft's backup", || backups_sent(&a) == 1).await;
    // A burst of edits well inside the delay: one backup with the last state.
    for n in 0..20 {
        a.drafts().set_field(&draft.id, "description", FieldValue::Text(format!("Đèn số {n} không sáng từ tối qua."))).unwrap();
    }
    wait_until("the edits' backup", || backups_sent(&a) == 2).await;
    b.sync(&quiet).await.unwrap();
    assert_eq!(
        values_of(&b, &draft.id)["description"],
        FieldValue::Text("Đèn số 19 không sáng từ tối qua.".into()),
        "the last edit reached phone B without anyone pressing send"
    );
    assert_eq!(backups_sent(&a), 2, "twenty edits, one upload");
    sender.abort();
    s.shutdown().await;
}

async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// An agency download cut off part way (the staff's laptop lost its network) resumes from its
/// `.part` file: only the missing Range pieces are fetched, and the whole file is checked against
/// its SHA-256 before it takes its name. A `.part` that is not the file's beginning is caught by
/// that check and removed, so the next attempt starts clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agency_download_resumes_from_its_part_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (proxy, s) = FaultProxy::in_front_of(config(&tmp.path().join("server"))).await;
    let core = phone(&tmp.path().join("phone"), &proxy.url());
    login(&core, "lan").await;
    core.sync(&quiet).await.unwrap();
    let piece = congdan_core::drafts::agency::DOWNLOAD_PIECE_BYTES as usize;
    let photo = jpeg_photo(piece * 2 + 300 * 1024);
    assert!(photo.len() > 2 * piece, "three Range pieces: {}", photo.len());
    let (draft, sha) = report_with_photo(&core, &photo).await;
    assert_eq!(core.send_outbox().await.unwrap().rejected, 0);
    core.sync(&quiet).await.unwrap();
    let case_id = core.drafts().cases().unwrap().into_iter().find(|c| c.draft_id.as_deref() == Some(draft.as_str())).unwrap().case_id;

    // The hotline staff on their own device. The network dies during the second piece.
    let staff = phone(&tmp.path().join("staff"), &proxy.url());
    login(&staff, "hotline").await;
    let ranges: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let network_down = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (seen, down) = (ranges.clone(), network_down.clone());
    proxy.set_faults(move |raw| {
        if down.load(Ordering::SeqCst) {
            return Fault::DropRequest;
        }
        let head = String::from_utf8_lossy(raw).to_ascii_lowercase();
        let Some(range) = head.lines().find_map(|l| l.strip_prefix("range: ")) else { return Fault::Pass };
        seen.lock().unwrap().push(range.trim().to_string());
        if range.starts_with(&format!("bytes={piece}-")) {
            // Half of the second piece arrives, then the network is gone (the client's own retries too).
            down.store(true, Ordering::SeqCst);
            return Fault::CutResponse;
        }
        Fault::Pass
    });
    let agency = staff.agency();
    let dest = tmp.path().join("anh-ngap.jpg");
    let part = tmp.path().join("anh-ngap.jpg.part");
    let first = agency.download_attachment(&case_id, &sha, &dest).await;
    assert!(first.is_err(), "the cut shows as an error: {first:?} {:?}", ranges.lock().unwrap());
    assert!(!dest.exists());
    assert_eq!(std::fs::read(&part).unwrap(), photo[..piece], "the first whole piece is kept");
    // The network is back; the faults judge no more.
    proxy.set_faults({
        let seen = ranges.clone();
        move |raw| {
            let head = String::from_utf8_lossy(raw).to_ascii_lowercase();
            if let Some(range) = head.lines().find_map(|l| l.strip_prefix("range: ")) {
                seen.lock().unwrap().push(range.trim().to_string());
            }
            Fault::Pass
        }
    });
    ranges.lock().unwrap().clear();
    assert_eq!(agency.download_attachment(&case_id, &sha, &dest).await.unwrap(), photo.len() as u64);
    assert_eq!(std::fs::read(&dest).unwrap(), photo, "the resumed file is the photo");
    assert!(!part.exists(), "the .part file took the file's name");
    let last = photo.len() - 1;
    assert_eq!(
        *ranges.lock().unwrap(),
        vec![format!("bytes={piece}-{}", 2 * piece - 1), format!("bytes={}-{last}", 2 * piece)],
        "only the missing pieces were fetched"
    );

    // A .part that is not this file's beginning: refused by the hash check and removed.
    let dest2 = tmp.path().join("anh-ngap-2.jpg");
    let part2 = tmp.path().join("anh-ngap-2.jpg.part");
    let mut wrong = photo[..piece + piece / 2].to_vec();
    wrong[1000] ^= 0x55;
    std::fs::write(&part2, &wrong).unwrap();
    match agency.download_attachment(&case_id, &sha, &dest2).await {
        Err(Error::BadData(why)) => assert!(why.contains("SHA-256"), "{why}"),
        other => panic!("a wrong beginning must fail the hash check: {other:?}"),
    }
    assert!(!dest2.exists() && !part2.exists(), "nothing half-right is left behind");
    // The next attempt starts from nothing and succeeds.
    assert_eq!(agency.download_attachment(&case_id, &sha, &dest2).await.unwrap(), photo.len() as u64);
    assert_eq!(std::fs::read(&dest2).unwrap(), photo);
    s.shutdown().await;
}
