//! The agency side of cases, from the same app: agency staff log in like anyone else and, with
//! a role `agency:<CODE>`, list their agency's incoming cases page by page, open one, download
//! the files it was submitted with, and move it through its statuses. Reads are plain
//! authenticated GETs (files in `Range` pieces, checked by hash); a status change is a command in the one
//! outbox (`case.status_change`, subject: the case id), so it is done exactly once however
//! often it is sent.

use crate::core::Core;
use crate::error::{Error, LoginRequiredReason, Result};
use crate::outbox::{self, OutboxState, Rejection, Route};
use crate::sync::client::Method;

use std::io::Write;
use std::path::{Path, PathBuf};

use super::attachments::is_sha256_hex;
use super::wire::{
    agency_attachment_path, agency_case_path, status_change_path, AgencyCaseList, AgencyCaseView, StatusChange,
    AGENCY_CASES_PATH, STATUS_CHANGE_KIND,
};

/// How the outbox sends a status change. Nothing local changes with the answer: the agency
/// reads the case from the server again.
pub(crate) fn route() -> Route {
    Route { path: status_change_path, on_sent: |_, _, _| Ok(()), on_rejected: |_, _, _| Ok(()) }
}

/// The most one request of a download asks for (well under the client's response limit).
pub const DOWNLOAD_PIECE_BYTES: u64 = 1024 * 1024;

/// Where a download collects its bytes before they are checked: `<dest>.part`.
fn part_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".part");
    dest.with_file_name(name)
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
        Error::ServerRejected { status: 404, code, .. } if code == "blob_not_found" => Error::NotFound { what: "attachment" },
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
    /// One page of the agency's cases, newest first, optionally of one status (`received`,
    /// `processing`, `needs_information`, `information_provided`, `done`, `rejected`); `limit`
    /// 1 to 100. Pass the page's `next_cursor` back as `cursor` for the next one (`None` on the
    /// last page).
    pub async fn list_cases(&self, status: Option<&str>, limit: u32, cursor: Option<&str>) -> Result<AgencyCaseList> {
        let path = {
            // The serializer is not `Send`: built and finished before the request awaits.
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            query.append_pair("limit", &limit.to_string());
            if let Some(status) = status {
                query.append_pair("status", status);
            }
            if let Some(cursor) = cursor.filter(|c| !c.is_empty()) {
                query.append_pair("cursor", cursor);
            }
            format!("{AGENCY_CASES_PATH}?{}", query.finish())
        };
        self.core.session().send_authorized(Method::GET, &path, None, None).await.map_err(typed)
    }

    /// One case with its values, timeline and who sent it (unless anonymous).
    pub async fn get_case(&self, id: &str) -> Result<AgencyCaseView> {
        check_case_id(id)?;
        self.core.session().send_authorized(Method::GET, &agency_case_path(id), None, None).await.map_err(typed)
    }

    /// Downloads one file of the case (named by its SHA-256 in the case's `attachments`) to
    /// `dest`, in `Range` pieces of [`DOWNLOAD_PIECE_BYTES`] so a phone never holds the whole
    /// file in memory. The bytes go to `<dest>.part` first; an interrupted download goes on
    /// from there the next time. The file appears at `dest` only whole and with the right
    /// SHA-256 (else `BadData`, and the part is thrown away). Returns its size.
    pub async fn download_attachment(&self, case_id: &str, sha256: &str, dest: &Path) -> Result<u64> {
        check_case_id(case_id)?;
        if !is_sha256_hex(sha256) {
            return Err(Error::NotFound { what: "attachment" });
        }
        let case = self.get_case(case_id).await?;
        let file = case.attachments.iter().find(|a| a.sha256 == sha256).ok_or(Error::NotFound { what: "attachment" })?;
        let part = part_path(dest);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::DataDirectory { path, source }
        };
        // Whatever an earlier attempt left: hashed again, kept only if it can be a beginning.
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        let mut have = match std::fs::read(&part) {
            Ok(bytes) if (bytes.len() as u64) < file.size => {
                digest.update(&bytes);
                bytes.len() as u64
            }
            _ => 0,
        };
        let mut out = std::fs::OpenOptions::new().create(true).append(true).open(&part).map_err(io(&part))?;
        if have == 0 {
            out.set_len(0).map_err(io(&part))?;
        }
        let path = agency_attachment_path(case_id, sha256);
        while have < file.size {
            let last = (have + DOWNLOAD_PIECE_BYTES).min(file.size) - 1;
            let range = [("range", format!("bytes={have}-{last}"))];
            let piece = self
                .core
                .session()
                .send_authorized_for_bytes(Method::GET, &path, None, None, &range)
                .await
                .map_err(typed)?;
            if piece.is_empty() || piece.len() as u64 > last + 1 - have {
                let _ = std::fs::remove_file(&part);
                return Err(Error::BadData(format!("the server sent {} bytes for bytes {have}-{last}", piece.len())));
            }
            digest.update(&piece);
            out.write_all(&piece).map_err(io(&part))?;
            have += piece.len() as u64;
        }
        out.sync_all().map_err(io(&part))?;
        drop(out);
        if crate::crypto::hex(digest.finish().as_ref()) != sha256 {
            let _ = std::fs::remove_file(&part);
            return Err(Error::BadData("the downloaded file does not match its SHA-256; removed".into()));
        }
        std::fs::rename(&part, dest).map_err(io(dest))?;
        Ok(file.size)
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
