//! The rider's tickets on the phone: each one as issued (the signed statement, kept so the code
//! can be shown offline for as long as the ticket lasts) with its fields in columns for
//! listing; the purchases waiting in the outbox; and the server's clock offset.

use rusqlite::{params, OptionalExtension, Transaction};

use super::wire::{read_ticket_unverified, ticket_id, Product, Ticket};
use crate::crypto::hex;
use crate::error::{Error, Result};
use crate::store::{now_millis, Store};

/// A ticket as the phone keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredTicket {
    /// Hex of the 16-byte ticket id.
    pub id: String,
    pub ticket: Ticket,
    /// The signed statement as issued (what goes into every code).
    pub statement: Vec<u8>,
    pub received_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
    pub revoked_reason: Option<String>,
}

/// Keeps a ticket statement received from the server (a purchase's answer or a `ticket.issued`
/// change). The phone has no operator keys: it reads the fields without verifying them (the
/// gate verifies), but refuses a statement that is not a well-formed ticket or whose id does not
/// match. Keeping it twice changes nothing.
pub(crate) fn keep(tx: &Transaction<'_>, expected_id: &str, statement: &[u8]) -> Result<()> {
    let ticket = read_ticket_unverified(statement).map_err(|e| Error::BadData(format!("ticket: {e}")))?;
    let id = hex(&ticket_id(statement));
    if !id.eq_ignore_ascii_case(expected_id) {
        return Err(Error::BadData("ticket id does not match its statement".into()));
    }
    tx.execute(
        "INSERT INTO tickets(id, account_id, statement, product, concession, origin, destination, fare_vnd, \
             valid_from, valid_until, device_key, received_at) \
         VALUES (?1, (SELECT account_id FROM session WHERE id = 1), ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
         ON CONFLICT(id) DO NOTHING",
        params![
            id,
            statement,
            ticket.product.code() as i64,
            ticket.concession.map(|c| c.code() as i64),
            ticket.origin.map(|o| o as i64),
            ticket.destination.map(|d| d as i64),
            ticket.fare_vnd as i64,
            ticket.valid_from as i64,
            ticket.valid_until as i64,
            ticket.device_key,
            now_millis(),
        ],
    )
    .map_err(Error::db("keeping a ticket"))?;
    Ok(())
}

/// Marks a ticket revoked (for good: a later change never un-revokes it). A revocation of a
/// ticket this phone does not have changes nothing.
pub(crate) fn revoke(tx: &Transaction<'_>, id: &str, at_ms: i64, reason: Option<&str>) -> Result<()> {
    tx.execute(
        "UPDATE tickets SET revoked_at = ?2, revoked_reason = ?3 WHERE id = ?1 AND revoked_at IS NULL",
        params![id.to_ascii_lowercase(), at_ms, reason],
    )
    .map_err(Error::db("revoking a ticket"))?;
    Ok(())
}

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, Vec<u8>, i64, Option<i64>, Option<String>)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

fn stored(row: (String, Vec<u8>, i64, Option<i64>, Option<String>)) -> Option<StoredTicket> {
    let (id, statement, received_at_ms, revoked_at_ms, revoked_reason) = row;
    // Written only after the same check: a row that fails it now is skipped, not fatal.
    let ticket = read_ticket_unverified(&statement).ok()?;
    Some(StoredTicket { id, ticket, statement, received_at_ms, revoked_at_ms, revoked_reason })
}

const SELECT: &str = "SELECT id, statement, received_at, revoked_at, revoked_reason FROM tickets";
/// The logged-in (or last logged-in) rider's tickets only: a shared phone never shows another
/// resident's tickets.
const FOR_THIS_ACCOUNT: &str = "account_id IS (SELECT account_id FROM session WHERE id = 1)";

/// The rider's tickets, those valid longest first.
pub fn list(store: &Store) -> Result<Vec<StoredTicket>> {
    store.read("listing tickets", |c| {
        let mut stmt =
            c.prepare_cached(&format!("{SELECT} WHERE {FOR_THIS_ACCOUNT} ORDER BY valid_until DESC, id"))?;
        let rows = stmt.query_map([], from_row)?;
        rows.map(|r| r.map(stored)).filter_map(|r| r.transpose()).collect()
    })
}

