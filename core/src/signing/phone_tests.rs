//! The resident's side against a real store, the software keystore and the one outbox (no
//! server: feed changes and refusals are built here; core/tests/signing_against_server.rs runs
//! the whole flow on the real server).

use serde_json::json;

use super::api::{decision_path, DecisionBody, Refusal, RequestState, DECISION_KIND};
use super::wire::{decode_statement, sha256, summary_hash, verify_decision, Intent};
use super::*;
use crate::crypto::{hex, Algorithm, PublicKey};
use crate::error::Error;
use crate::outbox::{OutboxState, Rejection};
use crate::platform::{Keystore, Platform, SoftwareKeystore};
use crate::sync::wire::{encode_cursor, Change, FeedPage};
use crate::sync::{apply_page, ACCOUNT_FEED};
use crate::{Core, CoreConfig};

const DOCUMENT: &[u8] = b"%PDF-1.4 hop dong thue nha";
const SUMMARY: &str = "Hợp đồng thuê nhà 12 tháng, 5.000.000 đồng/tháng.";

struct Phone {
    dir: tempfile::TempDir,
    core: Core,
    keystore: std::sync::Arc<SoftwareKeystore>,
}

fn phone() -> Phone {
    let dir = tempfile::tempdir().unwrap();
    let keystore = std::sync::Arc::new(SoftwareKeystore::open(&dir.path().join("keys")).unwrap());
    let platform = Platform { keystore: keystore.clone(), ..Platform::software(&dir.path().join("keys")).unwrap() };
    // Nothing listens there: the phone is offline for the server.
    let core = Core::open(CoreConfig::new(dir.path().join("data"), "http://127.0.0.1:9"), platform).unwrap();
    let phone = Phone { dir, core, keystore };
    phone.log_in("acc-lan");
    phone
}

impl Phone {
    /// An active session for `account` (what a login leaves; no tokens are needed offline).
    fn log_in(&self, account: &str) {
        let json = json!({"account_id": account, "display_name": "Lan", "national_id_masked": "079*******45",
                          "roles": ["resident"]})
        .to_string();
        self.core
            .store()
            .write("test login", |tx| {
                tx.execute(
                    "INSERT OR REPLACE INTO session(id, account_id, account_json, state, access_expires_at, \
                         refresh_due_at, updated_at) VALUES (1, ?1, ?2, 'active', 0, 0, 0)",
                    rusqlite::params![account, json],
                )
                .map_err(Error::db("test login"))?;
                Ok(())
            })
            .unwrap();
    }

    fn apply(&self, seq: u64, kind: &str, key: &str, data: serde_json::Value) {
        let page = FeedPage {
            feed: ACCOUNT_FEED.into(),
            changes: vec![Change { seq, kind: kind.into(), key: key.into(), data }],
            cursor: encode_cursor(seq),
            has_more: false,
        };
        apply_page(self.core.store(), &page, "account:test", false).unwrap();
    }

    fn request(&self, seq: u64, id: &str, expires_at: u64) {
        self.apply(seq, "signature.request", id, request_json(id, expires_at, "pending"));
    }

    /// What `fetch_document` leaves behind, without a server.
    fn keep_document(&self, id: &str, bytes: &[u8]) {
        let dir = self.dir.path().join("data").join(DOCUMENTS_DIR);
        std::fs::create_dir_all(&dir).unwrap();
        let sha = hex(&sha256(bytes));
        std::fs::write(dir.join(format!("{sha}.pdf")), bytes).unwrap();
        store::set_document_file(self.core.store(), id, &hex(&sha256(DOCUMENT)), &format!("{sha}.pdf")).unwrap();
    }

    fn device_key(&self) -> PublicKey {
        PublicKey { algorithm: Algorithm::EcdsaP256Sha256, bytes: self.keystore.device_public_key().unwrap() }
    }

    fn reject(&self, key: &str, code: &str) {
        let item = crate::outbox::items(self.core.store(), None).unwrap().into_iter().find(|i| i.idempotency_key == key).unwrap();
        let rejection = Rejection { code: code.into(), message: "refused".into(), details: json!(null) };
        self.core
            .store()
            .write("test refusal", |tx| {
                tx.execute("UPDATE outbox SET state = 'rejected' WHERE idempotency_key = ?1", [key])
                    .map_err(Error::db("test refusal"))?;
                (commands::route(DECISION_KIND).unwrap().on_rejected)(tx, &item.subject, &rejection)
            })
            .unwrap();
    }
}

