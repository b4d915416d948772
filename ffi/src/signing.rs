//! Document signing, the resident's side: the signature requests synced to the phone, the
//! document fetched once and kept for offline reading, approve or decline (offline too; the
//! keystore asks for the resident's presence), and why the server refused a decision. Also the
//! agency's side (`AgencySigningApi`): the core's typed answers as records.

use congdan_core::signing::agency_wire::{
    AgencyDecision, AgencySignatureRequest, AttestationPart, DecisionBundle, DossierBundle, SignedPart,
};
use congdan_core::signing::{
    refusal_message, DecisionStatus, Intent, RequestState, SignatureRequestInfo, SigningService,
};

use crate::drafts::OutboxEntry;
use crate::error::CongdanError;

#[uniffi::remote(Enum)]
pub enum RequestState {
    Pending,
    Signed,
    Declined,
    Expired,
    Cancelled,
}

#[uniffi::remote(Enum)]
pub enum DecisionStatus {
    None,
    Queued,
    Sent,
    Refused,
}

/// What the resident decided on this phone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum SignatureDecision {
    Approve,
    Decline,
}

impl From<Intent> for SignatureDecision {
    fn from(i: Intent) -> Self {
        match i {
            Intent::Approve => SignatureDecision::Approve,
            Intent::Decline => SignatureDecision::Decline,
        }
    }
}

/// The server's refusal of this phone's decision.
#[derive(uniffi::Record)]
pub struct SignatureRefusal {
    /// `request_cancelled`, `request_expired`, `document_mismatch`, … (docs/api.md).
    pub code: String,
    pub message_vi: String,
    pub message_en: String,
}

/// A signature request as the resident's screen shows it.
#[derive(uniffi::Record)]
pub struct SignatureRequest {
    pub id: String,
    pub agency_code: String,
    pub title: String,
    /// The full summary to show before signing: its SHA-256 is what the decision signs.
    pub summary: String,
    /// What the signature is for.
    pub purpose: String,
    pub document_sha256: String,
    pub document_size: u64,
    pub document_content_type: String,
    /// The checked document on this phone (open it with the platform viewer); `None` until
    /// `fetch_document` succeeded.
    pub document_path: Option<String>,
    /// Unix seconds.
    pub created_at: u64,
    pub expires_at: u64,
    pub state: RequestState,
    /// The agency's reason for a cancellation, or the resident's for a decline.
    pub state_reason: Option<String>,
    pub decision: Option<SignatureDecision>,
    pub decline_reason: Option<String>,
    pub decided_at: Option<u64>,
    pub decision_status: DecisionStatus,
    pub refusal: Option<SignatureRefusal>,
}

impl From<SignatureRequestInfo> for SignatureRequest {
    fn from(i: SignatureRequestInfo) -> Self {
        let refusal = i.refusal_code.map(|code| {
            let (vi, en) = match i.refusal {
                Some(r) => refusal_message(r),
                None => ("Máy chủ từ chối quyết định này.", "The server refused this decision."),
            };
            SignatureRefusal { code, message_vi: vi.into(), message_en: en.into() }
        });
        let r = i.request;
        SignatureRequest {
            id: r.id,
            agency_code: r.agency_code,
            title: r.title,
            summary: r.summary,
            purpose: r.purpose,
            document_sha256: r.document.sha256,
            document_size: r.document.size,
            document_content_type: r.document.content_type,
            document_path: i.document_path.map(|p| p.to_string_lossy().into_owned()),
            created_at: r.created_at,
            expires_at: r.expires_at,
            state: r.state,
            state_reason: i.state_reason,
            decision: i.decision.map(Into::into),
            decline_reason: i.decline_reason,
            decided_at: i.decided_at,
            decision_status: i.decision_status,
            refusal,
        }
    }
}

#[derive(uniffi::Object)]
pub struct SigningApi {
    pub(crate) inner: SigningService,
}

