//! The agency side of signature requests: create one for a resident, list, cancel, read the
//! result, download the verification bundle, read the audit trail. Every handler needs a role
//! `agency:<CODE>`; an agency sees only its own requests, anyone else's answers 404 exactly like
//! one that does not exist.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::body::Bytes;
use congdan_core::catalog::model::ACCEPTED_MEDIA_TYPES;
use congdan_core::crypto::{from_hex, hex};
use congdan_core::drafts::attachments::is_sha256_hex;
use congdan_core::identity::national_id;
use congdan_core::signing::agency_wire::{
    AgencyDecision, AgencyRequestPage, AgencySignatureRequest, BundledRequest, DecisionBundle, DecodedDecision,
    DECISION_BUNDLE_KIND,
};
use congdan_core::signing::api::RequestState;
use congdan_core::signing::verify_decision;
use serde::Deserialize;

use super::store::{self, Cancel, ListFilter, RequestRow};
use super::{audit, bundle, request_not_found, MAX_PURPOSE_CHARS, MAX_SUMMARY_BYTES, MAX_TITLE_CHARS};
use crate::app::AppState;
use crate::blobs::store as blob_store;
use crate::cases::{json_response, run_command};
use crate::db::now_millis;
use crate::error::ApiError;
use crate::identity::auth::Authenticated;
use crate::identity::device_keys;
use crate::identity::rejection::Rejection;

const AGENCY_ROLE: &str = "agency:";
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 100;
/// The shortest and longest a request may stay open.
pub const MIN_VALIDITY_SECS: i64 = 60;
pub const MAX_VALIDITY_SECS: i64 = 90 * 86_400;
const MAX_LINK_CHARS: usize = 2000;
const MAX_REASON_CHARS: usize = 500;
/// Open requests one resident may have at once: a resident's phone is not a mailbox to flood.
pub const MAX_OPEN_PER_RESIDENT: i64 = 100;

/// The agency codes the caller acts for; 403 `forbidden` if none.
pub(crate) fn agency_codes(caller: &Authenticated) -> Result<Vec<String>, Rejection> {
    caller.require_role(AGENCY_ROLE)?;
    Ok(caller.roles.iter().filter_map(|r| r.strip_prefix(AGENCY_ROLE)).map(str::to_string).collect())
}

fn invalid(code: &'static str, message: impl Into<String>, message_vi: &'static str) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message, message_vi)
}

fn now_secs() -> i64 {
    now_millis() / 1000
}

/// The request if one of `agencies` made it.
async fn own_request(state: &AppState, agencies: &[String], id: &str) -> Result<RequestRow, ApiError> {
    store::get(&state.db, id).await?.filter(|r| agencies.contains(&r.agency_code)).ok_or_else(request_not_found)
}

// ---- POST /v1/agency/signature-requests ----

/// The document of a new request: either a PDF the agency uploaded with `POST /v1/blobs` (name
/// its `sha256` only) or one kept elsewhere (`sha256`, `size`, `content_type` and an https `link`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentInput {
    pub sha256: String,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub content_type: Option<String>,
    #[serde(default)]
    pub link: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    /// The resident's 12-digit national ID number; they must have logged in once.
    pub resident_national_id: String,
    /// Needed only by a caller acting for several agencies.
    #[serde(default)]
    pub agency_code: Option<String>,
    pub title: String,
    pub summary: String,
    pub purpose: String,
    pub document: DocumentInput,
    /// Unix seconds.
    pub expires_at: i64,
}

fn check_text(value: &str, max_chars: usize, field: &'static str) -> Result<(), ApiError> {
    if value.trim().is_empty() || value.chars().count() > max_chars || value.chars().any(|c| c.is_control() && c != '\n') {
        return Err(invalid("invalid_field", format!("{field} must be 1 to {max_chars} characters of text"), "Thông tin yêu cầu không hợp lệ."));
    }
    Ok(())
}