fn request_json(id: &str, expires_at: u64, state: &str) -> serde_json::Value {
    json!({
        "id": id, "agency_code": "HCM-Q1", "title": "Hợp đồng thuê nhà", "summary": SUMMARY,
        "purpose": "Xác nhận hợp đồng thuê nhà",
        "document": {"sha256": hex(&sha256(DOCUMENT)), "size": DOCUMENT.len(), "content_type": "application/pdf"},
        "created_at": 1_790_000_000u64, "expires_at": expires_at, "state": state
    })
}

fn later() -> u64 {
    (crate::store::now_millis() / 1000) as u64 + 86_400
}

fn queued_statement(phone: &Phone, key: &str) -> Vec<u8> {
    let items = crate::outbox::items(phone.core.store(), None).unwrap();
    let item = items.iter().find(|i| i.idempotency_key == key).unwrap();
    assert_eq!(item.kind, DECISION_KIND);
    assert_eq!(item.state, OutboxState::Waiting);
    let payload: serde_json::Value = phone
        .core
        .store()
        .read("payload", |c| c.query_row("SELECT payload FROM outbox WHERE idempotency_key = ?1", [key], |r| r.get::<_, String>(0)))
        .map(|p| serde_json::from_str(&p).unwrap())
        .unwrap();
    let body: DecisionBody = serde_json::from_value(payload).unwrap();
    decode_statement(&body.statement).unwrap()
}

#[test]
fn a_request_from_the_feed_is_listed_with_its_full_summary() {
    let phone = phone();
    phone.request(1, "sr-1", later());
    let list = phone.core.signing().list(None).unwrap();
    assert_eq!(list.len(), 1);
    let info = &list[0];
    assert_eq!(info.request.summary, SUMMARY);
    assert_eq!(info.request.state, RequestState::Pending);
    assert_eq!(info.decision_status, DecisionStatus::None);
    assert_eq!(info.document_path, None);
    // Applying the same change again, or an older one, changes nothing.
    phone.apply(1, "signature.request", "sr-1", request_json("sr-1", later(), "pending"));
    assert_eq!(phone.core.signing().list(None).unwrap().len(), 1);
    // Another account logged in on this phone does not see Lan's requests.
    phone.log_in("acc-minh");
    assert!(phone.core.signing().list(None).unwrap().is_empty());
    assert!(matches!(phone.core.signing().get("sr-1"), Err(Error::NotFound { .. })));
}

#[test]
fn approving_offline_signs_with_presence_and_queues_one_decision() {
    let phone = phone();
    phone.request(1, "sr-1", later());
    // Not before the document was fetched and checked.
    assert!(matches!(
        phone.core.signing().approve("sr-1"),
        Err(Error::Signing { problem: SigningProblem::DocumentNotFetched })
    ));
    phone.keep_document("sr-1", DOCUMENT);
    let info = phone.core.signing().get("sr-1").unwrap();
    assert_eq!(std::fs::read(info.document_path.unwrap()).unwrap(), DOCUMENT);

    let key = phone.core.signing().approve("sr-1").unwrap();
    assert_eq!(phone.keystore.presence_reasons(), vec!["Ký đồng ý: Hợp đồng thuê nhà / Sign to approve: Hợp đồng thuê nhà"]);
    let statement = queued_statement(&phone, &key);
    let device = phone.device_key();
    let verified = verify_decision(&statement, &vec![(device.default_key_id(), device.clone())]).unwrap();
    let d = verified.decision;
    assert_eq!((d.request_id.as_str(), d.agency_code.as_str(), d.account_id.as_str()), ("sr-1", "HCM-Q1", "acc-lan"));
    assert_eq!(d.document_sha256, sha256(DOCUMENT));
    assert_eq!(d.summary_sha256, summary_hash(SUMMARY));
    assert_eq!(d.intent, Intent::Approve);
    assert_eq!(d.purpose, "Xác nhận hợp đồng thuê nhà");
    assert_eq!(d.device_key_id, device.default_key_id());

    let info = phone.core.signing().get("sr-1").unwrap();
    assert_eq!(info.decision, Some(Intent::Approve));
    assert_eq!(info.decision_status, DecisionStatus::Queued);
    // Once only.
    assert!(matches!(
        phone.core.signing().decline("sr-1", None),
        Err(Error::Signing { problem: SigningProblem::AlreadyDecided })
    ));
    assert_eq!(phone.core.signing().outbox("sr-1").unwrap().len(), 1);
    assert_eq!(decision_path("sr-1"), "v1/signature-requests/sr-1/decision");
}