#[uniffi::export(async_runtime = "tokio")]
impl SigningApi {
    /// The resident's requests as last synced, pending first; `state` filters.
    pub fn list(&self, state: Option<RequestState>) -> Result<Vec<SignatureRequest>, CongdanError> {
        Ok(self.inner.list(state)?.into_iter().map(Into::into).collect())
    }

    /// One request, with its full summary and (once fetched) its document's path.
    pub fn show(&self, id: String) -> Result<SignatureRequest, CongdanError> {
        Ok(self.inner.get(&id)?.into())
    }

    /// Fetches the document once, checks its SHA-256 against the request and keeps it for
    /// offline reading. Returns its path.
    pub async fn fetch_document(&self, id: String) -> Result<String, CongdanError> {
        Ok(self.inner.fetch_document(&id).await?.to_string_lossy().into_owned())
    }

    /// Approves: signs with the device key after the system's presence prompt (call it off the
    /// main thread), queued and sent now or when the network is back. Returns the command's key.
    pub fn approve(&self, id: String) -> Result<String, CongdanError> {
        Ok(self.inner.approve(&id)?)
    }

    /// Declines, with an optional reason for the agency (signed too).
    pub fn decline(&self, id: String, reason: Option<String>) -> Result<String, CongdanError> {
        Ok(self.inner.decline(&id, reason.as_deref())?)
    }

    /// The agency's side, for staff with a role `agency:<CODE>`.
    pub fn agency(&self) -> std::sync::Arc<AgencySigningApi> {
        std::sync::Arc::new(AgencySigningApi { inner: self.inner.agency() })
    }

    /// The outbox commands of a request (its decision's state, a refusal's code).
    pub fn outbox(&self, id: String) -> Result<Vec<OutboxEntry>, CongdanError> {
        Ok(self.inner.outbox(&id)?.into_iter().map(OutboxEntry::from).collect())
    }
}

/// A new signature request, as agency staff fill it in.
#[derive(uniffi::Record)]
pub struct NewSigningRequest {
    /// The resident's 12-digit national ID number (they must have logged in once).
    pub resident_national_id: String,
    pub title: String,
    /// The text the resident reads before signing.
    pub summary: String,
    pub purpose: String,
    /// Unix seconds.
    pub expires_at: u64,
    /// Needed only by staff acting for several agencies.
    #[uniffi(default = None)]
    pub agency_code: Option<String>,
}

/// The resident's decision, as the agency reads it.
#[derive(uniffi::Record)]
pub struct AgencySigningDecision {
    pub decision: SignatureDecision,
    pub decline_reason: Option<String>,
    /// The phone's clock when the resident signed (unix seconds).
    pub signed_at: u64,
    /// The server's clock when it recorded the decision.
    pub decided_at: Option<u64>,
    /// Hex of the device key id that signed.
    pub device_key_id: String,
}

impl From<AgencyDecision> for AgencySigningDecision {
    fn from(d: AgencyDecision) -> Self {
        AgencySigningDecision {
            decision: d.intent.into(),
            decline_reason: d.decline_reason,
            signed_at: d.signed_at,
            decided_at: d.decided_at,
            device_key_id: d.device_key_id,
        }
    }
}

/// A signature request as its agency sees it. Times are unix seconds.
#[derive(uniffi::Record)]
pub struct AgencySigningRequest {
    pub id: String,
    pub agency_code: String,
    pub title: String,
    pub summary: String,
    pub purpose: String,
    pub state: RequestState,
    /// `079*******45`.
    pub resident_national_id_masked: Option<String>,
    pub document_sha256: String,
    pub document_size: u64,
    pub document_content_type: String,
    /// Where the agency keeps the document, when not uploaded.
    pub document_link: Option<String>,
    pub created_at: u64,
    pub expires_at: u64,
    pub cancelled_at: Option<u64>,
    pub cancel_reason: Option<String>,
    pub decided_at: Option<u64>,
    /// `None` in list pages (`state` and `decided_at` say the outcome): `get` has it.
    pub decision: Option<AgencySigningDecision>,
}

