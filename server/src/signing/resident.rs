//! The resident side: fetch a request's document, send a decision (a command of the one outbox,
//! with its Idempotency-Key: a retry gets the first answer again).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use congdan_core::crypto::hex;
use congdan_core::signing::api::{DecisionBody, DecisionReceipt, RequestState};
use congdan_core::signing::wire::{decode_statement, Intent};

use super::store::{self, Accepted, Record};
use super::verify::{check_decision, Outcome, Refused};
use super::{audit, invalid_body, request_not_found, MAX_STATEMENT_BYTES};
use crate::app::AppState;
use crate::cases::{claim_command, error_body, idempotency, idempotency_key, json_response, store as case_store};
use crate::db::now_millis;
use crate::error::ApiError;
use crate::identity::auth::Authenticated;
use crate::identity::device_keys;

// ---- GET /v1/signature-requests/{id}/document ----

/// The request's document, for the resident it is addressed to only (anyone else: 404). The
/// first fetch is the "delivered" entry of the audit trail, if the feed pull did not record one.
pub async fn document(
    State(state): State<AppState>,
    caller: Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let r = store::get(&state.db, &id).await?.filter(|r| r.account_id == caller.account_id).ok_or_else(request_not_found)?;
    let Some(owner) = &r.document_owner else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "document_external",
            format!("the agency keeps this document at {}", r.document_link.clone().unwrap_or_default()),
            "Tài liệu được lưu ở trang của cơ quan.",
        ));
    };
    audit::append(&state.db, &r.id, audit::DELIVERED, &caller.account_id, r#"{"via":"document"}"#, true).await?;
    crate::blobs::serve_file(&state, owner, &r.document_sha256, &headers).await
}

// ---- POST /v1/signature-requests/{id}/decision ----

fn refusal_body(r: &Refused) -> String {
    error_body(r.code, r.message, r.message_vi, None)
}

pub async fn decide(
    State(state): State<AppState>,
    caller: Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let input: DecisionBody = serde_json::from_slice(&body).map_err(invalid_body)?;
    if input.statement.len() > MAX_STATEMENT_BYTES * 4 / 3 + 4 {
        return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "statement_too_large", "the statement is too large", "Dữ liệu ký quá lớn."));
    }
    if let Some(earlier) = claim_command(&state, &caller, &key, &body).await? {
        return Ok(earlier);
    }
    let outcome = decide_claimed(&state, &caller, &id, &key, &input).await;
    if outcome.is_err() {
        // Not committed: free the key so the phone's retry can do the work.
        let _ = idempotency::release(&state.db, &caller.account_id, &key).await;
    }
    outcome
}

async fn decide_claimed(state: &AppState, caller: &Authenticated, id: &str, key: &str, input: &DecisionBody) -> Result<Response, ApiError> {
    // A refusal is the command's final answer: recorded under its key like a success.
    let refuse = |refused: Refused| async move {
        let body = refusal_body(&refused);
        case_store::record_refusal(&state.db, &caller.account_id, key, refused.status, &body).await?;
        tracing::info!(code = refused.code, "signature decision refused");
        Ok::<Response, ApiError>(json_response(StatusCode::from_u16(refused.status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY), body))
    };
    let Ok(statement) = decode_statement(&input.statement) else {
        return refuse(Refused { code: "signature_invalid", status: 422, message: "the statement is not base64url", message_vi: "Chữ ký không hợp lệ." }).await;
    };
    // Someone else's request answers exactly like one that does not exist.
    let Some(request) = store::get(&state.db, id).await? else {
        return refuse(not_yours()).await;
    };
    let keys = device_keys::for_account(&state.db, &caller.account_id).await?;
    let now = now_millis() / 1000;
    let verified = match check_decision(&statement, &request, &caller.account_id, &keys, now) {
        Err(refused) => return refuse(refused).await,
        Ok(Outcome::AlreadyRecorded) => {
            // The same decision again under a new key: the recorded answer.
            let body = request.decision_response.clone().unwrap_or_default();
            case_store::record_refusal(&state.db, &caller.account_id, key, 200, &body).await?;
            return Ok(json_response(StatusCode::OK, body));
        }
        Ok(Outcome::Accept(v)) => v,
    };
    let d = &verified.decision;
    let new_state = match d.intent {
        Intent::Approve => RequestState::Signed,
        Intent::Decline => RequestState::Declined,
    };
    let receipt = DecisionReceipt { request_id: request.id.clone(), state: new_state, decided_at: now.max(0) as u64 };
    let response = serde_json::to_string(&receipt).map_err(ApiError::internal)?;
    let detail = serde_json::json!({
        "intent": d.intent.name(),
        "device_key_id": hex(&d.device_key_id),
        "signed_at": d.signed_at,
        "signed_bytes_sha256": hex(&verified.signed_bytes_sha256),
    })
    .to_string();
    let accepted = Accepted {
        request_id: request.id.clone(),
        account_id: caller.account_id.clone(),
        state: new_state,
        statement: statement.clone(),
        signed_sha256: verified.signed_bytes_sha256.to_vec(),
        key_id: d.device_key_id.clone(),
        decline_reason: d.decline_reason.clone(),
        audit_detail: detail,
        response: response.clone(),
        idempotency_key: key.to_string(),
    };
    match store::record_decision(&state.db, accepted).await? {
        Record::Recorded => {
            tracing::info!(intent = d.intent.name(), "signature decision recorded");
            Ok(json_response(StatusCode::OK, response))
        }
        // Something got there between the read and the write (a cancellation, or the same
        // resident's other phone): check again against what is stored now.
        Record::Lost(now_row) => match check_decision(&statement, &now_row, &caller.account_id, &keys, now) {
            Ok(Outcome::AlreadyRecorded) => {
                let body = now_row.decision_response.clone().unwrap_or_default();
                case_store::record_refusal(&state.db, &caller.account_id, key, 200, &body).await?;
                Ok(json_response(StatusCode::OK, body))
            }
            Err(refused) => refuse(refused).await,
            Ok(Outcome::Accept(_)) => Err(ApiError::unavailable("the request changed while deciding; retry")),
        },
    }
}

fn not_yours() -> Refused {
    Refused::of(congdan_core::signing::api::Refusal::NotYourRequest)
}
