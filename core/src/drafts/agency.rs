//! The agency side of cases, from the same app: agency staff log in like anyone else and, with
//! a role `agency:<CODE>`, list their agency's incoming cases, open one and move it through its
//! statuses. Reads are plain authenticated GETs; a status change is a command in the one
//! outbox (`case.status_change`, subject: the case id), so it is done exactly once however
//! often it is sent.

use crate::core::Core;
use crate::error::{Error, LoginRequiredReason, Result};
use crate::outbox::{self, OutboxState, Rejection, Route};
use crate::sync::client::Method;

use super::wire::{
    agency_case_path, status_change_path, AgencyCaseList, AgencyCaseSummary, AgencyCaseView, StatusChange,
    AGENCY_CASES_PATH, STATUS_CHANGE_KIND,
};

/// How the outbox sends a status change. Nothing local changes with the answer: the agency
/// reads the case from the server again.
pub(crate) fn route() -> Route {
    Route { path: status_change_path, on_sent: |_, _, _| Ok(()), on_rejected: |_, _, _| Ok(()) }
}

/// Case ids are the server's (UUIDs); anything else would change the request's path.
fn check_case_id(id: &str) -> Result<()> {
    let ok = !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::NotFound { what: "case" })
    }
}

/// 403 and 404 from the agency endpoints as typed errors.
fn typed(e: Error) -> Error {
    match e {
        Error::ServerRejected { status: 404, .. } => Error::NotFound { what: "case" },
        Error::ServerRejected { status: 403, code, .. } => Error::Forbidden { code },
        e => e,
    }
}

/// A refused status change as a typed error (the outbox keeps the code, not the HTTP status).
fn refused(rejection: Rejection) -> Error {
    match rejection.code.as_str() {
        "case_not_found" => Error::NotFound { what: "case" },
        "forbidden" => Error::Forbidden { code: rejection.code },
        code => Error::ServerRejected {
            status: if code == outbox::INVALID_TRANSITION { 409 } else { 422 },
            code: rejection.code,
            message: rejection.message,
            details: rejection.details,
        },
    }
}

/// The agency side of cases (see the module documentation).
#[derive(Clone)]
pub struct AgencyService {
    pub(crate) core: Core,
}

impl AgencyService {
    /// The agency's cases, newest first, optionally of one status (`received`, `processing`,
    /// `needs_information`, `information_provided`, `done`, `rejected`); `limit` 1 to 100.
    pub async fn list_cases(&self, status: Option<&str>, limit: u32) -> Result<Vec<AgencyCaseSummary>> {
        let mut path = format!("{AGENCY_CASES_PATH}?limit={limit}");
        if let Some(status) = status {
            let encoded: String = url::form_urlencoded::byte_serialize(status.as_bytes()).collect();
            path.push_str(&format!("&status={encoded}"));
        }
        let page: AgencyCaseList =
            self.core.session().send_authorized(Method::GET, &path, None, None).await.map_err(typed)?;
        Ok(page.cases)
    }

    /// One case with its values, timeline and who sent it (unless anonymous).
    pub async fn get_case(&self, id: &str) -> Result<AgencyCaseView> {
        check_case_id(id)?;
        self.core.session().send_authorized(Method::GET, &agency_case_path(id), None, None).await.map_err(typed)
    }

    /// Moves a case to `status` (`processing`, `needs_information` with a message and the
    /// fields to fix, `done` with an optional result document, `rejected` with a reason): queued
    /// in the outbox, then sent at once. Returns the case as it is now. Offline, the change
    /// stays queued and `Error::Offline` says so; it is sent with the next drain, once.
    pub async fn set_status(
        &self,
        id: &str,
        status: &str,
        message: Option<&str>,
        requested_fields: &[String],
        result_document: Option<&str>,
    ) -> Result<AgencyCaseView> {
        check_case_id(id)?;
        let command = StatusChange {
            status: status.to_string(),
            message: message.map(str::to_string),
            requested_fields: requested_fields.to_vec(),
            result_document: result_document.map(str::to_string),
        };
        let payload = serde_json::to_value(&command).map_err(|e| Error::BadData(e.to_string()))?;
        let store = self.core.store();
        let key = store.write("queueing a status change", |tx| outbox::enqueue(tx, STATUS_CHANGE_KIND, id, &payload))?;
        let report = self.core.retry_outbox_now().await?;
        let item = outbox::item(store, &key)?.ok_or(Error::NotFound { what: "outbox command" })?;
        match item.state {
            OutboxState::Sent => self.get_case(id).await,
            OutboxState::Rejected => {
                Err(refused(item.rejection.unwrap_or(Rejection { code: "rejected".into(), message: String::new(), details: Default::default() })))
            }
            OutboxState::Waiting | OutboxState::Sending if report.login_required => {
                Err(Error::LoginRequired { reason: LoginRequiredReason::Revoked })
            }
            OutboxState::Waiting | OutboxState::Sending => {
                Err(Error::Offline(format!("the status change waits in the outbox ({} attempts)", item.attempts)))
            }
        }
    }
}