/// A command of the one outbox (DESIGN §1): the agency's `Idempotency-Key` makes a retried POST
/// (a lost answer, a timeout) answer with the request the first one made, instead of asking the
/// resident to sign twice. Keys are the caller's own, as for every command.
pub async fn create(
    State(state): State<AppState>,
    caller: Authenticated,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Rejection> {
    let agencies = agency_codes(&caller)?;
    let (state, caller) = (&state, &caller);
    let response = run_command(state, caller, &headers, &body, |_: &CreateRequest| Ok(()), |input, key| async move {
        create_claimed(state, caller, &agencies, input, &key).await
    })
    .await?;
    Ok(response)
}

/// The work of a claimed create: the checks, then the request, its feed change, its audit entry
/// and the key's answer in one transaction. A refusal is not recorded under the key (run_command
/// frees it): a retry of the same body is checked again, since the resident may have logged in or
/// the upload finished meanwhile.
async fn create_claimed(
    state: &AppState,
    caller: &Authenticated,
    agencies: &[String],
    input: CreateRequest,
    key: &str,
) -> Result<Response, ApiError> {
    let agency = match (&input.agency_code, agencies) {
        (Some(code), _) if agencies.contains(code) => code.clone(),
        (Some(_), _) => return Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "not an agency you act for", "Bạn không có quyền thực hiện thao tác này.")),
        (None, [only]) => only.clone(),
        (None, _) => return Err(invalid("agency_code_required", "you act for several agencies: name agency_code", "Cần chọn cơ quan.")),
    };
    check_text(&input.title, MAX_TITLE_CHARS, "title")?;
    check_text(&input.purpose, MAX_PURPOSE_CHARS, "purpose")?;
    if input.summary.trim().is_empty() || input.summary.len() > MAX_SUMMARY_BYTES {
        return Err(invalid("invalid_field", format!("summary must be 1 to {MAX_SUMMARY_BYTES} bytes"), "Nội dung tóm tắt không hợp lệ."));
    }
    let now = now_secs();
    if input.expires_at < now + MIN_VALIDITY_SECS || input.expires_at > now + MAX_VALIDITY_SECS {
        return Err(invalid("invalid_expiry", "expires_at must be 1 minute to 90 days from now", "Thời hạn ký không hợp lệ."));
    }
    let doc = &input.document;
    if !is_sha256_hex(&doc.sha256) {
        return Err(invalid("invalid_sha256", "document.sha256 is the SHA-256 in lowercase hex", "Mã tài liệu không hợp lệ."));
    }
    let (size, content_type, link, owner) = match &doc.link {
        None => {
            // An upload of this staff member's, complete and checked (hash and type) by blobs.
            let upload = blob_store::get(&state.db, &caller.account_id, &doc.sha256)
                .await?
                .filter(|u| u.complete)
                .ok_or_else(|| invalid("document_not_uploaded", "upload the PDF with POST /v1/blobs first", "Chưa tải lên tài liệu."))?;
            if upload.media_type != "application/pdf" {
                return Err(invalid("document_not_pdf", "an uploaded document must be a PDF", "Tài liệu phải là tệp PDF."));
            }
            (upload.size, upload.media_type, None, Some(caller.account_id.clone()))
        }
        Some(link) => {
            if !link.starts_with("https://") || link.len() > MAX_LINK_CHARS || url::Url::parse(link).is_err() {
                return Err(invalid("invalid_link", "document.link must be an https URL", "Đường dẫn tài liệu không hợp lệ."));
            }
            let size = doc.size.filter(|s| *s > 0 && *s <= i64::MAX as u64).ok_or_else(|| {
                invalid("invalid_field", "document.size is required with a link", "Thiếu kích thước tài liệu.")
            })?;
            let content_type = doc.content_type.clone().filter(|t| ACCEPTED_MEDIA_TYPES.contains(&t.as_str())).ok_or_else(|| {
                invalid("invalid_field", "document.content_type must be PDF, JPEG, PNG or HEIC", "Loại tài liệu không được hỗ trợ.")
            })?;
            (size as i64, content_type, Some(link.clone()), None)
        }
    };
    let account_id = store::account_by_national_id(&state.db, &input.resident_national_id)
        .await?
        .ok_or_else(|| ApiError::not_found("resident_not_found", "no resident with this national ID number uses the app"))?;
    if store::open_for_resident(&state.db, &account_id, now).await? >= MAX_OPEN_PER_RESIDENT {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_open_requests",
            format!("the resident already has {MAX_OPEN_PER_RESIDENT} open signature requests"),
            "Người dân đang có quá nhiều yêu cầu ký chưa trả lời.",
        ));
    }
    let row = RequestRow {
        id: uuid::Uuid::new_v4().to_string(),
        agency_code: agency,
        account_id,
        created_by: caller.account_id.clone(),
        title: input.title,
        summary: input.summary,
        purpose: input.purpose,
        document_sha256: doc.sha256.clone(),
        document_size: size,
        document_type: content_type,
        document_link: link,
        document_owner: owner,
        created_at_ms: now_millis(),
        expires_at: input.expires_at,
        state: "pending".into(),
        cancelled_at_ms: None,
        cancel_reason: None,
        decided_at_ms: None,
        decision: None,
        decision_signed_sha256: None,
        decision_key_id: None,
        decision_response: None,
    };
    let masked = national_id::mask(&input.resident_national_id);
    let answer = serde_json::to_string(&agency_view(state, &row, Some(masked)).await?).map_err(ApiError::internal)?;
    store::create(&state.db, row.clone(), key, &answer).await?;
    tracing::info!(agency = %row.agency_code, "signature request created");
    Ok(json_response(StatusCode::CREATED, answer))
}