pub fn get(store: &Store, id: &str) -> Result<Option<StoredTicket>> {
    let row = store.read("reading a ticket", |c| {
        c.query_row(&format!("{SELECT} WHERE id = ?1 AND {FOR_THIS_ACCOUNT}"), [id.to_ascii_lowercase()], from_row)
            .optional()
    })?;
    Ok(row.and_then(stored))
}

/// Where a purchase stands locally.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PurchaseState {
    /// In the outbox (offline, or being sent).
    Waiting,
    /// The server issued the ticket.
    Issued,
    /// The server refused it for good (its reason is on the outbox command).
    Refused,
}

impl PurchaseState {
    pub fn as_str(self) -> &'static str {
        match self {
            PurchaseState::Waiting => "waiting",
            PurchaseState::Issued => "issued",
            PurchaseState::Refused => "refused",
        }
    }

    fn parse(s: &str) -> PurchaseState {
        match s {
            "issued" => PurchaseState::Issued,
            "refused" => PurchaseState::Refused,
            _ => PurchaseState::Waiting,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Purchase {
    /// The purchase's id: the subject of its `ticket.purchase` command.
    pub id: String,
    pub product: Product,
    pub origin: Option<u64>,
    pub destination: Option<u64>,
    pub state: PurchaseState,
    pub ticket_id: Option<String>,
    pub created_at_ms: i64,
}

pub(crate) fn insert_purchase(
    tx: &Transaction<'_>,
    id: &str,
    product: Product,
    origin: Option<u64>,
    destination: Option<u64>,
) -> Result<()> {
    tx.execute(
        "INSERT INTO ticket_purchases(id, account_id, product, origin, destination, state, created_at) \
         VALUES (?1, (SELECT account_id FROM session WHERE id = 1), ?2, ?3, ?4, 'waiting', ?5)",
        params![id, product.code() as i64, origin.map(|o| o as i64), destination.map(|d| d as i64), now_millis()],
    )
    .map_err(Error::db("recording a purchase"))?;
    Ok(())
}

pub(crate) fn settle_purchase(tx: &Transaction<'_>, id: &str, state: PurchaseState, ticket_id: Option<&str>) -> Result<()> {
    tx.execute(
        "UPDATE ticket_purchases SET state = ?2, ticket_id = ?3 WHERE id = ?1",
        params![id, state.as_str(), ticket_id],
    )
    .map_err(Error::db("recording a purchase"))?;
    Ok(())
}

/// The rider's purchases, newest first.
pub fn purchases(store: &Store) -> Result<Vec<Purchase>> {
    store.read("listing purchases", |c| {
        let mut stmt = c.prepare_cached(&format!(
            "SELECT id, product, origin, destination, state, ticket_id, created_at FROM ticket_purchases \
             WHERE {FOR_THIS_ACCOUNT} ORDER BY created_at DESC, id"
        ))?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<i64>>(2)?,
                r.get::<_, Option<i64>>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, i64>(6)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, product, origin, destination, state, ticket_id, created_at_ms) = row?;
            let Ok(product) = Product::from_code(product as u64) else { continue };
            out.push(Purchase {
                id,
                product,
                origin: origin.map(|o| o as u64),
                destination: destination.map(|d| d as u64),
                state: PurchaseState::parse(&state),
                ticket_id,
                created_at_ms,
            });
        }
        Ok(out)
    })
}

const CLOCK_OFFSET_KEY: &str = "server_clock_offset_ms";

/// The server's clock minus the phone's, as last learned (kept so codes are right offline).
pub fn clock_offset_ms(store: &Store) -> Result<Option<i64>> {
    let value: Option<String> = store.read("reading the clock offset", |c| {
        c.query_row("SELECT value FROM meta WHERE key = ?1", [CLOCK_OFFSET_KEY], |r| r.get(0)).optional()
    })?;
    Ok(value.and_then(|v| v.parse().ok()))
}

pub(crate) fn set_clock_offset_ms(store: &Store, offset_ms: i64) -> Result<()> {
    store.write("storing the clock offset", |tx| {
        tx.execute(
            "INSERT INTO meta(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![CLOCK_OFFSET_KEY, offset_ms.to_string()],
        )
        .map_err(Error::db("storing the clock offset"))?;
        Ok(())
    })
}
