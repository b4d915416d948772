//! Document signing on the real server: the demo agency (`staff`) creates a request with a PDF,
//! the resident (`lan`) pulls it, reads the document offline, approves while the server is down,
//! and the decision goes when it is back; the agency downloads a bundle that verifies with the
//! keys it carries. A request cancelled while the phone was offline: the queued approval is
//! refused cleanly and the resident is told why. A create whose answer is lost on the way back
//! is retried with its idempotency key and makes one request, not two; one that finds its first
//! attempt still in progress on the server waits and asks again.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use base64::Engine;
use congdan_core::crypto::{Algorithm, PublicKey};
use congdan_core::platform::{Keystore, SoftwareKeystore};
use congdan_core::signing::agency::NewSignatureRequest;
use congdan_core::signing::public_key_pem;
use congdan_core::signing::wire::{sha256, summary_hash, verify_decision, Intent};
use congdan_core::signing::{DecisionStatus, Refusal, RequestState};
use congdan_core::{Core, Error};
use congdan_server::{RunningServer, ServerConfig};

mod common;
use common::{is_request, Fault, FaultProxy};

mod phone;
use phone::{login, phone, quiet, try_login};

const LAN_NID: &str = "079165012345";
const SUMMARY: &str = "Biên bản bàn giao căn hộ A-1203 cho bà Nguyễn Thị Lan.";

fn config(dir: &std::path::Path, listen: std::net::SocketAddr) -> ServerConfig {
    let mut config = ServerConfig::embedded(dir);
    config.listen = listen;
    config
}