/// The request as its agency sees it, without the resident's masked number and the decision
/// (list items: no key lookup and no verification per row).
fn agency_item(r: &RequestRow, now: i64) -> AgencySignatureRequest {
    let view = r.view(now);
    AgencySignatureRequest {
        id: view.id,
        agency_code: view.agency_code,
        title: view.title,
        summary: view.summary,
        purpose: view.purpose,
        document: view.document,
        created_at: view.created_at,
        expires_at: view.expires_at,
        state: view.state,
        account_id: r.account_id.clone(),
        resident_national_id_masked: None,
        cancelled_at: r.cancelled_at_ms.map(|t| (t / 1000).max(0) as u64),
        cancel_reason: r.cancel_reason.clone(),
        decided_at: r.decided_at_ms.map(|t| (t / 1000).max(0) as u64),
        decision: None,
    }
}

/// The request as its agency sees it, with the decision when there is one (read from the
/// statement after verifying it again).
async fn agency_view(state: &AppState, r: &RequestRow, masked_id: Option<String>) -> Result<AgencySignatureRequest, ApiError> {
    let mut view = agency_item(r, now_secs());
    view.resident_national_id_masked = masked_id;
    if let Some(statement) = &r.decision {
        let keys = device_keys::for_account(&state.db, &r.account_id).await?;
        let d = verify_decision(statement, &keys).map_err(ApiError::internal)?.decision;
        view.decision = Some(AgencyDecision {
            intent: d.intent,
            decline_reason: d.decline_reason,
            signed_at: d.signed_at,
            decided_at: view.decided_at,
            device_key_id: hex(&d.device_key_id),
        });
    }
    Ok(view)
}

/// The resident's national ID number as screens show it.
async fn masked_national_id(state: &AppState, account_id: &str) -> Result<String, ApiError> {
    let account = crate::identity::store::account(&state.db, account_id).await?;
    Ok(national_id::mask(&account.national_id))
}

fn json_of<T: serde::Serialize>(status: StatusCode, value: &T) -> Result<Response, ApiError> {
    Ok(json_response(status, serde_json::to_string(value).map_err(ApiError::internal)?))
}

// ---- GET /v1/agency/signature-requests ----

#[derive(Debug, Deserialize)]
pub struct ListParams {
    state: Option<String>,
    /// The resident's national ID number.
    resident: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

fn encode_cursor(created_at: i64, id: &str) -> String {
    hex(format!("{created_at}.{id}").as_bytes())
}

fn decode_cursor(cursor: &str) -> Option<(i64, String)> {
    if cursor.len() > 512 {
        return None;
    }
    let text = String::from_utf8(from_hex(cursor)?).ok()?;
    let (at, id) = text.split_once('.')?;
    Some((at.parse().ok()?, id.to_string()))
}

pub async fn list(
    State(state): State<AppState>,
    caller: Authenticated,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Response, Rejection> {
    let agencies = agency_codes(&caller)?;
    let Query(params) = params.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let state_filter = match params.state.as_deref() {
        None | Some("") => None,
        Some(s) => Some(RequestState::parse(s).ok_or_else(|| ApiError::bad_request("invalid_state", "state is not a request state"))?),
    };
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request("invalid_limit", "limit must be 1 to 100").into());
    }
    let before = match params.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(decode_cursor(c).ok_or_else(|| ApiError::bad_request("invalid_cursor", "unreadable cursor"))?),
    };
    let account_id = match params.resident.as_deref() {
        None | Some("") => None,
        Some(nid) => match store::account_by_national_id(&state.db, nid).await? {
            Some(a) => Some(a),
            // Nobody by that number: an empty page, like any filter matching nothing.
            None => return Ok(json_of(StatusCode::OK, &AgencyRequestPage { requests: Vec::new(), next_cursor: None })?),
        },
    };
    let filter = ListFilter { agencies, state: state_filter, account_id, before, limit: limit + 1, now_secs: now_secs() };
    let mut rows = store::list(&state.db, filter).await?;
    let next_cursor = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|r| encode_cursor(r.created_at_ms, &r.id))
    } else {
        None
    };
    let now = now_secs();
    let mut residents: Vec<String> = rows.iter().map(|r| r.account_id.clone()).collect();
    residents.sort();
    residents.dedup();
    let national_ids = store::national_ids(&state.db, residents).await?;
    let requests = rows
        .iter()
        .map(|r| AgencySignatureRequest {
            resident_national_id_masked: national_ids.get(&r.account_id).map(|n| national_id::mask(n)),
            ..agency_item(r, now)
        })
        .collect();
    let page = AgencyRequestPage { requests, next_cursor };
    Ok(json_of(StatusCode::OK, &page)?)
}

