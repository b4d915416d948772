//! Document signing, the resident's side: the signature requests synced to the phone, the
//! document fetched once and kept for offline reading, approve or decline (offline too; the
//! keystore asks for the resident's presence), and why the server refused a decision.

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
}

/// The agency's side of signature requests (staff with a role `agency:<CODE>`), online only.
#[derive(uniffi::Object)]
pub struct AgencySigningApi {
    pub(crate) inner: congdan_core::signing::agency::AgencySigning,
}

#[uniffi::export(async_runtime = "tokio")]
impl AgencySigningApi {
    /// Uploads the PDF and asks the resident to sign it. Returns the request id.
    pub async fn create(&self, request: NewSigningRequest, pdf: Vec<u8>) -> Result<String, CongdanError> {
        let new = congdan_core::signing::agency::NewSignatureRequest {
            resident_national_id: request.resident_national_id,
            title: request.title,
            summary: request.summary,
            purpose: request.purpose,
            expires_at: request.expires_at,
            agency_code: None,
        };
        let created = self.inner.create(&new, &pdf).await?;
        created["id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| congdan_core::Error::BadData("created request without an id".into()).into())
    }

    /// Cancels a pending request; the resident's phone learns it through the feed.
    pub async fn cancel(&self, id: String, reason: Option<String>) -> Result<(), CongdanError> {
        self.inner.cancel(&id, reason.as_deref()).await?;
        Ok(())
    }

    /// The verification bundle of a decided request, as JSON (docs/api.md).
    pub async fn bundle_json(&self, id: String) -> Result<String, CongdanError> {
        Ok(self.inner.bundle(&id).await?.to_string())
    }
}
