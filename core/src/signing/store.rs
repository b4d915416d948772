//! Signature requests kept on the phone (table `signature_requests`, migration in
//! core/src/store/migrations.rs): what the agency asked, as the account feed brought it, plus what
//! this phone did with it (the document fetched and checked, a decision queued, a refusal).
//! Every row belongs to the account that was logged in when it arrived; queries only see the
//! current account's.

use rusqlite::{params, OptionalExtension, Row, Transaction};

use super::api::{DocumentRef, RequestState, SignatureRequestView};
use super::wire::Intent;
use crate::error::{Error, Result};
use crate::store::Store;

/// Only rows of the account logged in now.
const FOR_THIS_ACCOUNT: &str = "account_id IS (SELECT account_id FROM session WHERE id = 1)";

/// A request as the phone keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRequest {
    pub view: SignatureRequestView,
    /// The account the request is addressed to.
    pub account_id: String,
    /// The document's file name under the data directory once fetched and its SHA-256 checked.
    pub document_file: Option<String>,
    /// The agency's reason for a cancellation, or the resident's for a decline, from the feed.
    pub state_reason: Option<String>,
    /// This phone's decision, once signed and queued (it may still be waiting for a network).
    pub local_decision: Option<Intent>,
    pub decline_reason: Option<String>,
    /// Unix seconds.
    pub decided_at: Option<u64>,
    /// The idempotency key of the queued `signature.decision` command.
    pub decision_key: Option<String>,
    /// The server's refusal code of this phone's decision (`request_cancelled`, …).
    pub refusal_code: Option<String>,
}

const COLUMNS: &str = "id, account_id, agency_code, title, summary, purpose, document_sha256, document_size, \
    content_type, document_link, created_at, expires_at, state, document_file, state_reason, local_decision, \
    decline_reason, decided_at, decision_key, refusal_code";

fn from_row(r: &Row<'_>) -> rusqlite::Result<StoredRequest> {
    let state: String = r.get(12)?;
    let decision: Option<String> = r.get(15)?;
    Ok(StoredRequest {
        view: SignatureRequestView {
            id: r.get(0)?,
            agency_code: r.get(2)?,
            title: r.get(3)?,
            summary: r.get(4)?,
            purpose: r.get(5)?,
            document: DocumentRef {
                sha256: r.get(6)?,
                size: r.get::<_, i64>(7)?.max(0) as u64,
                content_type: r.get(8)?,
                link: r.get(9)?,
            },
            created_at: r.get::<_, i64>(10)?.max(0) as u64,
            expires_at: r.get::<_, i64>(11)?.max(0) as u64,
            state: RequestState::parse(&state).unwrap_or(RequestState::Pending),
        },
        account_id: r.get(1)?,
        document_file: r.get(13)?,
        state_reason: r.get(14)?,
        local_decision: match decision.as_deref() {
            Some("approve") => Some(Intent::Approve),
            Some("decline") => Some(Intent::Decline),
            _ => None,
        },
        decline_reason: r.get(16)?,
        decided_at: r.get::<_, Option<i64>>(17)?.map(|v| v.max(0) as u64),
        decision_key: r.get(18)?,
        refusal_code: r.get(19)?,
    })
}

/// Keeps a request from the feed (new, or newer than what the phone has). What this phone did
/// with it stays; a request whose document changed loses the old document's check.
pub(crate) fn upsert(tx: &Transaction<'_>, view: &SignatureRequestView, feed_seq: u64) -> Result<()> {
    tx.execute(
        "INSERT INTO signature_requests(id, account_id, agency_code, title, summary, purpose, document_sha256, \
             document_size, content_type, document_link, created_at, expires_at, state, feed_seq) \
         VALUES (?1, (SELECT account_id FROM session WHERE id = 1), ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
         ON CONFLICT(id) DO UPDATE SET agency_code = excluded.agency_code, title = excluded.title, \
             summary = excluded.summary, purpose = excluded.purpose, \
             document_file = CASE WHEN signature_requests.document_sha256 = excluded.document_sha256 \
                 THEN signature_requests.document_file ELSE NULL END, \
             document_sha256 = excluded.document_sha256, document_size = excluded.document_size, \
             content_type = excluded.content_type, document_link = excluded.document_link, \
             created_at = excluded.created_at, expires_at = excluded.expires_at, state = excluded.state, \
             feed_seq = excluded.feed_seq \
         WHERE excluded.feed_seq > signature_requests.feed_seq",
        params![
            view.id,
            view.agency_code,
            view.title,
            view.summary,
            view.purpose,
            view.document.sha256.to_ascii_lowercase(),
            view.document.size as i64,
            view.document.content_type,
            view.document.link,
            view.created_at as i64,
            view.expires_at as i64,
            view.state.as_str(),
            feed_seq as i64,
        ],
    )
    .map_err(Error::db("keeping a signature request"))?;
    Ok(())
}

