//! The resident's side on the phone ([`SigningService`], reached through `Core::signing()`): the
//! signature requests the account feed brought, their documents fetched once, checked against
//! the SHA-256 the request names and kept for offline reading, and the decision (approve or
//! decline), signed with the device key after the resident confirmed their presence and queued in
//! the one outbox, offline too.

use std::path::{Path, PathBuf};

use super::api::{Refusal, RequestState};
use super::store::{self, StoredRequest};
use super::wire::{self, attach_signature, sha256, summary_hash, verify_decision, Decision, Intent, SigningError};
use crate::core::Core;
use crate::crypto::{hex, Algorithm, PublicKey, SIGNATURE_LEN};
use crate::error::{Error, Result};
use crate::outbox::{OutboxItem, OutboxState};
use crate::sync::client::Method;

/// The largest document the phone fetches (the API client's response limit).
pub const MAX_DOCUMENT_BYTES: u64 = crate::sync::client::MAX_RESPONSE_BYTES as u64;
/// Documents are kept under `<data_dir>/signature-documents/`, named by their SHA-256.
pub const DOCUMENTS_DIR: &str = "signature-documents";

/// Why a request cannot be fetched or decided now; each has a plain message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SigningProblem {
    #[error("the request is {0:?}, not pending")]
    NotPending(RequestState),
    #[error("this phone already decided on the request")]
    AlreadyDecided,
    #[error("the request has expired")]
    Expired,
    #[error("the document has not been fetched and checked yet")]
    DocumentNotFetched,
    #[error("the document does not match the request's SHA-256")]
    DocumentMismatch,
    #[error("the document is larger than this phone accepts")]
    DocumentTooLarge,
    #[error("the decline reason is too long")]
    ReasonTooLong,
    #[error("the resident did not confirm, or the device key could not sign")]
    NotSigned,
    #[error("the dossier changed while it was being signed")]
    ContentChanged,
    #[error("the server refused the decision: {}", .0.code())]
    Refused(Refusal),
}

impl SigningProblem {
    /// Vietnamese first, then English.
    pub fn user_message(&self) -> (&'static str, &'static str) {
        match self {
            SigningProblem::NotPending(RequestState::Cancelled) => {
                ("Cơ quan đã hủy yêu cầu ký.", "The agency cancelled the signature request.")
            }
            SigningProblem::NotPending(RequestState::Expired) | SigningProblem::Expired => {
                ("Yêu cầu ký đã hết hạn.", "The signature request has expired.")
            }
            SigningProblem::NotPending(_) | SigningProblem::AlreadyDecided => {
                ("Yêu cầu này đã được trả lời.", "This request has already been answered.")
            }
            SigningProblem::DocumentNotFetched => (
                "Vui lòng tải và đọc tài liệu trước khi ký.",
                "Please download and read the document before signing.",
            ),
            SigningProblem::DocumentMismatch => (
                "Tài liệu tải về không khớp với yêu cầu. Vui lòng thử lại.",
                "The downloaded document does not match the request. Please try again.",
            ),
            SigningProblem::DocumentTooLarge => ("Tài liệu quá lớn.", "The document is too large."),
            SigningProblem::ReasonTooLong => ("Lý do quá dài.", "The reason is too long."),
            SigningProblem::NotSigned => (
                "Chưa ký: bạn chưa xác nhận hoặc khóa của máy không ký được.",
                "Not signed: you did not confirm, or the phone's key could not sign.",
            ),
            SigningProblem::ContentChanged => (
                "Hồ sơ vừa thay đổi trong lúc ký. Vui lòng kiểm tra và gửi lại.",
                "The dossier changed while it was being signed. Please check it and send it again.",
            ),
            SigningProblem::Refused(refusal) => refusal_message(*refusal),
        }
    }
}

/// A refusal's message split into its Vietnamese and English halves.
pub fn refusal_message(refusal: Refusal) -> (&'static str, &'static str) {
    let text = refusal.message();
    match text.split_once(" / ") {
        Some((vi, en)) => (vi, en),
        None => (text, text),
    }
}

fn problem(p: SigningProblem) -> Error {
    Error::Signing { problem: p }
}

/// Where this phone's decision stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecisionStatus {
    /// No decision on this phone.
    None,
    /// Signed and waiting in the outbox (offline, or not sent yet).
    Queued,
    /// The server accepted it.
    Sent,
    /// The server refused it: see `refusal`.
    Refused,
}

/// A request as the resident's screen shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct SignatureRequestInfo {
    pub request: super::api::SignatureRequestView,
    /// The checked document on this phone, for reading offline; `None` until fetched.
    pub document_path: Option<PathBuf>,
    /// The agency's reason for a cancellation, or the decline reason, from the feed.
    pub state_reason: Option<String>,
    pub decision: Option<Intent>,
    pub decline_reason: Option<String>,
    /// Unix seconds.
    pub decided_at: Option<u64>,
    pub decision_status: DecisionStatus,
    /// The server's refusal of this phone's decision, with its message.
    pub refusal: Option<Refusal>,
    /// The refusal code as sent, also when this app version does not know it.
    pub refusal_code: Option<String>,
}

