//! The agency side of cases: list incoming cases, open one, move it through its statuses.
//!
//! Every handler needs a role `agency:<CODE>`; an agency sees and acts only on cases whose
//! `agency_code` is one of its codes. Any other case answers `404 case_not_found`, exactly like
//! a case that does not exist, so an agency cannot learn which cases exist elsewhere.
//! Anonymous hotline reports never show who sent them: no account, name or national ID, and
//! the report's own `reporter_name`/`reporter_phone` values are dropped as well.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use congdan_core::drafts::validation::{CalendarDate, FieldValue};
use congdan_core::identity::national_id;
use serde::Deserialize;

use super::store::{self, CaseEvent, CaseRecord, Decision, ListQuery, Step};
use super::{error_body, json_response, run_command};
use crate::app::AppState;
use crate::blobs::{self, store as blob_store};
use crate::catalog::store as catalog_store;
use crate::error::ApiError;
use crate::identity::auth::Authenticated;
use crate::identity::rejection::Rejection;
use crate::identity::store as identity_store;

const AGENCY_ROLE: &str = "agency:";
/// The values of a report that name its sender: hidden from the agency when it is anonymous.
const REPORTER_FIELDS: &[&str] = &["reporter_name", "reporter_phone"];
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 100;
const MAX_MESSAGE_CHARS: usize = 1000;
const MAX_RESULT_DOCUMENT_CHARS: usize = 500;

/// The agency codes the caller acts for (`agency:<CODE>` roles); 403 `forbidden` if none.
fn agency_codes(caller: &Authenticated) -> Result<Vec<String>, Rejection> {
    caller.require_role(AGENCY_ROLE)?;
    Ok(caller.roles.iter().filter_map(|r| r.strip_prefix(AGENCY_ROLE)).map(str::to_string).collect())
}

fn case_not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "case_not_found", "no such case", "Không tìm thấy hồ sơ.")
}

fn invalid(code: &'static str, message: &str) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message.to_string(), "Dữ liệu gửi lên không hợp lệ.")
}

/// Past its due date and not finished (dates compare as text: `YYYY-MM-DD`).
fn is_overdue(status: &str, due_date: &str) -> bool {
    !matches!(status, "done" | "rejected") && CalendarDate::today_utc_plus_7().to_string().as_str() > due_date
}

// ---- GET /v1/agency/cases ----

#[derive(Debug, Deserialize)]
pub struct ListParams {
    status: Option<String>,
    procedure: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// The keyset cursor: the last item's `received_at` and id, hex-encoded (opaque to clients).
fn encode_cursor(received_at: i64, id: &str) -> String {
    congdan_core::crypto::hex(format!("{received_at}.{id}").as_bytes())
}

fn decode_cursor(cursor: &str) -> Option<(i64, String)> {
    if cursor.len() > 512 {
        return None;
    }
    let bytes = congdan_core::crypto::from_hex(cursor)?;
    let text = String::from_utf8(bytes).ok()?;
    let (at, id) = text.split_once('.')?;
    Some((at.parse().ok()?, id.to_string()))
}

fn list_query(agencies: Vec<String>, params: ListParams) -> Result<ListQuery, ApiError> {
    let bad = |code, message: &str| ApiError::bad_request(code, message.to_string());
    if let Some(status) = &params.status {
        if !store::STATUSES.contains(&status.as_str()) {
            return Err(bad("invalid_status", "status is not a case status"));
        }
    }
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(bad("invalid_limit", "limit must be 1 to 100"));
    }
    let before = match params.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(decode_cursor(c).ok_or_else(|| bad("invalid_cursor", "unreadable cursor"))?),
    };
    Ok(ListQuery { agencies, status: params.status, procedure: params.procedure, before, limit })
}

pub async fn list(
    State(state): State<AppState>,
    caller: Authenticated,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Response, Rejection> {
    let agencies = agency_codes(&caller)?;
    let Query(params) = params.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let mut query = list_query(agencies, params)?;
    let limit = query.limit as usize;
    query.limit += 1; // one more tells whether there is a next page
    let mut items = store::list_for_agencies(&state.db, query).await?;
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|last| encode_cursor(last.received_at_ms, &last.case_id))
    } else {
        None
    };
    let cases: Vec<serde_json::Value> = items
        .iter()
        .map(|item| {
            let mut v = serde_json::to_value(item).unwrap_or_default();
            v["overdue"] = serde_json::json!(is_overdue(&item.status, &item.due_date));
            v
        })
        .collect();
    let body = serde_json::json!({"cases": cases, "next_cursor": next_cursor});
    Ok(json_response(StatusCode::OK, body.to_string()))
}