fn pdf(text: &str) -> Vec<u8> {
    format!("%PDF-1.4\n% {text}\n%%EOF\n").into_bytes()
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn new_request(title: &str) -> NewSignatureRequest {
    NewSignatureRequest {
        resident_national_id: LAN_NID.into(),
        title: title.into(),
        summary: SUMMARY.into(),
        purpose: "Xác nhận đã nhận bàn giao".into(),
        expires_at: now_secs() + 7 * 86_400,
        agency_code: None,
    }
}

fn make_due(core: &Core) {
    core.store()
        .write("test", |tx| {
            tx.execute("UPDATE outbox SET next_attempt_at = 0 WHERE state = 'waiting'", [])
                .map_err(|source| Error::Database { context: "test", source })
        })
        .unwrap();
}

async fn restart(dir: &std::path::Path, addr: std::net::SocketAddr) -> RunningServer {
    congdan_server::start(config(dir, addr)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approved_offline_sent_later_and_verified_by_the_agency() {
    let tmp = tempfile::tempdir().unwrap();
    let server_dir = tmp.path().join("server");
    let s = congdan_server::start(config(&server_dir, "127.0.0.1:0".parse().unwrap())).await.unwrap();
    let addr = s.addr;
    let lan = phone(&tmp.path().join("lan"), &s.url());
    login(&lan, "lan").await;
    let staff = phone(&tmp.path().join("staff"), &s.url());
    login(&staff, "staff").await;

    let document = pdf("bien ban ban giao A-1203");
    let created = staff.signing().agency().create(&new_request("Bàn giao căn hộ"), &document).await.unwrap();
    let id = created.id.clone();

    lan.sync(&quiet).await.unwrap();
    let info = lan.signing().get(&id).unwrap();
    assert_eq!(info.request.summary, SUMMARY);
    assert_eq!(info.request.state, RequestState::Pending);
    let path = lan.signing().fetch_document(&id).await.unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), document);

    // Offline from here: the document is readable and the approval is signed and queued.
    s.shutdown().await;
    let info = lan.signing().get(&id).unwrap();
    assert_eq!(std::fs::read(info.document_path.unwrap()).unwrap(), document);
    let key = lan.signing().approve(&id).unwrap();
    let report = lan.send_outbox().await.unwrap();
    assert_eq!(report.sent, 0);
    assert_eq!(lan.signing().get(&id).unwrap().decision_status, DecisionStatus::Queued);

    // Back online: sent once, accepted, the state follows.
    let s = restart(&server_dir, addr).await;
    make_due(&lan);
    let report = lan.send_outbox().await.unwrap();
    assert_eq!(report.sent, 1, "{report:?}");
    let info = lan.signing().get(&id).unwrap();
    assert_eq!(info.decision_status, DecisionStatus::Sent);
    assert_eq!(info.request.state, RequestState::Signed);
    lan.sync(&quiet).await.unwrap();
    assert_eq!(lan.signing().get(&id).unwrap().request.state, RequestState::Signed);
    assert!(lan.signing().outbox(&id).unwrap().iter().any(|i| i.idempotency_key == key));

    // The agency's view of the result.
    let result = staff.signing().agency().get(&id).await.unwrap();
    assert_eq!(result.state, RequestState::Signed);
    let decision = result.decision.expect("the decision");
    assert_eq!((decision.intent, decision.decided_at), (Intent::Approve, result.decided_at));
    assert_eq!(result.resident_national_id_masked.as_deref(), Some("079*******45"));
    let signed = staff.signing().agency().list(Some(RequestState::Signed), None).await.unwrap();
    assert_eq!(signed.requests.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), [id.as_str()]);
    assert!(staff.signing().agency().list(Some(RequestState::Pending), None).await.unwrap().requests.is_empty());

    // The agency's bundle: the decision verifies with the device key it carries, over the
    // document and summary the agency sent.
    let bundle = staff.signing().agency().bundle(&id).await.unwrap();
    let decoded = &bundle.decoded;
    assert_eq!(decoded.intent, Intent::Approve);
    assert_eq!(decoded.document_sha256, congdan_core::crypto::hex(&sha256(&document)));
    assert_eq!(decoded.summary_sha256, congdan_core::crypto::hex(&summary_hash(SUMMARY)));
    assert_eq!(bundle.request.summary, SUMMARY);
    let statement = base64::engine::general_purpose::STANDARD.decode(&bundle.decision.statement).unwrap();
    let device = device_key(&tmp.path().join("lan"));
    assert_eq!(bundle.decision.public_key_pem, public_key_pem(&device).unwrap());
    let verified = verify_decision(&statement, &vec![(device.default_key_id(), device)]).unwrap();
    assert_eq!(verified.decision.intent, Intent::Approve);
    assert_eq!(verified.decision.request_id, id);
    assert_eq!(verified.decision.document_sha256, sha256(&document));
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_queued_while_the_agency_cancelled_is_refused_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let server_dir = tmp.path().join("server");
    let s = congdan_server::start(config(&server_dir, "127.0.0.1:0".parse().unwrap())).await.unwrap();
    let addr = s.addr;
    let lan = phone(&tmp.path().join("lan"), &s.url());
    login(&lan, "lan").await;
    let staff = phone(&tmp.path().join("staff"), &s.url());
    login(&staff, "staff").await;

    let created = staff.signing().agency().create(&new_request("Hợp đồng thuê"), &pdf("hop dong")).await.unwrap();
    let id = created.id.clone();
    lan.sync(&quiet).await.unwrap();
    lan.signing().fetch_document(&id).await.unwrap();

    // The phone goes offline (its server address no longer answers); meanwhile the agency
    // cancels; the resident approves offline.
    let cancelled = staff.signing().agency().cancel(&id, Some("Gửi nhầm")).await.unwrap();
    assert_eq!((cancelled.state, cancelled.cancel_reason.as_deref()), (RequestState::Cancelled, Some("Gửi nhầm")));
    assert!(cancelled.cancelled_at.is_some() && cancelled.decision.is_none());
    s.shutdown().await;
    lan.signing().approve(&id).unwrap();

    let s = restart(&server_dir, addr).await;
    make_due(&lan);
    let report = lan.send_outbox().await.unwrap();
    assert_eq!(report.rejected, 1, "{report:?}");
    let info = lan.signing().get(&id).unwrap();
    assert_eq!(info.decision_status, DecisionStatus::Refused);
    assert_eq!(info.refusal, Some(Refusal::RequestCancelled));
    assert_eq!(info.request.state, RequestState::Cancelled);
    let problem = congdan_core::signing::refusal_message(Refusal::RequestCancelled);
    assert_eq!(problem, ("Cơ quan đã hủy yêu cầu ký.", "The agency cancelled the signature request."));
    // The feed agrees, with the agency's reason.
    lan.sync(&quiet).await.unwrap();
    let info = lan.signing().get(&id).unwrap();
    assert_eq!(info.request.state, RequestState::Cancelled);
    assert_eq!(info.state_reason.as_deref(), Some("Gửi nhầm"));
    s.shutdown().await;
}