impl From<AgencySignatureRequest> for AgencySigningRequest {
    fn from(r: AgencySignatureRequest) -> Self {
        AgencySigningRequest {
            id: r.id,
            agency_code: r.agency_code,
            title: r.title,
            summary: r.summary,
            purpose: r.purpose,
            state: r.state,
            resident_national_id_masked: r.resident_national_id_masked,
            document_sha256: r.document.sha256,
            document_size: r.document.size,
            document_content_type: r.document.content_type,
            document_link: r.document.link,
            created_at: r.created_at,
            expires_at: r.expires_at,
            cancelled_at: r.cancelled_at,
            cancel_reason: r.cancel_reason,
            decided_at: r.decided_at,
            decision: r.decision.map(Into::into),
        }
    }
}

/// A page of the agency's requests, newest first.
#[derive(uniffi::Record)]
pub struct AgencySigningPage {
    pub requests: Vec<AgencySigningRequest>,
    /// Pass it to `list` for the next page; `None` on the last.
    pub next_cursor: Option<String>,
}

/// One signed statement of a bundle, split so that OpenSSL alone can check it. Binary parts are
/// standard base64.
#[derive(uniffi::Record)]
pub struct SignedStatementPart {
    pub statement: String,
    /// What the key signed (the statement without its signature).
    pub signed_bytes: String,
    /// 64 bytes: P-256 r‖s, or Ed25519.
    pub signature: String,
    /// P-256 only: the signature as DER (what `openssl dgst -verify` reads).
    pub signature_der: Option<String>,
    pub public_key_pem: String,
    pub key_id: String,
}

impl From<SignedPart> for SignedStatementPart {
    fn from(p: SignedPart) -> Self {
        SignedStatementPart {
            statement: p.statement,
            signed_bytes: p.signed_bytes,
            signature: p.signature,
            signature_der: p.signature_der,
            public_key_pem: p.public_key_pem,
            key_id: p.key_id,
        }
    }
}

/// The server's attestation that the device key was the resident's (statement `0x31`).
#[derive(uniffi::Record)]
pub struct KeyAttestationPart {
    pub part: SignedStatementPart,
    pub account_id: String,
    pub device_key_id: String,
    pub registered_at: u64,
    pub revoked_at: Option<u64>,
    pub issued_at: u64,
}

impl From<AttestationPart> for KeyAttestationPart {
    fn from(a: AttestationPart) -> Self {
        KeyAttestationPart {
            part: a.signed.into(),
            account_id: a.account_id,
            device_key_id: a.device_key_id,
            registered_at: a.registered_at,
            revoked_at: a.revoked_at,
            issued_at: a.issued_at,
        }
    }
}

/// The verification bundle of a decided request (docs/signatures.md, "Verify a bundle with
/// openssl"), with the decision's fields for people and what the agency asked.
#[derive(uniffi::Record)]
pub struct SigningBundle {
    pub request_id: String,
    pub decision_statement: SignedStatementPart,
    pub attestation: KeyAttestationPart,
    pub server_public_key_pem: String,
    pub decision: SignatureDecision,
    pub decline_reason: Option<String>,
    pub agency_code: String,
    pub account_id: String,
    pub device_key_id: String,
    pub document_sha256: String,
    pub summary_sha256: String,
    pub purpose: String,
    pub signed_at: u64,
    pub expires_at: u64,
    pub title: String,
    pub summary: String,
    pub document_size: u64,
    pub document_content_type: String,
    pub document_link: Option<String>,
}

