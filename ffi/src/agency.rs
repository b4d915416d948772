//! The agency side of cases, for staff logged in with a role `agency:<CODE>`: list incoming
//! cases, open one, move it through its statuses (a command in the one outbox, sent once).

use congdan_core::drafts::wire::{self, AgencyCaseSummary, AgencyResident};
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
    /// The agency's cases, newest first, optionally of one status; `limit` 1 to 100.
    pub async fn list_cases(&self, status: Option<String>, limit: u32) -> Result<Vec<AgencyCaseSummary>, CongdanError> {
        Ok(self.inner.list_cases(status.as_deref(), limit).await?)
    }

    pub async fn get_case(&self, case_id: String) -> Result<AgencyCaseView, CongdanError> {
        Ok(self.inner.get_case(&case_id).await?.into())
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
