//! The case submission wire format (`POST /v1/cases` with an `Idempotency-Key`), shared by the
//! core and the server.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::validation::FieldValue;

pub const SUBMIT_PATH: &str = "v1/cases";
/// The outbox kind of a submission.
pub const SUBMIT_KIND: &str = "case.submit";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitCase {
    /// The draft on the phone (one draft makes at most one case per idempotency key).
    pub draft_id: String,
    pub procedure_code: String,
    pub values: BTreeMap<String, FieldValue>,
    /// Attachment rule id -> SHA-256 (hex) of each attached file, uploaded before the command.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attachments: BTreeMap<String, Vec<String>>,
    /// A hotline report sent anonymously: the agency never sees who sent it (reports only).
    #[serde(default, skip_serializing_if = "is_false")]
    pub anonymous: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The outbox kind of a resident's answer to "more information needed".
pub const ANSWER_KIND: &str = "case.answer";

/// Where an answer goes: `v1/cases/{case_id}/answer`.
pub fn answer_path(case_id: &str) -> String {
    format!("v1/cases/{case_id}/answer")
}

/// The resident's answer (`POST /v1/cases/{id}/answer` with an `Idempotency-Key`): new values of
/// the fields the agency asked for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerCase {
    pub values: BTreeMap<String, FieldValue>,
}

/// The server's answer to a submission (also replayed for every retry of the same key).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaseReceipt {
    pub case_id: String,
    /// Human-readable, unique across server instances: `HCM-2026-000123`.
    pub case_number: String,
    pub status: String,
    pub received_at_ms: i64,
    /// The legal due date (`YYYY-MM-DD`) from the procedure's processing time.
    pub due_date: String,
}

/// The error code of a submission whose values do not pass the server's validation; the body's
/// `details` holds the field issues.
pub const VALIDATION_FAILED: &str = "validation_failed";
