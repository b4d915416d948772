//! Changes of the account feed owned by the tickets capability: `ticket.issued` (a ticket bought
//! on this phone or another of the rider's) and `ticket.revoked`. Applied in the feed page's
//! transaction; applying either twice changes nothing, and a revocation is never undone.

use rusqlite::Transaction;
use serde::Deserialize;

use super::commands::IssuedTicket;
use super::store;
use crate::error::{Error, Result};
use crate::sync::wire::Change;

pub const ISSUED: &str = "ticket.issued";
pub const REVOKED: &str = "ticket.revoked";

#[derive(Deserialize)]
struct Revoked {
    ticket_id: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    revoked_at_ms: Option<i64>,
}

pub(crate) fn apply(tx: &Transaction<'_>, change: &Change) -> Result<()> {
    match change.kind.as_str() {
        ISSUED => {
            let ticket: IssuedTicket =
                serde_json::from_value(change.data.clone()).map_err(|e| Error::BadData(format!("{ISSUED}: {e}")))?;
            ticket.keep(tx)
        }
        REVOKED => {
            let revoked: Revoked =
                serde_json::from_value(change.data.clone()).map_err(|e| Error::BadData(format!("{REVOKED}: {e}")))?;
            let reason: Option<String> = revoked.reason.map(|r| r.chars().take(200).collect());
            let at = revoked.revoked_at_ms.unwrap_or_else(crate::store::now_millis);
            store::revoke(tx, &revoked.ticket_id, at, reason.as_deref())
        }
        other => Err(Error::BadData(format!("unknown change kind {other}"))),
    }
}
