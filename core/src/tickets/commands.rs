//! The tickets capability's command in the one outbox: `ticket.purchase` (POST
//! `/v1/tickets/purchases`), queued in the same transaction as the local purchase record, sent
//! exactly once under its idempotency key, and what its answer changes: the issued ticket is kept
//! at once (its `ticket.issued` change on the account feed brings the same ticket again, which
//! changes nothing).

use rusqlite::Transaction;
use serde::{Deserialize, Serialize};

use super::store::{self, PurchaseState};
use super::wire::Product;
use crate::crypto::jws::{b64url, b64url_decode};
use crate::error::{Error, Result};
use crate::outbox::{self, Rejection, Route};

pub const PURCHASE_KIND: &str = "ticket.purchase";
pub const PURCHASE_PATH: &str = "v1/tickets/purchases";

/// The body of a purchase. The concession is never sent: the server takes it from the account's
/// verified identity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PurchaseRequest {
    pub product: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<u64>,
    /// The device key the ticket is bound to: compressed P-256 (33 bytes), base64url.
    pub device_key: String,
}

/// A ticket as the server sends it: the answer to a purchase and the data of a `ticket.issued`
/// change. Only the statement and its id are used; the fields are read from the statement.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct IssuedTicket {
    /// Hex of the 16-byte ticket id.
    pub ticket_id: String,
    /// The signed ticket statement, base64url.
    pub ticket: String,
    #[serde(default)]
    pub revoked: bool,
}

impl IssuedTicket {
    /// Keeps the ticket (and its revocation, when the server already says so).
    pub(crate) fn keep(&self, tx: &Transaction<'_>) -> Result<()> {
        let statement = b64url_decode(self.ticket.trim()).map_err(|_| Error::BadData("ticket is not base64url".into()))?;
        store::keep(tx, &self.ticket_id, &statement)?;
        if self.revoked {
            store::revoke(tx, &self.ticket_id, crate::store::now_millis(), None)?;
        }
        Ok(())
    }
}

pub(crate) fn route(kind: &str) -> Option<Route> {
    match kind {
        PURCHASE_KIND => Some(Route { path: |_| PURCHASE_PATH.to_string(), on_sent: issued, on_rejected: refused }),
        _ => None,
    }
}

/// Records a purchase and queues its command, in one transaction. `device_key` is this phone's
/// compressed device key. Returns the purchase id (the command's subject) and the command's key.
pub(crate) fn purchase(
    tx: &Transaction<'_>,
    product: Product,
    origin: Option<u64>,
    destination: Option<u64>,
    device_key: &[u8],
) -> Result<(String, String)> {
    let id = uuid::Uuid::new_v4().to_string();
    let payload = serde_json::to_value(PurchaseRequest { product: product.code(), origin, destination, device_key: b64url(device_key) })
        .map_err(|e| Error::BadData(e.to_string()))?;
    store::insert_purchase(tx, &id, product, origin, destination)?;
    let key = outbox::enqueue(tx, PURCHASE_KIND, &id, &payload)?;
    Ok((id, key))
}

fn issued(tx: &Transaction<'_>, purchase_id: &str, result: &serde_json::Value) -> Result<()> {
    let ticket: IssuedTicket =
        serde_json::from_value(result.clone()).map_err(|e| Error::BadData(format!("issued ticket: {e}")))?;
    ticket.keep(tx)?;
    store::settle_purchase(tx, purchase_id, PurchaseState::Issued, Some(&ticket.ticket_id.to_ascii_lowercase()))
}

/// A refused purchase (payment declined, a device key the server does not know) keeps its reason
/// on the outbox command; nothing was charged.
fn refused(tx: &Transaction<'_>, purchase_id: &str, _rejection: &Rejection) -> Result<()> {
    store::settle_purchase(tx, purchase_id, PurchaseState::Refused, None)
}