/// Document signing on the phone.
#[derive(Clone)]
pub struct SigningService {
    core: Core,
}

impl SigningService {
    pub(crate) fn new(core: Core) -> SigningService {
        SigningService { core }
    }

    fn documents_dir(&self) -> PathBuf {
        self.core.store().path().parent().unwrap_or_else(|| Path::new(".")).join(DOCUMENTS_DIR)
    }

    fn info(&self, stored: StoredRequest) -> Result<SignatureRequestInfo> {
        let outbox_state = match &stored.decision_key {
            Some(key) => crate::outbox::items(self.core.store(), Some(&stored.view.id))?
                .into_iter()
                .find(|i: &OutboxItem| &i.idempotency_key == key)
                .map(|i| i.state),
            None => None,
        };
        let decision_status = match (stored.local_decision, outbox_state, &stored.refusal_code) {
            (None, _, _) => DecisionStatus::None,
            (Some(_), _, Some(_)) | (Some(_), Some(OutboxState::Rejected), _) => DecisionStatus::Refused,
            (Some(_), Some(OutboxState::Sent), _) => DecisionStatus::Sent,
            (Some(_), _, _) => DecisionStatus::Queued,
        };
        let document_path = stored.document_file.as_ref().map(|f| self.documents_dir().join(f));
        Ok(SignatureRequestInfo {
            refusal: stored.refusal_code.as_deref().and_then(Refusal::from_code),
            refusal_code: stored.refusal_code,
            request: stored.view,
            document_path,
            state_reason: stored.state_reason,
            decision: stored.local_decision,
            decline_reason: stored.decline_reason,
            decided_at: stored.decided_at,
            decision_status,
        })
    }

    /// The resident's requests as last synced, pending first; `state` filters.
    pub fn list(&self, state: Option<RequestState>) -> Result<Vec<SignatureRequestInfo>> {
        store::list(self.core.store(), state)?.into_iter().map(|r| self.info(r)).collect()
    }

    /// One request with its full summary text and, once fetched, its document's path.
    pub fn get(&self, id: &str) -> Result<SignatureRequestInfo> {
        let stored = store::get(self.core.store(), id)?.ok_or(Error::NotFound { what: "signature request" })?;
        self.info(stored)
    }

    /// Fetches the request's document (once: a kept, checked document is not fetched again),
    /// checks its size and SHA-256 against the request, and keeps it for offline reading.
    /// Returns its path.
    pub async fn fetch_document(&self, id: &str) -> Result<PathBuf> {
        let stored = store::get(self.core.store(), id)?.ok_or(Error::NotFound { what: "signature request" })?;
        let want = stored.view.document.sha256.to_ascii_lowercase();
        if let Some(file) = &stored.document_file {
            let path = self.documents_dir().join(file);
            if file_sha256(&path).ok().as_deref() == Some(want.as_str()) {
                return Ok(path);
            }
        }
        if stored.view.document.size > MAX_DOCUMENT_BYTES {
            return Err(problem(SigningProblem::DocumentTooLarge));
        }
        let session = self.core.session();
        let bytes = session
            .send_authorized_for_bytes(Method::GET, &super::api::document_path(id), None, None, &[])
            .await?;
        if bytes.len() as u64 != stored.view.document.size || hex(&sha256(&bytes)) != want {
            return Err(problem(SigningProblem::DocumentMismatch));
        }
        let file = document_file_name(&want, &stored.view.document.content_type);
        let dir = self.documents_dir();
        write_atomically(&dir, &file, &bytes)?;
        store::set_document_file(self.core.store(), id, &want, &file)?;
        Ok(dir.join(file))
    }

    /// Approves the request: see [`SigningService::decide`].
    pub fn approve(&self, id: &str) -> Result<String> {
        self.decide(id, Intent::Approve, None)
    }

    /// Declines the request, with an optional reason for the agency.
    pub fn decline(&self, id: &str, reason: Option<&str>) -> Result<String> {
        let reason = reason.map(str::trim).filter(|r| !r.is_empty());
        if reason.is_some_and(|r| r.len() > wire::MAX_TEXT_LEN) {
            return Err(problem(SigningProblem::ReasonTooLong));
        }
        self.decide(id, Intent::Decline, reason)
    }

