//! Drafts across a resident's devices: `PUT /v1/drafts/{id}` backs up a draft (the phone's
//! `draft.backup` outbox command) and merges it per field with what the resident's other devices
//! sent (hybrid logical clock, last writer wins per field; see `congdan_core::drafts::backup`).
//! The merged draft goes to the resident's account feed as one `draft.upsert` change, which
//! every device applies. Idempotent per key like every command (DESIGN §1).

pub mod store;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use congdan_core::drafts::backup::{DraftBackup, MAX_FIELDS, MAX_VALUE_BYTES};
use congdan_core::drafts::hlc::DEFAULT_MAX_DRIFT_MS;

use crate::app::AppState;
use crate::cases::{json_response, run_command};
use crate::error::ApiError;
use crate::identity::auth::Authenticated;
use store::Outcome;

/// The longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;

fn unprocessable(code: &'static str, message: impl Into<String>, message_vi: &'static str) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message, message_vi)
}

/// Checks a backup before any work: its id, its size, and that no stamp is from the future
/// (one phone with a wrong clock must not win every merge).
pub fn check(id: &str, backup: &DraftBackup, now_ms: u64) -> Result<(), ApiError> {
    if backup.draft_id != id || id.is_empty() || id.len() > 64 {
        return Err(unprocessable("draft_id_mismatch", "the body's draft_id must be the path's id", "Mã bản nháp không khớp."));
    }
    let too_large = |what: String| unprocessable("draft_too_large", what, "Bản nháp quá lớn.");
    if backup.fields.len() > MAX_FIELDS {
        return Err(too_large(format!("at most {MAX_FIELDS} fields")));
    }
    if backup.title.chars().count() > MAX_TITLE_CHARS {
        return Err(too_large(format!("a title has at most {MAX_TITLE_CHARS} characters")));
    }
    for f in &backup.fields {
        if f.field_id.is_empty() || f.field_id.len() > 64 {
            return Err(too_large("a field id has 1 to 64 bytes".into()));
        }
        if f.value.as_ref().is_some_and(|v| v.to_string().len() > MAX_VALUE_BYTES) {
            return Err(too_large(format!("field {} is larger than {MAX_VALUE_BYTES} bytes", f.field_id)));
        }
    }
    if let Some(stamp) = backup.stamps().find(|h| h.wall_ms > now_ms.saturating_add(DEFAULT_MAX_DRIFT_MS)) {
        return Err(unprocessable(
            "clock_skew",
            format!("stamp {stamp} is more than an hour ahead of the server's clock"),
            "Đồng hồ của điện thoại không đúng. Vui lòng chỉnh lại giờ.",
        ));
    }
    Ok(())
}

pub async fn backup(
    State(state): State<AppState>,
    caller: Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let now = crate::db::now_millis().max(0) as u64;
    let checked = |incoming: &DraftBackup| check(&id, incoming, now);
    // A refusal after the claim commits nothing: the key is freed (a retry is answered the
    // same way, or does the work).
    let (state, caller) = (&state, &caller);
    run_command(state, caller, &headers, &body, checked, |incoming, key| async move {
        match store::merge_backup(&state.db, &caller.account_id, &key, incoming).await? {
            Outcome::Merged(_, body) => Ok(json_response(StatusCode::OK, body)),
            Outcome::NotYours => Err(ApiError::not_found("not_found", "no such draft")),
            Outcome::TooManyFields => {
                Err(unprocessable("draft_too_large", format!("at most {MAX_FIELDS} fields"), "Bản nháp quá lớn."))
            }
        }
    })
    .await
}