/// A request's new state (from the feed, or from the server's answer to this phone's decision).
/// A final state is never turned back into `pending`.
pub(crate) fn set_state(
    tx: &Transaction<'_>,
    id: &str,
    state: RequestState,
    reason: Option<&str>,
    feed_seq: Option<u64>,
) -> Result<()> {
    tx.execute(
        "UPDATE signature_requests SET state = ?2, state_reason = coalesce(?3, state_reason), \
             feed_seq = max(feed_seq, coalesce(?4, feed_seq)) \
         WHERE id = ?1 AND (state = 'pending' OR ?2 <> 'pending') AND (?4 IS NULL OR ?4 > feed_seq)",
        params![id, state.as_str(), reason, feed_seq.map(|s| s as i64)],
    )
    .map_err(Error::db("changing a signature request's state"))?;
    Ok(())
}

pub(crate) fn set_document_file(store: &Store, id: &str, sha256: &str, file: &str) -> Result<()> {
    store.write("keeping a signature request's document", |tx| {
        tx.execute(
            "UPDATE signature_requests SET document_file = ?3 WHERE id = ?1 AND document_sha256 = ?2",
            params![id, sha256, file],
        )
        .map_err(Error::db("keeping a signature request's document"))?;
        Ok(())
    })
}

/// Records this phone's decision; only once, and only while the request is pending here.
/// Returns whether it was recorded.
pub(crate) fn record_decision(
    tx: &Transaction<'_>,
    id: &str,
    intent: Intent,
    decline_reason: Option<&str>,
    decided_at: u64,
    key: &str,
) -> Result<bool> {
    let changed = tx
        .execute(
            "UPDATE signature_requests SET local_decision = ?2, decline_reason = ?3, decided_at = ?4, \
                 decision_key = ?5, refusal_code = NULL \
             WHERE id = ?1 AND state = 'pending' AND local_decision IS NULL",
            params![id, intent.name(), decline_reason, decided_at as i64, key],
        )
        .map_err(Error::db("recording a signature decision"))?;
    Ok(changed == 1)
}

pub(crate) fn record_refusal(tx: &Transaction<'_>, id: &str, code: &str) -> Result<()> {
    tx.execute("UPDATE signature_requests SET refusal_code = ?2 WHERE id = ?1", params![id, code])
        .map_err(Error::db("recording a refused signature decision"))?;
    Ok(())
}

pub(crate) fn get_in(tx: &Transaction<'_>, id: &str) -> Result<Option<StoredRequest>> {
    tx.query_row(&format!("SELECT {COLUMNS} FROM signature_requests WHERE id = ?1 AND {FOR_THIS_ACCOUNT}"), [id], from_row)
        .optional()
        .map_err(Error::db("reading a signature request"))
}

/// One of the current account's requests.
pub fn get(store: &Store, id: &str) -> Result<Option<StoredRequest>> {
    store.read("reading a signature request", |c| {
        c.query_row(&format!("SELECT {COLUMNS} FROM signature_requests WHERE id = ?1 AND {FOR_THIS_ACCOUNT}"), [id], from_row)
            .optional()
    })
}

/// The current account's requests, pending first, then newest first; `state` filters.
pub fn list(store: &Store, state: Option<RequestState>) -> Result<Vec<StoredRequest>> {
    store.read("listing signature requests", |c| {
        let mut stmt = c.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM signature_requests WHERE {FOR_THIS_ACCOUNT} AND (?1 IS NULL OR state = ?1) \
             ORDER BY state = 'pending' DESC, created_at DESC, id"
        ))?;
        let rows = stmt.query_map([state.map(|s| s.as_str())], from_row)?;
        rows.collect()
    })
}