#[test]
fn declining_carries_the_reason() {
    let phone = phone();
    phone.request(1, "sr-2", later());
    phone.keep_document("sr-2", DOCUMENT);
    let key = phone.core.signing().decline("sr-2", Some("  Sai số tiền  ")).unwrap();
    let statement = queued_statement(&phone, &key);
    let device = phone.device_key();
    let d = verify_decision(&statement, &vec![(device.default_key_id(), device)]).unwrap().decision;
    assert_eq!(d.intent, Intent::Decline);
    assert_eq!(d.decline_reason.as_deref(), Some("Sai số tiền"));
    assert!(phone.keystore.presence_reasons()[0].starts_with("Ký từ chối"));
    let too_long = "x".repeat(wire::MAX_TEXT_LEN + 1);
    phone.request(2, "sr-3", later());
    phone.keep_document("sr-3", DOCUMENT);
    assert!(matches!(
        phone.core.signing().decline("sr-3", Some(&too_long)),
        Err(Error::Signing { problem: SigningProblem::ReasonTooLong })
    ));
}

#[test]
fn a_tampered_document_expired_or_cancelled_request_is_not_signed() {
    let phone = phone();
    phone.request(1, "sr-1", later());
    phone.keep_document("sr-1", b"%PDF-1.4 another document");
    assert!(matches!(
        phone.core.signing().approve("sr-1"),
        Err(Error::Signing { problem: SigningProblem::DocumentMismatch })
    ));
    phone.request(2, "sr-old", 1_000);
    phone.keep_document("sr-old", DOCUMENT);
    assert!(matches!(phone.core.signing().approve("sr-old"), Err(Error::Signing { problem: SigningProblem::Expired })));
    phone.request(3, "sr-c", later());
    phone.keep_document("sr-c", DOCUMENT);
    phone.apply(4, "signature.state", "sr-c", json!({"id": "sr-c", "state": "cancelled", "at": 1, "reason": "Nhầm người"}));
    let err = phone.core.signing().approve("sr-c").unwrap_err();
    assert!(matches!(err, Error::Signing { problem: SigningProblem::NotPending(RequestState::Cancelled) }));
    assert_eq!(err.user_message().0, "Cơ quan đã hủy yêu cầu ký.");
    let info = phone.core.signing().get("sr-c").unwrap();
    assert_eq!(info.state_reason.as_deref(), Some("Nhầm người"));
    // A stale `signature.request` (older seq) does not reopen it.
    phone.apply(3, "signature.request", "sr-c", request_json("sr-c", later(), "pending"));
    assert_eq!(phone.core.signing().get("sr-c").unwrap().request.state, RequestState::Cancelled);
    assert!(phone.keystore.presence_reasons().is_empty(), "nothing was put before the resident");
}

#[test]
fn a_queued_approval_refused_because_the_request_was_cancelled_says_why() {
    let phone = phone();
    phone.request(1, "sr-1", later());
    phone.keep_document("sr-1", DOCUMENT);
    let key = phone.core.signing().approve("sr-1").unwrap();
    phone.reject(&key, "request_cancelled");
    let info = phone.core.signing().get("sr-1").unwrap();
    assert_eq!(info.decision_status, DecisionStatus::Refused);
    assert_eq!(info.refusal, Some(Refusal::RequestCancelled));
    assert_eq!(info.request.state, RequestState::Cancelled);
    assert_eq!(
        refusal_message(info.refusal.unwrap()),
        ("Cơ quan đã hủy yêu cầu ký.", "The agency cancelled the signature request.")
    );
}