/// The phone's device key, read from its software keystore (the one `phone` opened).
fn device_key(dir: &std::path::Path) -> PublicKey {
    let keystore = SoftwareKeystore::open(dir).unwrap();
    PublicKey { algorithm: Algorithm::EcdsaP256Sha256, bytes: keystore.device_public_key().unwrap() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_whose_answer_is_lost_is_retried_with_its_key_and_makes_one_request() {
    let tmp = tempfile::tempdir().unwrap();
    // Every phone reaches the server through a proxy that loses the first create's answer: the
    // request reached the server, its answer never reaches the phone.
    let (proxy, s) = FaultProxy::in_front_of(config(&tmp.path().join("server"), "127.0.0.1:0".parse().unwrap())).await;
    let creates_seen = Arc::new(AtomicU32::new(0));
    let seen = creates_seen.clone();
    proxy.set_faults(move |raw| {
        if is_request(raw, "POST /v1/agency/signature-requests ") && seen.fetch_add(1, Ordering::SeqCst) == 0 {
            Fault::CutResponse
        } else {
            Fault::Pass
        }
    });
    let url = proxy.url();
    let lan = phone(&tmp.path().join("lan"), &url);
    login(&lan, "lan").await;
    let staff = phone(&tmp.path().join("staff"), &url);
    login(&staff, "staff").await;

    let document = pdf("bien ban nghiem thu");
    let created = staff.signing().agency().create(&new_request("Nghiệm thu công trình"), &document).await.unwrap();
    assert_eq!(creates_seen.load(Ordering::SeqCst), 2, "the create was sent twice: the lost one and its retry");
    let id = created.id.clone();

    // One request for Lan, one on her phone.
    let listed = staff.signing().agency().list(None, None).await.unwrap();
    let ids: Vec<&str> = listed.requests.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, [id.as_str()]);
    lan.sync(&quiet).await.unwrap();
    let on_phone: Vec<String> = lan.signing().list(None).unwrap().into_iter().map(|i| i.request.id).collect();
    assert_eq!(on_phone, [id.clone()]);

    // The same key again answers with that request; a fresh create makes another.
    let sha256 = congdan_core::crypto::hex(&sha256(&document));
    let key = "7c0b1f9e-2d4a-4b8e-9f61-3a5d2c7e8b10";
    let request = new_request("Nghiệm thu đợt 2");
    let first = staff.signing().agency().create_uploaded(&request, &sha256, key).await.unwrap();
    let again = staff.signing().agency().create_uploaded(&request, &sha256, key).await.unwrap();
    assert_eq!(again, first);
    assert_ne!(first.id, created.id);
    let other = staff.signing().agency().create_uploaded(&new_request("Khác"), &sha256, key).await;
    assert!(matches!(other, Err(Error::ServerRejected { status: 422, ref code, .. }) if code == "idempotency_key_reused"), "{other:?}");
    s.shutdown().await;
}

/// The create's body exactly as the core sends it (field order included): the server fingerprints
/// the bytes.
#[derive(serde::Serialize)]
struct CreateBodyAsSent<'a> {
    resident_national_id: &'a str,
    title: &'a str,
    summary: &'a str,
    purpose: &'a str,
    document: DocumentAsSent<'a>,
    expires_at: u64,
}

#[derive(serde::Serialize)]
struct DocumentAsSent<'a> {
    sha256: &'a str,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_that_finds_its_first_attempt_in_progress_waits_and_asks_again() {
    let tmp = tempfile::tempdir().unwrap();
    let server_dir = tmp.path().join("server");
    let s = congdan_server::start(config(&server_dir, "127.0.0.1:0".parse().unwrap())).await.unwrap();
    let staff = phone(&tmp.path().join("staff"), &s.url());
    let staff_account = try_login(&staff, "staff").await.unwrap().account_id;
    let lan = phone(&tmp.path().join("lan"), &s.url());
    login(&lan, "lan").await;
    let document = pdf("bien ban dang xu ly");
    let sha256 = staff.signing().agency().upload_pdf(&document).await.unwrap();

    // The first attempt of this key is at work on another server instance for 1 s more (its
    // lease, as a timed-out first attempt leaves it): the server answers 409 request_in_progress
    // at once and after the first wait (0.5 s), and lets the attempt after the second wait (1 s
    // more) do the work.
    let request = new_request("Đang xử lý");
    let key = "0d9c3c1e-8a5b-4f7e-9b2d-6c1a4e8f3b57";
    let body = CreateBodyAsSent {
        resident_national_id: &request.resident_national_id,
        title: &request.title,
        summary: &request.summary,
        purpose: &request.purpose,
        document: DocumentAsSent { sha256: &sha256 },
        expires_at: request.expires_at,
    };
    let fingerprint = sha256_of(&serde_json::to_vec(&body).unwrap());
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let db = rusqlite::Connection::open(server_dir.join("congdan-server.db")).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    db.execute(
        "INSERT INTO idempotency_keys(account_id, key, fingerprint, locked_until, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        rusqlite::params![staff_account, key, fingerprint, now_ms + 1_000, now_ms],
    )
    .unwrap();

    let started = std::time::Instant::now();
    let created = staff.signing().agency().create_uploaded(&request, &sha256, key).await.unwrap();
    assert!(started.elapsed() >= std::time::Duration::from_millis(1_400), "it waited twice: {:?}", started.elapsed());
    assert_eq!(created.title, "Đang xử lý");
    lan.sync(&quiet).await.unwrap();
    let on_phone: Vec<String> = lan.signing().list(None).unwrap().into_iter().map(|i| i.request.id).collect();
    assert_eq!(on_phone, [created.id.clone()]);
    s.shutdown().await;
}

fn sha256_of(bytes: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, bytes).as_ref().to_vec()
}
