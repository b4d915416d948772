//! Signature requests (issue 6), server side: an agency asks a resident to sign a document, the
//! resident's phone approves or declines with its device key, and the agency downloads a bundle
//! anyone can verify with OpenSSL. Also the resident's signature over a submitted case.
//!
//! - [`agency`]: create, list, cancel, result, verification bundle, audit trail (`agency:` roles);
//! - [`resident`]: the document and the decision command (Idempotency-Key, DESIGN §1);
//! - [`verify`]: the checks of a decision, in order, pure; [`bundle`]: bundles and the server's
//!   key attestation (0x31); [`audit`]: the hash-chained trail; [`store`]: both databases;
//! - [`dossier`]: the dossier signature (0x32) of `POST /v1/cases` and its bundle.
//!
//! The byte formats are the core's (`congdan_core::signing::wire`, docs/signatures.md): the
//! server and the phone use one encoder and one verifier.

pub mod agency;
pub mod audit;
pub mod bundle;
pub mod dossier;
pub mod resident;
pub mod store;
pub mod verify;

use axum::http::StatusCode;

use crate::error::ApiError;

pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_PURPOSE_CHARS: usize = 500;
/// The summary is signed by hash, but shown whole: the core's limit for signed texts.
pub const MAX_SUMMARY_BYTES: usize = congdan_core::signing::wire::MAX_TEXT_LEN;
/// Far above any real decision (a few hundred bytes).
pub const MAX_STATEMENT_BYTES: usize = 8 * 1024;

pub(crate) fn request_not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "signature_request_not_found", "no such signature request", "Không tìm thấy yêu cầu ký.")
}

pub(crate) fn invalid_body(e: serde_json::Error) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", e.to_string(), "Dữ liệu gửi lên không đúng mẫu.")
}

/// The "delivered" audit entry of each signature request in a page the resident's phone pulled
/// (the first time only; fetching the document counts too).
pub async fn record_delivery(db: &crate::db::Db, account_id: &str, changes: &[congdan_core::sync::wire::Change]) -> crate::db::DbResult<()> {
    for change in changes.iter().filter(|c| c.kind == congdan_core::signing::api::REQUEST_CHANGE) {
        audit::append(db, &change.key, audit::DELIVERED, account_id, r#"{"via":"feed"}"#, true).await?;
    }
    Ok(())
}
