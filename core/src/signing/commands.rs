//! Signing's command in the one outbox: `signature.decision` (POST
//! `/v1/signature-requests/{id}/decision`, body `{ "statement": base64url }`), queued in the same
//! transaction as the local decision, sent exactly once under its idempotency key, and what its
//! answer changes.

use rusqlite::Transaction;

use super::api::{decision_path, DecisionBody, DecisionReceipt, Refusal, RequestState, DECISION_KIND};
use super::store;
use super::wire::{encode_statement, Intent};
use crate::error::{Error, Result};
use crate::outbox::{self, Rejection, Route};

pub(crate) fn route(kind: &str) -> Option<Route> {
    match kind {
        DECISION_KIND => Some(Route { path: decision_path, on_sent: decided, on_rejected: refused }),
        _ => None,
    }
}

/// Records the decision and queues its statement, in one transaction. Fails (nothing queued)
/// when the request is no longer pending here or already has a decision.
pub(crate) fn decide(
    tx: &Transaction<'_>,
    request_id: &str,
    intent: Intent,
    decline_reason: Option<&str>,
    decided_at: u64,
    statement: &[u8],
) -> Result<String> {
    let payload = serde_json::to_value(DecisionBody { statement: encode_statement(statement) })
        .map_err(|e| Error::BadData(e.to_string()))?;
    let key = outbox::enqueue(tx, DECISION_KIND, request_id, &payload)?;
    if !store::record_decision(tx, request_id, intent, decline_reason, decided_at, &key)? {
        // Rolls the whole transaction back: no command without its local decision.
        return Err(Error::BadData("signature request already decided on this phone".into()));
    }
    Ok(key)
}

fn decided(tx: &Transaction<'_>, request_id: &str, result: &serde_json::Value) -> Result<()> {
    match serde_json::from_value::<DecisionReceipt>(result.clone()) {
        Ok(receipt) => store::set_state(tx, request_id, receipt.state, None, None),
        // The feed's `signature.state` brings it anyway.
        Err(_) => Ok(()),
    }
}

/// A refused decision keeps the server's code (the screen shows its message); a request the
/// agency cancelled or that expired meanwhile takes that state at once.
fn refused(tx: &Transaction<'_>, request_id: &str, rejection: &Rejection) -> Result<()> {
    store::record_refusal(tx, request_id, &rejection.code)?;
    match Refusal::from_code(&rejection.code) {
        Some(Refusal::RequestCancelled) => store::set_state(tx, request_id, RequestState::Cancelled, None, None),
        Some(Refusal::RequestExpired) => store::set_state(tx, request_id, RequestState::Expired, None, None),
        _ => Ok(()),
    }
}
