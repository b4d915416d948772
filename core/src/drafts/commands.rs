//! The drafts capability's commands in the outbox: `case.submit` and `case.answer` (the
//! resident's answer to "more information needed"), and what their answers change.

use rusqlite::{params, Transaction};

use super::store::{self, DraftState};
use super::changes::CaseView;
use super::validation::FieldValue;
use super::wire::{answer_path, AnswerCase, CaseReceipt, SubmitCase, ANSWER_KIND, SUBMIT_KIND, SUBMIT_PATH};
use crate::error::{Error, Result};
use crate::outbox::{self, Rejection, Route};

pub(crate) fn route(kind: &str) -> Option<Route> {
    match kind {
        SUBMIT_KIND => Some(Route { path: |_| SUBMIT_PATH.to_string(), on_sent: submitted, on_rejected: refused }),
        ANSWER_KIND => Some(Route { path: answer_path, on_sent: answered, on_rejected: answer_refused }),
        super::wire::STATUS_CHANGE_KIND => Some(super::agency::route()),
        _ => None,
    }
}

/// What a submission is signed over.
pub(crate) struct SubmissionContent {
    pub procedure_code: String,
    pub anonymous: bool,
    pub values: std::collections::BTreeMap<String, FieldValue>,
    pub attachments: std::collections::BTreeMap<String, Vec<String>>,
}

/// What a submission is signed over, read before the resident is asked to sign (outside the
/// submission's transaction: the presence prompt must not hold the database).
pub(crate) fn content(tx: &Transaction<'_>, draft_id: &str) -> Result<SubmissionContent> {
    let (procedure_code, anonymous, state): (String, bool, String) = tx
        .query_row(
            "SELECT procedure_code, anonymous, state FROM drafts WHERE id = ?1 AND deleted_at IS NULL",
            [draft_id],
            |r| Ok((r.get(0)?, r.get::<_, i64>(1)? != 0, r.get(2)?)),
        )
        .map_err(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Error::NotFound { what: "draft" },
            e => Error::db("reading a draft to sign")(e),
        })?;
    // Never ask the resident to sign what cannot be submitted.
    if !matches!(state.as_str(), "editing" | "rejected") {
        return Err(store::locked(if state == "submitting" { DraftState::Submitting } else { DraftState::Submitted }));
    }
    Ok(SubmissionContent {
        procedure_code,
        anonymous,
        values: store::values_in(tx, draft_id)?,
        attachments: super::attachments::for_submission(tx, draft_id)?,
    })
}

/// Freezes the draft and queues its submission, in one transaction: either both happen or
/// neither. Returns the command's idempotency key.
#[cfg(test)]
pub(crate) fn submit(tx: &Transaction<'_>, draft_id: &str) -> Result<String> {
    submit_signed(tx, draft_id, None)
}

/// [`submit`] with the resident's signature over the content, made just before; if the draft
/// changed since (another device's edit merged), nothing is queued and the caller signs again.
pub(crate) fn submit_signed(
    tx: &Transaction<'_>,
    draft_id: &str,
    signed: Option<&crate::signing::dossier::SignedDossier>,
) -> Result<String> {
    let (procedure_code, state, anonymous): (String, String, bool) = tx
        .query_row(
            "SELECT procedure_code, state, anonymous FROM drafts WHERE id = ?1 AND deleted_at IS NULL",
            [draft_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? != 0)),
        )
        .map_err(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Error::NotFound { what: "draft" },
            e => Error::db("submitting a draft")(e),
        })?;
    let state = match state.as_str() {
        "editing" => DraftState::Editing,
        "rejected" => DraftState::Rejected,
        "submitting" => DraftState::Submitting,
        _ => DraftState::Submitted,
    };
    if !state.is_editable() {
        return Err(store::locked(state));
    }
    let values = store::values_in(tx, draft_id)?;
    let attachments = super::attachments::for_submission(tx, draft_id)?;
    if signed.is_some_and(|s| !s.covers(&values, &attachments)) {
        return Err(Error::Signing { problem: crate::signing::SigningProblem::ContentChanged });
    }
    let payload = serde_json::to_value(SubmitCase {
        draft_id: draft_id.to_string(),
        procedure_code,
        values,
        attachments,
        anonymous,
        dossier_signature: signed.filter(|_| !anonymous).map(|s| s.statement.clone()),
    })
        .map_err(|e| Error::BadData(e.to_string()))?;
    // The files first: the outbox sends in order, and the case waits for its uploads.
    super::attachments::enqueue_uploads(tx, draft_id)?;
    super::backup::forget_pending(tx, draft_id)?;
    let key = outbox::enqueue(tx, SUBMIT_KIND, draft_id, &payload)?;
    tx.execute("UPDATE drafts SET rejection = NULL WHERE id = ?1", [draft_id])
        .map_err(Error::db("submitting a draft"))?;
    store::set_state(tx, draft_id, DraftState::Submitting)?;
    Ok(key)
}

fn submitted(tx: &Transaction<'_>, draft_id: &str, result: &serde_json::Value) -> Result<()> {
    let receipt: CaseReceipt =
        serde_json::from_value(result.clone()).map_err(|e| Error::BadData(format!("case receipt: {e}")))?;
    tx.execute(
        "UPDATE drafts SET state = 'submitted', case_id = ?2, case_number = ?3, updated_at = ?4 WHERE id = ?1",
        params![draft_id, receipt.case_id, receipt.case_number, crate::store::now_millis()],
    )
    .map_err(Error::db("recording a case number"))?;
    Ok(())
}

fn refused(tx: &Transaction<'_>, draft_id: &str, rejection: &Rejection) -> Result<()> {
    let json = serde_json::to_string(rejection).map_err(|e| Error::BadData(e.to_string()))?;
    tx.execute("UPDATE drafts SET rejection = ?2 WHERE id = ?1", params![draft_id, json])
        .map_err(Error::db("recording a refusal"))?;
    store::set_state(tx, draft_id, DraftState::Rejected)
}

/// Queues the resident's answer to "more information needed" (subject: the case id) and returns
/// its idempotency key. The caller checked the values against the form and the request.
pub(crate) fn answer(tx: &Transaction<'_>, case_id: &str, values: std::collections::BTreeMap<String, FieldValue>) -> Result<String> {
    let payload = serde_json::to_value(AnswerCase { values }).map_err(|e| Error::BadData(e.to_string()))?;
    outbox::enqueue(tx, ANSWER_KIND, case_id, &payload)
}

/// The server answers with the case's full view: show it at once. Its `feed_seq` stays, so the
/// account feed's own `case.status` (the same or newer) still applies over it.
fn answered(tx: &Transaction<'_>, case_id: &str, result: &serde_json::Value) -> Result<()> {
    let Ok(case) = serde_json::from_value::<CaseView>(result.clone()) else {
        return Ok(()); // the feed brings it anyway
    };
    let body = serde_json::to_string(&case).map_err(|e| Error::BadData(e.to_string()))?;
    tx.execute("UPDATE cases SET status = ?2, body = ?3 WHERE id = ?1", params![case_id, case.status, body])
        .map_err(Error::db("recording an answer"))?;
    Ok(())
}

/// A refused answer keeps its reason on the outbox item (the screen shows it); the case itself
/// is unchanged and the resident may answer again.
fn answer_refused(_tx: &Transaction<'_>, _case_id: &str, _rejection: &Rejection) -> Result<()> {
    Ok(())
}