// ---- GET /v1/agency/signature-requests/{id} ----

/// The request, its state and the decision (the result).
pub async fn get(State(state): State<AppState>, caller: Authenticated, Path(id): Path<String>) -> Result<Response, Rejection> {
    let agencies = agency_codes(&caller)?;
    let r = own_request(&state, &agencies, &id).await?;
    let masked = masked_national_id(&state, &r.account_id).await?;
    Ok(json_of(StatusCode::OK, &agency_view(&state, &r, Some(masked)).await?)?)
}

// ---- POST /v1/agency/signature-requests/{id}/cancel ----

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    #[serde(default)]
    pub reason: Option<String>,
}

pub async fn cancel(State(state): State<AppState>, caller: Authenticated, Path(id): Path<String>, body: Bytes) -> Result<Response, Rejection> {
    let agencies = agency_codes(&caller)?;
    let input: CancelBody = if body.is_empty() { CancelBody::default() } else { serde_json::from_slice(&body).map_err(super::invalid_body)? };
    if let Some(reason) = &input.reason {
        check_text(reason, MAX_REASON_CHARS, "reason")?;
    }
    match store::cancel(&state.db, &id, agencies, &caller.account_id, input.reason).await? {
        Cancel::Missing => Err(request_not_found().into()),
        Cancel::Cancelled(r) => {
            let masked = masked_national_id(&state, &r.account_id).await?;
            Ok(json_of(StatusCode::OK, &agency_view(&state, &r, Some(masked)).await?)?)
        }
        Cancel::NotPending(r) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "request_not_pending",
            format!("the request is {} and cannot be cancelled", r.state_at(now_secs()).as_str()),
            "Yêu cầu đã kết thúc, không thể hủy.",
        )
        .into()),
    }
}

// ---- GET /v1/agency/signature-requests/{id}/bundle ----

/// The verification bundle of a decided request (`409 not_decided` before).
pub async fn download_bundle(State(state): State<AppState>, caller: Authenticated, Path(id): Path<String>) -> Result<Response, Rejection> {
    let agencies = agency_codes(&caller)?;
    let r = own_request(&state, &agencies, &id).await?;
    let Some(statement) = &r.decision else {
        return Err(ApiError::new(StatusCode::CONFLICT, "not_decided", "the resident has not decided yet", "Người dân chưa trả lời yêu cầu.").into());
    };
    let keys = device_keys::for_account(&state.db, &r.account_id).await?;
    let verified = verify_decision(statement, &keys).map_err(ApiError::internal)?;
    let d = &verified.decision;
    let key = keys.find(&d.device_key_id).ok_or_else(|| ApiError::internal("a decided request's key is gone"))?;
    let decision = bundle::split(statement, &key.public(), &d.device_key_id, true).map_err(ApiError::internal)?;
    let attestation = bundle::attest(&state.db, key).await?;
    let server_public_key_pem = attestation.signed.public_key_pem.clone();
    let body = DecisionBundle {
        kind: DECISION_BUNDLE_KIND.into(),
        request_id: r.id.clone(),
        decision,
        attestation,
        server_public_key_pem,
        decoded: DecodedDecision {
            statement_type: "0x30 decision".into(),
            request_id: d.request_id.clone(),
            agency_code: d.agency_code.clone(),
            document_sha256: hex(&d.document_sha256),
            summary_sha256: hex(&d.summary_sha256),
            intent: d.intent,
            purpose: d.purpose.clone(),
            decline_reason: d.decline_reason.clone(),
            account_id: d.account_id.clone(),
            device_key_id: hex(&d.device_key_id),
            signed_at: d.signed_at,
            expires_at: d.expires_at,
        },
        request: BundledRequest {
            title: r.title.clone(),
            summary: r.summary.clone(),
            purpose: r.purpose.clone(),
            document_sha256: r.document_sha256.clone(),
            document_size: r.document_size.max(0) as u64,
            document_content_type: r.document_type.clone(),
            document_link: r.document_link.clone(),
        },
    };
    audit::append(&state.db, &r.id, audit::BUNDLE_FETCHED, &caller.account_id, "{}", false).await?;
    Ok(json_of(StatusCode::OK, &body)?)
}

// ---- GET /v1/agency/signature-requests/{id}/audit ----

pub async fn audit_trail(State(state): State<AppState>, caller: Authenticated, Path(id): Path<String>) -> Result<Response, Rejection> {
    let agencies = agency_codes(&caller)?;
    let r = own_request(&state, &agencies, &id).await?;
    let (entries, verification) = audit::check(&state.db, &r.id).await?.ok_or_else(request_not_found)?;
    let body = serde_json::json!({ "request_id": r.id, "entries": entries, "verification": verification });
    Ok(json_response(StatusCode::OK, body.to_string()))
}
