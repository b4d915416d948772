//! Cases: `POST /v1/cases` turns a resident's submitted draft into a case, exactly once per
//! idempotency key (see [`idempotency`]). The server is the authority: it validates the values
//! again with the same rules as the phone (`congdan_core::drafts::validation`).

pub mod agency;
pub mod answer;
pub mod holidays;
pub mod idempotency;
pub mod store;

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use congdan_core::catalog::ProcedureKind;
use congdan_core::drafts::validation::{self, CalendarDate};
use congdan_core::drafts::wire::{SubmitCase, VALIDATION_FAILED};
use congdan_core::sync::wire::{ErrorBody, ErrorDetail};

use crate::app::AppState;
use crate::catalog::store as catalog_store;
use crate::error::ApiError;
use crate::identity::auth::Authenticated;
use idempotency::Claim;

/// The `Idempotency-Key` header: a structured-field string (`"…"`), 1 to 255 visible ASCII
/// characters; a bare token is accepted too.
pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let missing = || ApiError::bad_request("idempotency_key_missing", "an Idempotency-Key header is required");
    let raw = headers.get("idempotency-key").ok_or_else(missing)?.to_str().map_err(|_| missing())?.trim();
    let key = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')).unwrap_or(raw);
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\') {
        return Err(ApiError::bad_request("bad_idempotency_key", "Idempotency-Key must be 1 to 255 visible characters"));
    }
    Ok(key.to_string())
}

pub(crate) fn json_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

pub(crate) fn error_body(code: &str, message: &str, message_vi: &str, details: Option<serde_json::Value>) -> String {
    serde_json::to_string(&ErrorBody {
        error: ErrorDetail { code: code.into(), message: message.into(), message_vi: Some(message_vi.into()), details },
    })
    .unwrap_or_default()
}

/// A body that is not the command's JSON.
pub(crate) fn invalid_body(e: serde_json::Error) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", e.to_string(), "Dữ liệu gửi lên không đúng mẫu.")
}

/// What every command handler does around its own work (DESIGN §1): reads the
/// `Idempotency-Key`, parses the body (`422 invalid_body`) and runs `check` on it (nothing is
/// claimed for a command refused here), claims the key (a finished command is answered again,
/// one in progress or reused is refused), runs `work` with the command and the key, and frees
/// the key again when the work fails without committing, so the phone's retry can do it.
pub(crate) async fn run_command<C, Work, Done>(
    state: &AppState,
    caller: &Authenticated,
    headers: &HeaderMap,
    body: &[u8],
    check: impl FnOnce(&C) -> Result<(), ApiError>,
    work: Work,
) -> Result<Response, ApiError>
where
    C: serde::de::DeserializeOwned,
    Work: FnOnce(C, String) -> Done,
    Done: std::future::Future<Output = Result<Response, ApiError>>,
{
    let key = idempotency_key(headers)?;
    let command: C = serde_json::from_slice(body).map_err(invalid_body)?;
    check(&command)?;
    if let Some(earlier) = claim_command(state, caller, &key, body).await? {
        return Ok(earlier);
    }
    let outcome = work(command, key.clone()).await;
    if outcome.is_err() {
        let _ = idempotency::release(&state.db, &caller.account_id, &key).await;
    }
    outcome
}

pub async fn submit(
    State(state): State<AppState>,
    caller: Authenticated,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (state, caller) = (&state, &caller);
    let dossier_signature = crate::signing::dossier::statement_of(&body);
    run_command(state, caller, &headers, &body, |_: &SubmitCase| Ok(()), |submission, key| async move {
        create_case(state, caller, &key, submission, dossier_signature).await
    })
    .await
}

/// Claims a command's key (DESIGN §1). `Some` is the answer to give instead of doing the work:
/// the recorded answer of a finished command; `Err` a key in progress or reused.
pub(crate) async fn claim_command(
    state: &AppState,
    caller: &Authenticated,
    key: &str,
    body: &[u8],
) -> Result<Option<Response>, ApiError> {
    match idempotency::claim(&state.db, &caller.account_id, key, idempotency::fingerprint(body)).await? {
        Claim::Replay { status, body } => {
            Ok(Some(json_response(StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body)))
        }
        Claim::InProgress => Err(ApiError::new(
            StatusCode::CONFLICT,
            "request_in_progress",
            "a request with this Idempotency-Key is still being processed",
            "Yêu cầu đang được xử lý.",
        )),
        Claim::Mismatch => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            "this Idempotency-Key was used for another request",
            "Mã yêu cầu đã được dùng cho yêu cầu khác.",
        )),
        Claim::Fresh => Ok(None),
    }
}