// ---- GET /v1/agency/cases/{id} ----

/// The case as its agency sees it. `resident` is `None` for an anonymous report.
fn agency_view(case: &CaseRecord, events: &[CaseEvent], resident: Option<(String, String)>) -> serde_json::Value {
    let mut values: BTreeMap<String, FieldValue> = serde_json::from_str(&case.values_json).unwrap_or_default();
    if case.anonymous {
        values.retain(|field, _| !REPORTER_FIELDS.contains(&field.as_str()));
    }
    let mut view = store::full_view(case, events);
    if let Some(obj) = view.as_object_mut() {
        obj.remove("draft_id"); // the phone's own identifier: none of the agency's business
    }
    view["agency_code"] = serde_json::json!(case.agency_code);
    view["overdue"] = serde_json::json!(is_overdue(&case.status, &case.due_date));
    view["anonymous"] = serde_json::json!(case.anonymous);
    view["values"] = serde_json::to_value(values).unwrap_or_default();
    view["resident"] = match resident {
        Some((name, masked_id)) => serde_json::json!({"display_name": name, "national_id_masked": masked_id}),
        None => serde_json::Value::Null,
    };
    view
}

/// The case if one of `agencies` handles it; `None` otherwise (never say which).
async fn own_case(state: &AppState, agencies: &[String], id: &str) -> Result<Option<(CaseRecord, Vec<CaseEvent>)>, ApiError> {
    Ok(store::get_case(&state.db, id).await?.filter(|(case, _)| agencies.contains(&case.agency_code)))
}

pub async fn get(State(state): State<AppState>, caller: Authenticated, Path(id): Path<String>) -> Result<Response, Rejection> {
    let agencies = agency_codes(&caller)?;
    let (case, events) = own_case(&state, &agencies, &id).await?.ok_or_else(case_not_found)?;
    let resident = if case.anonymous {
        None
    } else {
        let account = identity_store::account(&state.db, &case.account_id).await?;
        Some((account.display_name, national_id::mask(&account.national_id)))
    };
    let files = blob_store::case_files(&state.db, &case.id, &case.account_id).await?;
    let mut view = agency_view(&case, &events, resident);
    view["attachments"] = serde_json::to_value(files).unwrap_or_default();
    // Whether the resident signed the submission (issue 6); older app versions did not.
    view["signed"] = serde_json::json!(crate::signing::dossier::load(&state.db, &case.id).await?.is_some());
    Ok(json_response(StatusCode::OK, view.to_string()))
}

// ---- GET /v1/agency/cases/{id}/attachments/{sha256} ----