    /// Signs the decision over the document kept on this phone (hashed again now) and the summary
    /// shown, with the device key after the resident confirmed their presence, and queues it with
    /// the local decision in one transaction. Works offline. Blocks while the system asks for
    /// presence: call it off the main thread. Returns the command's idempotency key.
    fn decide(&self, id: &str, intent: Intent, decline_reason: Option<&str>) -> Result<String> {
        let stored = store::get(self.core.store(), id)?.ok_or(Error::NotFound { what: "signature request" })?;
        check_decidable(&stored)?;
        let now = (crate::store::now_millis().max(0) / 1000) as u64;
        if now >= stored.view.expires_at {
            return Err(problem(SigningProblem::Expired));
        }
        let document_sha256 = {
            let file = stored.document_file.as_ref().ok_or(problem(SigningProblem::DocumentNotFetched))?;
            let actual = file_sha256(&self.documents_dir().join(file)).map_err(|_| problem(SigningProblem::DocumentNotFetched))?;
            if actual != stored.view.document.sha256.to_ascii_lowercase() {
                return Err(problem(SigningProblem::DocumentMismatch));
            }
            sha256_from_hex(&actual)?
        };
        let session = self.core.session();
        let account_id = session.active_account()?.ok_or(Error::LoginRequired {
            reason: crate::error::LoginRequiredReason::NotLoggedIn,
        })?;
        let keystore = session.keystore.clone();
        let device_key = PublicKey {
            algorithm: Algorithm::EcdsaP256Sha256,
            bytes: keystore.device_public_key().map_err(|e| Error::Platform { service: "keystore", message: e.0 })?,
        };
        let decision = Decision {
            request_id: stored.view.id.clone(),
            agency_code: stored.view.agency_code.clone(),
            document_sha256,
            summary_sha256: summary_hash(&stored.view.summary),
            intent,
            purpose: stored.view.purpose.clone(),
            decline_reason: decline_reason.map(str::to_string),
            account_id,
            device_key_id: device_key.default_key_id(),
            signed_at: now,
            expires_at: stored.view.expires_at,
        };
        let signed_bytes = decision.signed_bytes().map_err(signing_failed)?;
        let prompt = presence_prompt(intent, &stored.view.title);
        let signature = keystore.sign_with_presence(&signed_bytes, &prompt).map_err(|e| {
            tracing::info!("signing: no signature from the keystore: {}", e.0);
            problem(SigningProblem::NotSigned)
        })?;
        let signature: [u8; SIGNATURE_LEN] =
            signature.as_slice().try_into().map_err(|_| problem(SigningProblem::NotSigned))?;
        let statement = attach_signature(&signed_bytes, &signature);
        // A keystore answering with a wrong signature must not send it.
        verify_decision(&statement, &vec![(device_key.default_key_id(), device_key)]).map_err(signing_failed)?;
        let key = self.core.store().write("queueing a signature decision", |tx| {
            let current = store::get_in(tx, id)?.ok_or(Error::NotFound { what: "signature request" })?;
            check_decidable(&current)?;
            super::commands::decide(tx, id, intent, decline_reason, now, &statement)
        })?;
        self.core.outbox_wakeup();
        Ok(key)
    }

    /// The agency's side (staff with a role `agency:<CODE>`), online only.
    pub fn agency(&self) -> super::agency::AgencySigning {
        super::agency::AgencySigning::new(self.core.clone())
    }

    /// The outbox commands of a request (its decision's state, a refusal's reason).
    pub fn outbox(&self, id: &str) -> Result<Vec<OutboxItem>> {
        crate::outbox::items(self.core.store(), Some(id))
    }
}

fn check_decidable(stored: &StoredRequest) -> Result<()> {
    if stored.view.state != RequestState::Pending {
        return Err(problem(SigningProblem::NotPending(stored.view.state)));
    }
    if stored.local_decision.is_some() {
        return Err(problem(SigningProblem::AlreadyDecided));
    }
    Ok(())
}

fn signing_failed(e: SigningError) -> Error {
    tracing::warn!("signing: decision not made: {e}");
    problem(SigningProblem::NotSigned)
}

/// What the system's presence prompt says: Vietnamese, then English.
fn presence_prompt(intent: Intent, title: &str) -> String {
    let title: String = title.chars().take(80).collect();
    match intent {
        Intent::Approve => format!("Ký đồng ý: {title} / Sign to approve: {title}"),
        Intent::Decline => format!("Ký từ chối: {title} / Sign to decline: {title}"),
    }
}

fn sha256_from_hex(text: &str) -> Result<[u8; 32]> {
    crate::crypto::from_hex(text)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::BadData("document sha256 is not 64 hex digits".into()))
}

/// The kept file's name: its SHA-256 (never the server's id, which is not a safe file name) and
/// an extension the platform viewer recognises.
fn document_file_name(sha256_hex: &str, content_type: &str) -> String {
    let extension = match content_type.split(';').next().unwrap_or("").trim() {
        "application/pdf" => "pdf",
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "text/plain" => "txt",
        _ => "bin",
    };
    format!("{sha256_hex}.{extension}")
}

fn file_sha256(path: &Path) -> std::io::Result<String> {
    Ok(hex(&sha256(&std::fs::read(path)?)))
}

/// Temporary file, fsync, rename: a crash never leaves half a document under its final name.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let failed = |source: std::io::Error| Error::DataDirectory { path: dir.to_path_buf(), source };
    std::fs::create_dir_all(dir).map_err(failed)?;
    let tmp = dir.join(format!("{name}.part"));
    let mut f = std::fs::File::create(&tmp).map_err(failed)?;
    f.write_all(bytes).map_err(failed)?;
    f.sync_all().map_err(failed)?;
    std::fs::rename(&tmp, dir.join(name)).map_err(failed)
}
