//! The agency's side of signature requests (staff with a role `agency:<CODE>`), online only:
//! upload the PDF, create a request for a resident (by national ID number), list, cancel, and
//! download the verification bundle of a decided request or of a signed case. Used by the CLI
//! (`congdan agency sign-request …`), the ffi and the tests; the answers are the typed records of
//! [`super::agency_wire`], which the server serializes (docs/api.md).

use ring::digest::{digest, SHA256};
use serde::Serialize;

use super::agency_wire::{AgencyRequestPage, AgencySignatureRequest, DecisionBundle, DossierBundle};
use super::api::RequestState;
use crate::core::Core;
use crate::crypto::hex;
use crate::drafts::attachments::{BlobOffer, BlobOffset, BLOBS_PATH, CHUNK_BYTES, UPLOAD_OFFSET_HEADER};
use crate::error::{Error, Result};
use crate::sync::client::Method;

pub const REQUESTS_PATH: &str = "v1/agency/signature-requests";

/// The server's answer to a key whose first request is still being worked on.
const IN_PROGRESS: &str = "request_in_progress";
/// Attempts of a create that keeps finding its first attempt in progress, and the growing wait
/// between them: the server's lease on a key is 30 s, its work on a create well under a second.
const IN_PROGRESS_ATTEMPTS: u32 = 3;
const IN_PROGRESS_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// A new request, as the agency fills it in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewSignatureRequest {
    /// The resident's 12-digit national ID number (they must have logged in once).
    pub resident_national_id: String,
    pub title: String,
    pub summary: String,
    pub purpose: String,
    /// Unix seconds.
    pub expires_at: u64,
    /// Needed only for staff acting for several agencies.
    pub agency_code: Option<String>,
}

#[derive(Serialize)]
struct DocumentInput<'a> {
    sha256: &'a str,
}

#[derive(Serialize)]
struct CreateBody<'a> {
    resident_national_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    agency_code: Option<&'a str>,
    title: &'a str,
    summary: &'a str,
    purpose: &'a str,
    document: DocumentInput<'a>,
    expires_at: u64,
}

#[derive(Clone)]
pub struct AgencySigning {
    core: Core,
}

impl AgencySigning {
    pub(crate) fn new(core: Core) -> AgencySigning {
        AgencySigning { core }
    }

    /// Uploads a PDF (offer, then chunks) and returns its SHA-256 (hex).
    pub async fn upload_pdf(&self, pdf: &[u8]) -> Result<String> {
        if !pdf.starts_with(b"%PDF-") {
            return Err(Error::InvalidConfig("the document is not a PDF file".into()));
        }
        let sha256 = hex(digest(&SHA256, pdf).as_ref());
        let session = self.core.session();
        let offer = BlobOffer { sha256: sha256.clone(), size: pdf.len() as u64, media_type: "application/pdf".into() };
        let body = serde_json::to_vec(&offer).map_err(|e| Error::BadData(e.to_string()))?;
        let BlobOffset { mut offset } =
            session.send_authorized(Method::POST, BLOBS_PATH, Some((body, "application/json")), None).await?;
        let chunk_path = format!("{BLOBS_PATH}/{sha256}");
        while offset < pdf.len() as u64 {
            let start = offset as usize;
            let chunk = pdf[start..(start + CHUNK_BYTES).min(pdf.len())].to_vec();
            let headers = [(UPLOAD_OFFSET_HEADER, offset.to_string())];
            let ack: BlobOffset = session
                .send_authorized_with(Method::PATCH, &chunk_path, Some((chunk, "application/octet-stream")), None, &headers)
                .await?;
            if ack.offset <= offset {
                return Err(Error::BadData("the server did not take the chunk".into()));
            }
            offset = ack.offset;
        }
        Ok(sha256)
    }

    /// Uploads the PDF and creates the request; the answer is the request as the agency sees it.
    /// One idempotency key is made for this create and kept for all its attempts, so a retry
    /// after a lost answer is the same request, never a second one for the resident to sign.
    pub async fn create(&self, request: &NewSignatureRequest, pdf: &[u8]) -> Result<AgencySignatureRequest> {
        let sha256 = self.upload_pdf(pdf).await?;
        self.create_uploaded(request, &sha256, &uuid::Uuid::new_v4().to_string()).await
    }

