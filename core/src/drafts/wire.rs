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
    /// The resident's signature over this content (statement 0x32, base64url), made by the core
    /// at submit time; absent for anonymous reports (docs/signatures.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dossier_signature: Option<String>,
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

// ---- The agency side (`/v1/agency/cases…`, see server/src/cases/agency.rs) ----

/// The outbox kind of an agency's status command (subject: the case id).
pub const STATUS_CHANGE_KIND: &str = "case.status_change";
/// An agency's list of incoming cases.
pub const AGENCY_CASES_PATH: &str = "v1/agency/cases";

/// One case as an agency sees it: `v1/agency/cases/{case_id}`.
pub fn agency_case_path(case_id: &str) -> String {
    format!("{AGENCY_CASES_PATH}/{case_id}")
}

/// One file of an agency's case: `v1/agency/cases/{case_id}/attachments/{sha256}`.
pub fn agency_attachment_path(case_id: &str, sha256: &str) -> String {
    format!("{AGENCY_CASES_PATH}/{case_id}/attachments/{sha256}")
}

/// A file a case was submitted with, as its agency sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgencyAttachment {
    /// The form's attachment rule the file was given for.
    pub field: String,
    pub sha256: String,
    pub media_type: String,
    pub size: u64,
}

/// Where an agency's status command goes: `v1/agency/cases/{case_id}/status`.
pub fn status_change_path(case_id: &str) -> String {
    format!("{AGENCY_CASES_PATH}/{case_id}/status")
}

/// One row of `GET /v1/agency/cases`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgencyCaseSummary {
    pub case_id: String,
    pub case_number: String,
    pub procedure_code: String,
    pub status: String,
    pub received_at_ms: i64,
    /// The legal due date, `YYYY-MM-DD`.
    pub due_date: String,
    /// Past its due date and not finished.
    #[serde(default)]
    pub overdue: bool,
}

/// A page of `GET /v1/agency/cases`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgencyCaseList {
    pub cases: Vec<AgencyCaseSummary>,
    /// Pass back as `cursor` for the next page; `None` on the last one.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// Who sent a case, as its agency sees them (never for an anonymous report).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgencyResident {
    pub display_name: String,
    pub national_id_masked: String,
}

/// `GET /v1/agency/cases/{id}`: the resident's view of the case (without the phone's draft id)
/// plus what the agency works with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgencyCaseView {
    pub case_id: String,
    pub case_number: String,
    pub procedure_code: String,
    pub status: String,
    pub received_at_ms: i64,
    pub due_date: String,
    #[serde(default)]
    pub timeline: Vec<super::changes::TimelineEntry>,
    #[serde(default)]
    pub requested_fields: Vec<String>,
    #[serde(default)]
    pub result_document: Option<String>,
    pub agency_code: String,
    #[serde(default)]
    pub overdue: bool,
    #[serde(default)]
    pub anonymous: bool,
    #[serde(default)]
    pub values: BTreeMap<String, FieldValue>,
    /// `None` for an anonymous report.
    #[serde(default)]
    pub resident: Option<AgencyResident>,
    /// The files the case was submitted with.
    #[serde(default)]
    pub attachments: Vec<AgencyAttachment>,
}

/// `POST /v1/agency/cases/{id}/status` (with an `Idempotency-Key`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusChange {
    /// `processing`, `needs_information`, `done` or `rejected`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requested_fields: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_document: Option<String>,
}