/// One file of one of the agency's cases, streamed. A file the case does not name, or a case
/// of another agency, answers 404 like one that does not exist.
pub async fn attachment(
    State(state): State<AppState>,
    caller: Authenticated,
    Path((id, sha256)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Rejection> {
    let agencies = agency_codes(&caller)?;
    let (case, _) = own_case(&state, &agencies, &id).await?.ok_or_else(case_not_found)?;
    let named = blob_store::case_attachments(&state.db, &case.id).await?.into_iter().any(|(_, sha)| sha == sha256);
    if !named {
        return Err(ApiError::not_found("blob_not_found", "the case has no such file").into());
    }
    Ok(blobs::serve_file(&state, &case.account_id, &sha256, &headers).await?)
}

// ---- POST /v1/agency/cases/{id}/status ----

/// An agency's status command.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusCommand {
    pub status: String,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub requested_fields: Vec<String>,
    #[serde(default)]
    pub result_document: Option<String>,
}

/// The statuses an agency may move a case to from `from`. `done` and `rejected` are final;
/// `needs_information` waits for the resident's answer.
pub fn allowed_transition(from: &str, to: &str) -> bool {
    let targets: &[&str] = match from {
        "received" | "information_provided" => &["processing", "needs_information", "done", "rejected"],
        "processing" => &["needs_information", "done", "rejected"],
        _ => &[],
    };
    targets.contains(&to)
}

/// The checks that need nothing but the body.
fn check_command(c: &StatusCommand) -> Result<(), ApiError> {
    if !matches!(c.status.as_str(), "processing" | "needs_information" | "done" | "rejected") {
        return Err(invalid("invalid_status", "status must be processing, needs_information, done or rejected"));
    }
    let message_chars = c.message.as_deref().map(|m| m.trim().chars().count());
    if matches!(c.status.as_str(), "needs_information" | "rejected") && message_chars.is_none_or(|n| n == 0) {
        return Err(invalid("message_required", "a message is required for needs_information and rejected"));
    }
    if message_chars.is_some_and(|n| n == 0 || n > MAX_MESSAGE_CHARS) {
        return Err(invalid("invalid_message", "message must be 1 to 1000 characters"));
    }
    if !c.requested_fields.is_empty() && c.status != "needs_information" {
        return Err(invalid("invalid_body", "requested_fields only go with needs_information"));
    }
    if let Some(doc) = &c.result_document {
        if c.status != "done" {
            return Err(invalid("invalid_body", "result_document only goes with done"));
        }
        let n = doc.trim().chars().count();
        if n == 0 || n > MAX_RESULT_DOCUMENT_CHARS {
            return Err(invalid("invalid_result_document", "result_document must be 1 to 500 characters"));
        }
    }
    Ok(())
}

/// A refusal recorded under the command's key.
pub(crate) fn refuse(status: StatusCode, code: &str, message: &str, message_vi: &str, details: Option<serde_json::Value>) -> Decision {
    Decision::Refuse { status: status.as_u16(), body: error_body(code, message, message_vi, details) }
}

pub(crate) fn refuse_not_found() -> Decision {
    refuse(StatusCode::NOT_FOUND, "case_not_found", "no such case", "Không tìm thấy hồ sơ.", None)
}

pub(crate) fn refuse_transition(from: &str, to: &str) -> Decision {
    refuse(
        StatusCode::CONFLICT,
        "invalid_transition",
        &format!("a case that is {from} cannot become {to}"),
        "Không thể chuyển hồ sơ sang trạng thái này.",
        None,
    )
}

pub async fn set_status(
    State(state): State<AppState>,
    caller: Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Rejection> {
    let agencies = agency_codes(&caller)?;
    let (state, caller) = (&state, &caller);
    let response = run_command(state, caller, &headers, &body, check_command, |command, key| async move {
        let (status, body) = step(&state, agencies, &id, &caller.account_id, &key, command).await?;
        Ok(json_response(StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body))
    })
    .await?;
    Ok(response)
}

async fn step(
    state: &AppState,
    agencies: Vec<String>,
    id: &str,
    caller: &str,
    key: &str,
    command: StatusCommand,
) -> Result<(u16, String), ApiError> {
    // The form's field ids, for checking what the agency asks for (read before the transaction).
    let field_ids: Vec<String> = match store::get_case(&state.db, id).await? {
        Some((case, _)) => catalog_store::get_active(&state.db, &case.procedure_code)
            .await?
            .map(|p| p.fields.into_iter().map(|f| f.id).collect())
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let decide = move |case: Option<&CaseRecord>| {
        let Some(case) = case.filter(|c| agencies.contains(&c.agency_code)) else {
            return refuse_not_found();
        };
        if !allowed_transition(&case.status, &command.status) {
            return refuse_transition(&case.status, &command.status);
        }
        let unknown: Vec<&String> = command.requested_fields.iter().filter(|f| !field_ids.contains(f)).collect();
        if !unknown.is_empty() {
            let details = serde_json::json!({"fields": unknown});
            return refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_field",
                "requested_fields must be fields of the procedure",
                "Trường yêu cầu bổ sung không có trong biểu mẫu.",
                Some(details),
            );
        }
        Decision::Apply(Step {
            status: command.status,
            message: command.message.map(|m| m.trim().to_string()),
            requested_fields: command.requested_fields,
            result_document: command.result_document.map(|d| d.trim().to_string()),
            values_json: None,
        })
    };
    Ok(store::run_step(&state.db, id, caller, key, decide).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_bad_ones_are_refused() {
        let c = encode_cursor(1_763_859_600_000, "9f2c-ab");
        assert_eq!(decode_cursor(&c), Some((1_763_859_600_000, "9f2c-ab".to_string())));
        for bad in ["zz", "abc", "00", "2e"] {
            assert_eq!(decode_cursor(bad), None, "{bad}");
        }
    }

    #[test]
    fn transitions() {
        assert!(allowed_transition("received", "processing"));
        assert!(allowed_transition("information_provided", "needs_information"));
        assert!(!allowed_transition("processing", "processing"));
        assert!(!allowed_transition("needs_information", "done"), "waits for the resident");
        for to in ["processing", "needs_information", "done", "rejected"] {
            assert!(!allowed_transition("done", to) && !allowed_transition("rejected", to));
        }
    }
}