impl From<DecisionBundle> for SigningBundle {
    fn from(b: DecisionBundle) -> Self {
        let (d, r) = (b.decoded, b.request);
        SigningBundle {
            request_id: b.request_id,
            decision_statement: b.decision.into(),
            attestation: b.attestation.into(),
            server_public_key_pem: b.server_public_key_pem,
            decision: d.intent.into(),
            decline_reason: d.decline_reason,
            agency_code: d.agency_code,
            account_id: d.account_id,
            device_key_id: d.device_key_id,
            document_sha256: d.document_sha256,
            summary_sha256: d.summary_sha256,
            purpose: d.purpose,
            signed_at: d.signed_at,
            expires_at: d.expires_at,
            title: r.title,
            summary: r.summary,
            document_size: r.document_size,
            document_content_type: r.document_content_type,
            document_link: r.document_link,
        }
    }
}

/// The verification bundle of a signed case (its dossier signature, statement `0x32`).
#[derive(uniffi::Record)]
pub struct DossierSigningBundle {
    pub case_id: String,
    pub case_number: String,
    pub dossier_statement: SignedStatementPart,
    pub attestation: KeyAttestationPart,
    pub server_public_key_pem: String,
    pub account_id: String,
    pub procedure_code: String,
    pub draft_id: String,
    pub content_sha256: String,
    pub device_key_id: String,
    pub signed_at: u64,
}

impl From<DossierBundle> for DossierSigningBundle {
    fn from(b: DossierBundle) -> Self {
        let d = b.decoded;
        DossierSigningBundle {
            case_id: b.case_id,
            case_number: b.case_number,
            dossier_statement: b.dossier.into(),
            attestation: b.attestation.into(),
            server_public_key_pem: b.server_public_key_pem,
            account_id: d.account_id,
            procedure_code: d.procedure_code,
            draft_id: d.draft_id,
            content_sha256: d.content_sha256,
            device_key_id: d.device_key_id,
            signed_at: d.signed_at,
        }
    }
}

/// The agency's side of signature requests (staff with a role `agency:<CODE>`), online only.
#[derive(uniffi::Object)]
pub struct AgencySigningApi {
    pub(crate) inner: congdan_core::signing::agency::AgencySigning,
}

#[uniffi::export(async_runtime = "tokio")]
impl AgencySigningApi {
    /// Uploads the PDF and asks the resident to sign it. A retry after a lost answer (made here,
    /// with one idempotency key) never asks twice.
    pub async fn create(&self, request: NewSigningRequest, pdf: Vec<u8>) -> Result<AgencySigningRequest, CongdanError> {
        let new = congdan_core::signing::agency::NewSignatureRequest {
            resident_national_id: request.resident_national_id,
            title: request.title,
            summary: request.summary,
            purpose: request.purpose,
            expires_at: request.expires_at,
            agency_code: request.agency_code,
        };
        Ok(self.inner.create(&new, &pdf).await?.into())
    }

    /// A page of the agency's requests, newest first; `state` filters; `cursor` is the previous
    /// page's `next_cursor`.
    pub async fn list(&self, state: Option<RequestState>, cursor: Option<String>) -> Result<AgencySigningPage, CongdanError> {
        let page = self.inner.list(state, cursor.as_deref()).await?;
        Ok(AgencySigningPage { requests: page.requests.into_iter().map(Into::into).collect(), next_cursor: page.next_cursor })
    }

    /// One request with its state and, once decided, the decision.
    pub async fn get(&self, id: String) -> Result<AgencySigningRequest, CongdanError> {
        Ok(self.inner.get(&id).await?.into())
    }

    /// Cancels a pending request; the resident's phone learns it through the feed.
    pub async fn cancel(&self, id: String, reason: Option<String>) -> Result<AgencySigningRequest, CongdanError> {
        Ok(self.inner.cancel(&id, reason.as_deref()).await?.into())
    }

    /// The verification bundle of a decided request.
    pub async fn bundle(&self, id: String) -> Result<SigningBundle, CongdanError> {
        Ok(self.inner.bundle(&id).await?.into())
    }

    /// The verification bundle of a signed case.
    pub async fn case_bundle(&self, case_id: String) -> Result<DossierSigningBundle, CongdanError> {
        Ok(self.inner.case_bundle(&case_id).await?.into())
    }
}