#[test]
fn the_state_change_from_the_feed_settles_the_request() {
    let phone = phone();
    phone.request(1, "sr-1", later());
    phone.apply(2, "signature.state", "sr-1", json!({"id": "sr-1", "state": "signed", "at": 5}));
    assert_eq!(phone.core.signing().list(Some(RequestState::Signed)).unwrap().len(), 1);
    assert!(phone.core.signing().list(Some(RequestState::Pending)).unwrap().is_empty());
    // A final state is never turned back into pending.
    phone.apply(3, "signature.state", "sr-1", json!({"id": "sr-1", "state": "pending", "at": 6}));
    assert_eq!(phone.core.signing().get("sr-1").unwrap().request.state, RequestState::Signed);
    // A malformed change is refused (the page is not applied).
    let page = FeedPage {
        feed: ACCOUNT_FEED.into(),
        changes: vec![Change { seq: 4, kind: "signature.request".into(), key: "x".into(), data: json!({"id": "x"}) }],
        cursor: encode_cursor(4),
        has_more: false,
    };
    assert!(matches!(apply_page(phone.core.store(), &page, "account:test", false), Err(Error::BadData(_))));
    // An id that is not a plain identifier never reaches a request path.
    let page = FeedPage {
        feed: ACCOUNT_FEED.into(),
        changes: vec![Change {
            seq: 5,
            kind: "signature.request".into(),
            key: "x".into(),
            data: request_json("../../v1/blobs", later(), "pending"),
        }],
        cursor: encode_cursor(5),
        has_more: false,
    };
    assert!(matches!(apply_page(phone.core.store(), &page, "account:test", false), Err(Error::BadData(_))));
}

/// Caches a procedure `CT-TAM-TRU` with one required field, as a catalog sync would.
fn catalog(phone: &Phone) {
    let data = json!({
        "code": "CT-TAM-TRU", "kind": "procedure",
        "name": {"vi": "Đăng ký tạm trú", "en": "Temporary residence"}, "description": {"vi": "Mô tả", "en": "About"},
        "agency": {"code": "CONG-AN-PHUONG-XA", "name": {"vi": "Công an", "en": "Police"}},
        "fee_vnd": 0, "processing_days": 3,
        "fields": [{"id": "full_name", "label": {"vi": "Họ tên", "en": "Name"}, "type": "text", "required": true}]
    });
    let change = Change { seq: 1, kind: "procedure.upsert".into(), key: "CT-TAM-TRU".into(), data };
    let page = FeedPage { feed: "public".into(), changes: vec![change], cursor: encode_cursor(1), has_more: false };
    apply_page(phone.core.store(), &page, "public", false).unwrap();
}

fn queued_submission(phone: &Phone, key: &str) -> crate::drafts::wire::SubmitCase {
    let payload: String = phone
        .core
        .store()
        .read("payload", |c| c.query_row("SELECT payload FROM outbox WHERE idempotency_key = ?1", [key], |r| r.get(0)))
        .unwrap();
    serde_json::from_str(&payload).unwrap()
}

#[test]
fn a_submitted_draft_carries_the_residents_dossier_signature() {
    use crate::drafts::validation::FieldValue;
    let phone = phone();
    catalog(&phone);
    let drafts = phone.core.drafts();
    let draft = drafts.create("CT-TAM-TRU", None).unwrap();
    drafts.set_field(&draft.id, "full_name", FieldValue::Text("Nguyễn Thị Lan".into())).unwrap();
    let key = drafts.submit(&draft.id).unwrap();
    assert_eq!(phone.keystore.presence_reasons(), vec!["Ký hồ sơ: Đăng ký tạm trú / Sign the dossier: Temporary residence"]);

    let submission = queued_submission(&phone, &key);
    let statement = decode_statement(submission.dossier_signature.as_deref().unwrap()).unwrap();
    let device = phone.device_key();
    let verified = wire::verify_dossier_signature(&statement, &vec![(device.default_key_id(), device)]).unwrap();
    let d = verified.dossier;
    assert_eq!((d.account_id.as_str(), d.procedure_code.as_str(), d.draft_id.as_str()), ("acc-lan", "CT-TAM-TRU", draft.id.as_str()));
    // Over exactly what the body carries: the server recomputes the same hash from it.
    assert_eq!(d.content_sha256, wire::dossier_content_hash(&submission.values, &submission.attachments));
    // A locked draft asks for no second signature.
    assert!(drafts.submit(&draft.id).is_err());
    assert_eq!(phone.keystore.presence_reasons().len(), 1);
}