async fn create_case(
    state: &AppState,
    caller: &Authenticated,
    key: &str,
    submission: SubmitCase,
    dossier_signature: Option<String>,
) -> Result<Response, ApiError> {
    let refuse = |status: StatusCode, body: String| async move {
        store::record_refusal(&state.db, &caller.account_id, key, status.as_u16(), &body).await?;
        Ok::<Response, ApiError>(json_response(status, body))
    };
    let Some(procedure) = catalog_store::get_active(&state.db, &submission.procedure_code).await? else {
        let body = error_body(
            "procedure_unavailable",
            "this procedure is not accepted online any more",
            "Thủ tục này không còn được nhận trực tuyến.",
            None,
        );
        return refuse(StatusCode::UNPROCESSABLE_ENTITY, body).await;
    };
    if submission.anonymous && procedure.kind != ProcedureKind::Report {
        let body = error_body(
            "anonymous_not_allowed",
            "only reports to the hotline may be sent anonymously",
            "Chỉ phản ánh gửi đường dây nóng mới được gửi ẩn danh.",
            None,
        );
        return refuse(StatusCode::UNPROCESSABLE_ENTITY, body).await;
    }
    // Already a case, submitted from the resident's other device under another key: answer with
    // it instead of making a second case of the same draft.
    if let Some(existing) = store::case_for_draft(&state.db, &caller.account_id, &submission.draft_id).await? {
        let body = serde_json::to_string(&existing).map_err(ApiError::internal)?;
        store::record_refusal(&state.db, &caller.account_id, key, 201, &body).await?;
        return Ok(json_response(StatusCode::CREATED, body));
    }
    let today = CalendarDate::today_utc_plus_7();
    let attachments: BTreeMap<String, u32> =
        submission.attachments.iter().map(|(rule, blobs)| (rule.clone(), blobs.len() as u32)).collect();
    let issues = validation::validate(&procedure, &submission.values, &attachments, today);
    if !issues.is_empty() {
        let details = serde_json::json!({ "issues": issues });
        let body = error_body(VALIDATION_FAILED, "the submission has invalid fields", "Hồ sơ còn thông tin chưa hợp lệ.", Some(details));
        return refuse(StatusCode::UNPROCESSABLE_ENTITY, body).await;
    }
    // Every file named must be a complete upload of this resident (never someone else's).
    if let Some(body) = crate::blobs::refusal_for_missing(state, &caller.account_id, &submission.attachments).await? {
        return refuse(StatusCode::UNPROCESSABLE_ENTITY, body).await;
    }
    // The resident's signature over exactly this content (issue 6). None from older app versions:
    // accepted for now, and the case stays unsigned; one that does not verify is refused.
    let (procedure_code, draft_id) = (&submission.procedure_code, &submission.draft_id);
    let signature = match crate::signing::dossier::verify_submission(
        state, caller, dossier_signature.as_deref(), procedure_code, draft_id, &submission.values, &submission.attachments,
    )
    .await?
    {
        Ok(signature) => signature,
        Err((status, body)) => return refuse(status, body).await,
    };
    let values_json = serde_json::to_string(&submission.values).map_err(ApiError::internal)?;
    let case = store::NewCase {
        id: uuid::Uuid::new_v4().to_string(),
        account_id: caller.account_id.clone(),
        procedure_code: procedure.code.clone(),
        agency_code: procedure.agency.code.clone(),
        draft_id: submission.draft_id.clone(),
        values_json,
        received_at_ms: store::now_ms(),
        due_date: state.holidays.due_date(today, procedure.processing_days).to_string(),
        anonymous: submission.anonymous,
        attachments: submission.attachments.clone(),
        key: key.to_string(),
    };
    // Kept before the case, so a signed case never exists without its signature.
    if let Some(signature) = &signature {
        crate::signing::dossier::store(&state.db, &case.id, &caller.account_id, signature).await?;
    }
    let receipt = store::create(&state.db, case, today.year).await?;
    tracing::info!(procedure = %procedure.code, "case received");
    Ok(json_response(StatusCode::CREATED, serde_json::to_string(&receipt).map_err(ApiError::internal)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_key_header_forms() {
        let mut h = HeaderMap::new();
        assert!(idempotency_key(&h).is_err());
        h.insert("idempotency-key", "\"8e03978e-40d5-43e8-bc93-6894a57f9324\"".parse().unwrap());
        assert_eq!(idempotency_key(&h).unwrap(), "8e03978e-40d5-43e8-bc93-6894a57f9324");
        h.insert("idempotency-key", "plain-token".parse().unwrap());
        assert_eq!(idempotency_key(&h).unwrap(), "plain-token");
        h.insert("idempotency-key", "\"\"".parse().unwrap());
        assert!(idempotency_key(&h).is_err());
    }
}
