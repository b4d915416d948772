//! The agency side of cases, for staff logged in with a role `agency:<CODE>`: list incoming
//! cases, open one, move it through its statuses (a command in the one outbox, sent once).

use congdan_core::drafts::wire::{self, AgencyAttachment, AgencyCaseList, AgencyCaseSummary, AgencyResident};
use congdan_core::AgencyService;

use congdan_core::drafts::changes::TimelineEntry;

use crate::drafts::DraftField;
use crate::error::CongdanError;

#[uniffi::remote(Record)]
pub struct AgencyCaseSummary {
    pub case_id: String,
    pub case_number: String,
    pub procedure_code: String,
    pub status: String,
    pub received_at_ms: i64,
    pub due_date: String,
    pub overdue: bool,
}

/// A page of the agency's cases; pass `next_cursor` back for the next (`null` on the last).
#[uniffi::remote(Record)]
pub struct AgencyCaseList {
    pub cases: Vec<AgencyCaseSummary>,
    pub next_cursor: Option<String>,
}

/// A file a case was submitted with: the form's attachment rule, hash, type and size.
#[uniffi::remote(Record)]
pub struct AgencyAttachment {
    pub field: String,
    pub sha256: String,
    pub media_type: String,
    pub size: u64,
}

#[uniffi::remote(Record)]
pub struct AgencyResident {
    pub display_name: String,
    pub national_id_masked: String,
}

/// A case as its agency sees it: values, timeline, and who sent it (`null` when anonymous).
#[derive(uniffi::Record)]
pub struct AgencyCaseView {
    pub case_id: String,
    pub case_number: String,
    pub procedure_code: String,
    pub status: String,
    pub received_at_ms: i64,
    pub due_date: String,
    pub timeline: Vec<TimelineEntry>,
    pub requested_fields: Vec<String>,
    pub result_document: Option<String>,
    pub agency_code: String,
    pub overdue: bool,
    pub anonymous: bool,
    pub fields: Vec<DraftField>,
    pub resident: Option<AgencyResident>,
    pub attachments: Vec<AgencyAttachment>,
}

impl From<wire::AgencyCaseView> for AgencyCaseView {
    fn from(v: wire::AgencyCaseView) -> Self {
        AgencyCaseView {
            case_id: v.case_id,
            case_number: v.case_number,
            procedure_code: v.procedure_code,
            status: v.status,
            received_at_ms: v.received_at_ms,
            due_date: v.due_date,
            timeline: v.timeline,
            requested_fields: v.requested_fields,
            result_document: v.result_document,
            agency_code: v.agency_code,
            overdue: v.overdue,
            anonymous: v.anonymous,
            fields: v.values.into_iter().map(|(field_id, value)| DraftField { field_id, value }).collect(),
            resident: v.resident,
            attachments: v.attachments,
        }
    }
}

/// Agency staff's cases. Throws `Forbidden` without an agency role and `NotFound` for a case of
/// another agency (exactly like one that does not exist).
#[derive(uniffi::Object)]
pub struct AgencyApi {
    pub(crate) inner: AgencyService,
}

#[uniffi::export(async_runtime = "tokio")]
impl AgencyApi {
    /// One page of the agency's cases, newest first, optionally of one status; `limit` 1 to
    /// 100; `cursor` is the previous page's `next_cursor` (`null` for the first page).
    pub async fn list_cases(&self, status: Option<String>, limit: u32, cursor: Option<String>) -> Result<AgencyCaseList, CongdanError> {
        Ok(self.inner.list_cases(status.as_deref(), limit, cursor.as_deref()).await?)
    }

    pub async fn get_case(&self, case_id: String) -> Result<AgencyCaseView, CongdanError> {
        Ok(self.inner.get_case(&case_id).await?.into())
    }

    /// Downloads one of the case's `attachments` (by its SHA-256) to the file `dest_path`, in
    /// pieces, resuming an interrupted download; the file appears only whole and with the right
    /// hash. Returns its size. Throws `NotFound` for a file the case does not have.
    pub async fn download_attachment(&self, case_id: String, sha256: String, dest_path: String) -> Result<u64, CongdanError> {
        Ok(self.inner.download_attachment(&case_id, &sha256, std::path::Path::new(&dest_path)).await?)
    }

    /// Moves a case to `status` (`processing`, `needs_information` with a message and the
    /// fields to fix, `done` with an optional result, `rejected` with a reason); queued in the
    /// outbox and sent at once, exactly once. Returns the case as it is now; throws `Offline`
    /// when it stays queued, `Rejected` (`invalid_transition`, `unknown_field`, …) when refused.
    pub async fn set_status(
        &self,
        case_id: String,
        status: String,
        message: Option<String>,
        requested_fields: Vec<String>,
        result_document: Option<String>,
    ) -> Result<AgencyCaseView, CongdanError> {
        let view = self
            .inner
            .set_status(&case_id, &status, message.as_deref(), &requested_fields, result_document.as_deref())
            .await?;
        Ok(view.into())
    }
}
