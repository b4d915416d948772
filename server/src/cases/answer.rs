//! `POST /v1/cases/{id}/answer`: the resident answers "more information needed" by sending new
//! values of the fields the agency asked for. A command like a submission (DESIGN §1): claimed
//! under its `Idempotency-Key`, and the case row, its event, the `case.status` change and the
//! recorded answer commit in one transaction. Refusals are recorded under the key too.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use congdan_core::drafts::validation::{self, CalendarDate, FieldValue, IssueCode};
use congdan_core::drafts::wire::{AnswerCase, VALIDATION_FAILED};

use super::agency::{refuse, refuse_not_found, refuse_transition};
use super::store::{self, CaseRecord, Decision, Step};
use super::{json_response, run_command};
use crate::app::AppState;
use crate::catalog::store as catalog_store;
use crate::error::ApiError;
use crate::identity::auth::Authenticated;

pub async fn answer(
    State(state): State<AppState>,
    caller: Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (state, caller) = (&state, &caller);
    run_command(state, caller, &headers, &body, |_: &AnswerCase| Ok(()), |answer, key| async move {
        let (status, body) = record_answer(&state, &caller.account_id, &id, &key, answer.values).await?;
        Ok(json_response(StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body))
    })
    .await
}

async fn record_answer(
    state: &AppState,
    owner: &str,
    id: &str,
    key: &str,
    given: BTreeMap<String, FieldValue>,
) -> Result<(u16, String), ApiError> {
    // The form, read before the transaction (validation needs it; it does not change the case).
    let procedure = match store::get_case(&state.db, id).await? {
        Some((case, _)) => catalog_store::get_active(&state.db, &case.procedure_code).await?,
        None => None,
    };
    let caller = owner.to_string();
    let owner = caller.clone();
    let decide = move |case: Option<&CaseRecord>| {
        let Some(case) = case.filter(|c| c.account_id == owner) else {
            return refuse_not_found();
        };
        if case.status != "needs_information" {
            return refuse_transition(&case.status, "information_provided");
        }
        let not_requested: Vec<&String> = given.keys().filter(|f| !case.requested_fields.contains(f)).collect();
        if !not_requested.is_empty() {
            return refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                "field_not_requested",
                "only the fields the agency asked for may change",
                "Chỉ được sửa các thông tin cơ quan yêu cầu bổ sung.",
                Some(serde_json::json!({"fields": not_requested})),
            );
        }
        let Some(procedure) = procedure else {
            return refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                "procedure_unavailable",
                "this procedure is not accepted online any more",
                "Thủ tục này không còn được nhận trực tuyến.",
                None,
            );
        };
        let mut values: BTreeMap<String, FieldValue> = serde_json::from_str(&case.values_json).unwrap_or_default();
        values.extend(given);
        // The files were checked at submission; an answer changes field values only.
        let issues: Vec<_> = validation::validate(&procedure, &values, &Default::default(), CalendarDate::today_utc_plus_7())
            .into_iter()
            .filter(|i| !matches!(i.code, IssueCode::AttachmentMissing | IssueCode::TooManyAttachments))
            .collect();
        if !issues.is_empty() {
            return refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                VALIDATION_FAILED,
                "the answer has invalid fields",
                "Thông tin bổ sung chưa hợp lệ.",
                Some(serde_json::json!({ "issues": issues })),
            );
        }
        let Ok(values_json) = serde_json::to_string(&values) else {
            return refuse_not_found();
        };
        Decision::Apply(Step {
            status: "information_provided".into(),
            message: None,
            requested_fields: Vec::new(),
            result_document: None,
            values_json: Some(values_json),
        })
    };
    Ok(store::run_step(&state.db, id, &caller, key, decide).await?)
}
