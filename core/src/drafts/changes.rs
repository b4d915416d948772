//! Changes of the account feed owned by the drafts capability: `case.status`, the case as the
//! server sees it (number, status, timeline, due date). Applied in the feed page's transaction;
//! an older change never overwrites a newer one.

use rusqlite::{params, Transaction};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::sync::wire::Change;

/// One step of a case's life.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// `received`, `processing`, `needs_information`, `done`, `rejected`.
    pub status: String,
    pub at_ms: i64,
    /// The agency's message (what information is needed, why it was rejected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A case as the phone keeps it. Statuses: `received`, `processing`, `needs_information`,
/// `information_provided`, `done`, `rejected`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaseView {
    pub case_id: String,
    pub case_number: String,
    pub procedure_code: String,
    #[serde(default)]
    pub draft_id: Option<String>,
    pub status: String,
    pub received_at_ms: i64,
    /// The legal due date, `YYYY-MM-DD`.
    pub due_date: String,
    #[serde(default)]
    pub timeline: Vec<TimelineEntry>,
    /// While the status is `needs_information`: the fields the agency asks the resident to fix.
    #[serde(default)]
    pub requested_fields: Vec<String>,
    /// Once done: the agency's result (a short text or a link to the document).
    #[serde(default)]
    pub result_document: Option<String>,
}

pub(crate) fn apply(tx: &Transaction<'_>, change: &Change) -> Result<()> {
    match change.kind.as_str() {
        "case.status" => {
            let case: CaseView =
                serde_json::from_value(change.data.clone()).map_err(|e| Error::BadData(format!("case.status: {e}")))?;
            let body = serde_json::to_string(&case).map_err(|e| Error::BadData(e.to_string()))?;
            tx.execute(
                "INSERT INTO cases(id, case_number, procedure_code, draft_id, status, due_date, received_at, body, feed_seq) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
                 ON CONFLICT(id) DO UPDATE SET status = excluded.status, due_date = excluded.due_date, \
                     body = excluded.body, feed_seq = excluded.feed_seq WHERE excluded.feed_seq > cases.feed_seq",
                params![
                    case.case_id, case.case_number, case.procedure_code, case.draft_id, case.status, case.due_date,
                    case.received_at_ms, body, change.seq as i64
                ],
            )
            .map_err(Error::db("applying a case status"))?;
            // The draft learns its case number even if the submission's answer was lost, and a
            // copy of it on another device stops being editable: one draft, one case.
            if let Some(draft_id) = &case.draft_id {
                tx.execute(
                    "UPDATE drafts SET state = 'submitted', case_id = ?2, case_number = ?3 \
                     WHERE id = ?1",
                    params![draft_id, case.case_id, case.case_number],
                )
                .map_err(Error::db("applying a case status"))?;
            }
            Ok(())
        }
        other => Err(Error::BadData(format!("unknown change kind {other}"))),
    }
}

/// The resident's cases, newest first.
pub fn list(store: &crate::store::Store) -> Result<Vec<CaseView>> {
    store.read("listing cases", |c| {
        let mut stmt = c.prepare_cached("SELECT body FROM cases ORDER BY received_at DESC, id")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for body in rows {
            if let Ok(case) = serde_json::from_str(&body?) {
                out.push(case);
            }
        }
        Ok(out)
    })
}