    /// Creates the request for a document already uploaded (`document_sha256`), under the
    /// caller's `idempotency_key`: the same key and request answer with the request made first.
    /// The HTTP client retries transient failures (no answer, 5xx, 429) with this key; a retry
    /// that finds the first attempt still at work on the server (`409 request_in_progress`, after
    /// a timeout) waits and asks again, a few times.
    pub async fn create_uploaded(
        &self,
        request: &NewSignatureRequest,
        document_sha256: &str,
        idempotency_key: &str,
    ) -> Result<AgencySignatureRequest> {
        let body = CreateBody {
            resident_national_id: &request.resident_national_id,
            agency_code: request.agency_code.as_deref(),
            title: &request.title,
            summary: &request.summary,
            purpose: &request.purpose,
            document: DocumentInput { sha256: document_sha256 },
            expires_at: request.expires_at,
        };
        let body = serde_json::to_vec(&body).map_err(|e| Error::BadData(e.to_string()))?;
        let session = self.core.session();
        let mut attempt = 1;
        loop {
            let sent = session
                .send_authorized(Method::POST, REQUESTS_PATH, Some((body.clone(), "application/json")), Some(idempotency_key))
                .await;
            match sent {
                Err(Error::ServerRejected { status: 409, code, .. }) if code == IN_PROGRESS && attempt < IN_PROGRESS_ATTEMPTS => {
                    tokio::time::sleep(IN_PROGRESS_WAIT * attempt).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// A page of the agency's requests, newest first; `state` filters; `cursor` is the
    /// `next_cursor` of the page before.
    pub async fn list(&self, state: Option<RequestState>, cursor: Option<&str>) -> Result<AgencyRequestPage> {
        // Built in its own block: the serializer is not Send and must not live across the await.
        let query = {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            if let Some(s) = state {
                query.append_pair("state", s.as_str());
            }
            if let Some(c) = cursor {
                query.append_pair("cursor", c);
            }
            query.finish()
        };
        let path = if query.is_empty() { REQUESTS_PATH.to_string() } else { format!("{REQUESTS_PATH}?{query}") };
        self.core.session().send_authorized(Method::GET, &path, None, None).await
    }

    /// One request with its state and, once the resident decided, the decision.
    pub async fn get(&self, id: &str) -> Result<AgencySignatureRequest> {
        self.core.session().send_authorized(Method::GET, &request_path(id, "")?, None, None).await
    }

    /// Cancels a pending request (the resident's phone is told through the feed).
    pub async fn cancel(&self, id: &str, reason: Option<&str>) -> Result<AgencySignatureRequest> {
        let body = serde_json::to_vec(&serde_json::json!({ "reason": reason })).map_err(|e| Error::BadData(e.to_string()))?;
        self.core
            .session()
            .send_authorized(Method::POST, &request_path(id, "/cancel")?, Some((body, "application/json")), None)
            .await
    }

    /// The verification bundle of a decided request: the decision statement, the device key's
    /// attestation, the keys as PEM, what a third party needs to check it (docs/signatures.md).
    pub async fn bundle(&self, id: &str) -> Result<DecisionBundle> {
        self.core.session().send_authorized(Method::GET, &request_path(id, "/bundle")?, None, None).await
    }

    /// The verification bundle of a signed case's dossier signature.
    pub async fn case_bundle(&self, case_id: &str) -> Result<DossierBundle> {
        check_id(case_id).map_err(|_| Error::NotFound { what: "case" })?;
        self.core
            .session()
            .send_authorized(Method::GET, &format!("v1/agency/cases/{case_id}/signature-bundle"), None, None)
            .await
    }
}

/// An id as the server makes them (UUIDs): it goes into a path, so nothing that could make it
/// another path (`/`, `?`, `..`). Anything else names nothing that exists.
fn check_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(Error::NotFound { what: "signature request" });
    }
    Ok(())
}

fn request_path(id: &str, suffix: &str) -> Result<String> {
    check_id(id)?;
    Ok(format!("{REQUESTS_PATH}/{id}{suffix}"))
}
