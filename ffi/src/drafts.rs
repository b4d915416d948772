//! The drafts capability: offline forms with autosave and live checks, submission through the
//! outbox, and the resident's cases.

use congdan_core::drafts::changes::{CaseView, TimelineEntry};
use congdan_core::drafts::store::{DraftState, DraftSummary};
use congdan_core::drafts::validation::{FieldIssue, FieldValue, IssueCode};
use congdan_core::outbox::{OutboxItem, OutboxState};
use congdan_core::DraftsService;

use crate::error::CongdanError;

#[uniffi::remote(Enum)]
pub enum FieldValue {
    Text(String),
    Number(f64),
    Date(String),
    Choice(Vec<String>),
    Location { lat: f64, lon: f64 },
}

#[uniffi::remote(Enum)]
pub enum IssueCode {
    Required,
    WrongType,
    TooShort,
    TooLong,
    BelowMin,
    AboveMax,
    NotInteger,
    InvalidDate,
    DateTooEarly,
    DateTooLate,
    NotAnOption,
    OneChoiceOnly,
    InvalidPhone,
    InvalidNationalId,
    InvalidLocation,
    UnknownField,
    AttachmentMissing,
    TooManyAttachments,
}

#[uniffi::remote(Record)]
pub struct FieldIssue {
    pub field_id: String,
    pub code: IssueCode,
    pub message: congdan_core::catalog::LocalizedText,
}

#[uniffi::remote(Enum)]
pub enum DraftState {
    Editing,
    Submitting,
    Submitted,
    Rejected,
}

#[uniffi::remote(Record)]
pub struct DraftSummary {
    pub id: String,
    pub procedure_code: String,
    pub title: String,
    pub state: DraftState,
    pub case_number: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// One field's value in a draft.
#[derive(uniffi::Record)]
pub struct DraftField {
    pub field_id: String,
    pub value: FieldValue,
}

/// A draft with its values, and the server's refusal of its last submission if any.
#[derive(uniffi::Record)]
pub struct DraftDetail {
    pub summary: DraftSummary,
    pub fields: Vec<DraftField>,
    pub rejection_code: Option<String>,
    /// The field issues the server found, when it refused the values.
    pub rejection_issues: Vec<FieldIssue>,
}

#[uniffi::remote(Enum)]
pub enum OutboxState {
    Waiting,
    Sending,
    Sent,
    Rejected,
}

/// A command in the outbox, as a screen shows it ("waiting to send", "sent", "refused").
#[derive(uniffi::Record)]
pub struct OutboxEntry {
    pub idempotency_key: String,
    pub kind: String,
    pub state: OutboxState,
    pub attempts: u32,
    pub rejection_code: Option<String>,
    pub updated_at_ms: i64,
}

impl From<OutboxItem> for OutboxEntry {
    fn from(item: OutboxItem) -> Self {
        OutboxEntry {
            idempotency_key: item.idempotency_key,
            kind: item.kind,
            state: item.state,
            attempts: item.attempts,
            rejection_code: item.rejection.map(|r| r.code),
            updated_at_ms: item.updated_at_ms,
        }
    }
}

#[uniffi::remote(Record)]
pub struct TimelineEntry {
    pub status: String,
    pub at_ms: i64,
    pub message: Option<String>,
}

#[uniffi::remote(Record)]
pub struct CaseView {
    pub case_id: String,
    pub case_number: String,
    pub procedure_code: String,
    pub draft_id: Option<String>,
    pub status: String,
    pub received_at_ms: i64,
    pub due_date: String,
    pub timeline: Vec<TimelineEntry>,
    pub requested_fields: Vec<String>,
    pub result_document: Option<String>,
}

/// Case drafts. Every call works offline; `submit` queues the draft in the outbox, and the core's
/// sender delivers it exactly once when the network allows.
#[derive(uniffi::Object)]
pub struct DraftsApi {
    pub(crate) inner: DraftsService,
}

#[uniffi::export]
impl DraftsApi {
    pub fn create(&self, procedure_code: String, title: Option<String>) -> Result<DraftSummary, CongdanError> {
        Ok(self.inner.create(&procedure_code, title.as_deref())?)
    }

    pub fn list(&self) -> Result<Vec<DraftSummary>, CongdanError> {
        Ok(self.inner.list()?)
    }

    pub fn get(&self, id: String) -> Result<Option<DraftDetail>, CongdanError> {
        Ok(self.inner.get(&id)?.map(|d| {
            let issues = d
                .rejection
                .as_ref()
                .and_then(|r| serde_json::from_value::<Vec<FieldIssue>>(r.details.get("issues")?.clone()).ok())
                .unwrap_or_default();
            DraftDetail {
                summary: d.summary,
                fields: d.values.into_iter().map(|(field_id, value)| DraftField { field_id, value }).collect(),
                rejection_code: d.rejection.map(|r| r.code),
                rejection_issues: issues,
            }
        }))
    }

    /// Saves one field at once (autosave) and returns its issues for live display.
    pub fn set_field(&self, id: String, field_id: String, value: FieldValue) -> Result<Vec<FieldIssue>, CongdanError> {
        Ok(self.inner.set_field(&id, &field_id, value)?)
    }

    pub fn clear_field(&self, id: String, field_id: String) -> Result<(), CongdanError> {
        Ok(self.inner.clear_field(&id, &field_id)?)
    }

    pub fn validate(&self, id: String) -> Result<Vec<FieldIssue>, CongdanError> {
        Ok(self.inner.validate(&id)?)
    }

    pub fn rename(&self, id: String, title: String) -> Result<(), CongdanError> {
        Ok(self.inner.rename(&id, &title)?)
    }

    pub fn delete(&self, id: String) -> Result<(), CongdanError> {
        Ok(self.inner.delete(&id)?)
    }

    pub fn undelete(&self, id: String) -> Result<(), CongdanError> {
        Ok(self.inner.undelete(&id)?)
    }

    /// Queues the draft for submission; returns the command's idempotency key. A draft with
    /// problems throws `InvalidDraft` with the issues.
    pub fn submit(&self, id: String) -> Result<String, CongdanError> {
        Ok(self.inner.submit(&id)?)
    }

    pub fn outbox(&self, id: String) -> Result<Vec<OutboxEntry>, CongdanError> {
        Ok(self.inner.outbox(&id)?.into_iter().map(OutboxEntry::from).collect())
    }

    pub fn cases(&self) -> Result<Vec<CaseView>, CongdanError> {
        Ok(self.inner.cases()?)
    }

    /// Sends a hotline report anonymously (reports only; the resident still follows the case).
    pub fn set_anonymous(&self, id: String, anonymous: bool) -> Result<(), CongdanError> {
        Ok(self.inner.set_anonymous(&id, anonymous)?)
    }

    /// Answers "more information needed" on a case with new values of the fields the agency
    /// asked for (`CaseView.requested_fields`); queued and sent exactly once. Returns the
    /// command's idempotency key. Throws `InvalidDraft` for bad or unrequested fields and
    /// `DraftLocked` when no information is asked for.
    pub fn answer(&self, case_id: String, fields: Vec<DraftField>) -> Result<String, CongdanError> {
        let values = fields.into_iter().map(|f| (f.field_id, f.value)).collect();
        Ok(self.inner.answer(&case_id, values)?)
    }
}
