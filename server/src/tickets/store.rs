//! Tickets for both databases: an issued ticket, its `ticket.issued` change on the rider's
//! account feed and its purchase key's recorded answer in one transaction; the rider's own
//! tickets, paged; what a purchase needs to know about the account (verified attributes and
//! registered device keys).

use congdan_core::crypto::jws::b64url_decode;
use congdan_core::tickets::wire::compress_device_key;
use serde::{Deserialize, Serialize};

use crate::cases::idempotency;
use crate::db::{postgres, sqlite, Db, DbError, DbResult};
use crate::feed;
use crate::identity::attributes::VerifiedAttributes;
use crate::identity::store::account_feed;

/// The change kind that brings a bought ticket to the rider's other devices.
pub const ISSUED_CHANGE: &str = "ticket.issued";
/// The change kind that tells the rider a ticket was revoked.
pub const REVOKED_CHANGE: &str = "ticket.revoked";

/// A ticket as the rider sees it: the answer to a purchase, a `ticket.issued` change and an
/// entry of `GET /v1/tickets`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketView {
    /// Hex of the first 16 bytes of SHA-256 over the ticket's signed bytes.
    pub ticket_id: String,
    /// The signed ticket statement (type `0x20`), base64url.
    pub ticket: String,
    pub product: u64,
    /// `student`, `elderly`, `disability`, `child_under_6`, or absent for a full fare.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concession: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<u64>,
    pub fare_vnd: u64,
    /// Unix seconds (whole minutes).
    pub valid_from: u64,
    pub valid_until: u64,
    pub key_id: String,
    pub issued_at_ms: i64,
    #[serde(default)]
    pub revoked: bool,
}

/// A ticket decided, signed and paid for, ready to be written with its answer.
pub struct NewTicket {
    pub account_id: String,
    pub view: TicketView,
    pub charge_id: Option<String>,
    /// The purchase's idempotency key, whose answer (`201` + the view) is recorded with it.
    pub key: String,
}

fn corrupt(e: impl std::fmt::Display) -> DbError {
    DbError::Corrupt(e.to_string())
}

/// Writes the ticket, its `ticket.issued` change and the key's answer; returns the answer body.
pub async fn issue(db: &Db, ticket: NewTicket) -> DbResult<String> {
    let ctx = "issuing a ticket";
    let body = serde_json::to_string(&ticket.view).map_err(corrupt)?;
    let v = &ticket.view;
    let (product, fare, from, until) = (v.product as i64, v.fare_vnd as i64, v.valid_from as i64, v.valid_until as i64);
    let (origin, destination) = (v.origin.map(|o| o as i64), v.destination.map(|d| d as i64));
    match db {
        Db::Sqlite(pool) => {
            let body = body.clone();
            pool.write(ctx, move |tx| {
                let v = &ticket.view;
                tx.execute(
                    "INSERT INTO tickets(id, account_id, product, concession, origin, destination, fare_vnd, valid_from, \
                         valid_until, key_id, statement, charge_id, created_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                    rusqlite::params![
                        v.ticket_id, ticket.account_id, product, v.concession, origin, destination, fare, from, until,
                        v.key_id, v.ticket, ticket.charge_id, v.issued_at_ms
                    ],
                )
                .map_err(sqlite::q(ctx))?;
                feed::append_sqlite(tx, &account_feed(&ticket.account_id), ISSUED_CHANGE, &v.ticket_id, &body)?;
                idempotency::finish_sqlite(tx, &ticket.account_id, &ticket.key, 201, &body)?;
                Ok(())
            })
            .await?;
        }
        Db::Postgres(pool) => {
            let mut client = pool.client().await?;
            let tx = client.transaction().await.map_err(postgres::q(ctx))?;
            let feed_name = account_feed(&ticket.account_id);
            // The feed head first, then the rows (the lock order every feed writer keeps).
            let locked = feed::lock_pg(&tx, &feed_name).await?;
            let insert = tx
                .prepare_cached(
                    "INSERT INTO tickets(id, account_id, product, concession, origin, destination, fare_vnd, valid_from, \
                         valid_until, key_id, statement, charge_id, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                )
                .await
                .map_err(postgres::q(ctx))?;
            tx.execute(
                &insert,
                &[
                    &v.ticket_id, &ticket.account_id, &product, &v.concession, &origin, &destination, &fare, &from, &until,
                    &v.key_id, &v.ticket, &ticket.charge_id, &v.issued_at_ms,
                ],
            )
            .await
            .map_err(postgres::q(ctx))?;
            locked.append(ISSUED_CHANGE, &v.ticket_id, &body).await?;
            idempotency::finish_pg(&tx, &ticket.account_id, &ticket.key, 201, &body).await?;
            tx.commit().await.map_err(postgres::q(ctx))?;
        }
    }
    Ok(body)
}

type Row = (i64, String, String, i64, Option<String>, Option<i64>, Option<i64>, i64, i64, i64, String, i64, bool);

fn view_of(r: Row) -> (i64, TicketView) {
    let (seq, ticket_id, ticket, product, concession, origin, destination, fare, from, until, key_id, issued, revoked) = r;
    (
        seq,
        TicketView {
            ticket_id,
            ticket,
            product: product as u64,
            concession,
            origin: origin.map(|o| o as u64),
            destination: destination.map(|d| d as u64),
            fare_vnd: fare as u64,
            valid_from: from as u64,
            valid_until: until as u64,
            key_id,
            issued_at_ms: issued,
            revoked,
        },
    )
}

const LIST_COLUMNS: &str = "t.seq, t.id, t.statement, t.product, t.concession, t.origin, t.destination, t.fare_vnd, \
     t.valid_from, t.valid_until, t.key_id, t.created_at, r.ticket_id IS NOT NULL";

/// Up to `limit` of the account's tickets after position `after`, oldest first, with each
/// one's position (the next page's cursor).
pub async fn list(db: &Db, account_id: &str, after: i64, limit: u32) -> DbResult<Vec<(i64, TicketView)>> {
    let ctx = "listing tickets";
    let account = account_id.to_string();
    let rows: Vec<Row> = match db {
        Db::Sqlite(pool) => {
            pool.read(ctx, move |c| {
                let mut stmt = c.prepare_cached(&format!(
                    "SELECT {LIST_COLUMNS} FROM tickets t LEFT JOIN ticket_revocations r ON r.ticket_id = t.id \
                     WHERE t.account_id = ?1 AND t.seq > ?2 ORDER BY t.seq LIMIT ?3"
                ))?;
                let rows = stmt.query_map(rusqlite::params![account, after, limit as i64], |r| {
                    Ok((
                        r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?,
                        r.get(9)?, r.get(10)?, r.get(11)?, r.get(12)?,
                    ))
                })?;
                rows.collect()
            })
            .await?
        }
        Db::Postgres(pool) => {
            let client = pool.client().await?;
            let stmt = client
                .prepare_cached(&format!(
                    "SELECT {LIST_COLUMNS} FROM tickets t LEFT JOIN ticket_revocations r ON r.ticket_id = t.id \
                     WHERE t.account_id = $1 AND t.seq > $2 ORDER BY t.seq LIMIT $3"
                ))
                .await
                .map_err(postgres::q(ctx))?;
            client
                .query(&stmt, &[&account, &after, &(limit as i64)])
                .await
                .map_err(postgres::q(ctx))?
                .into_iter()
                .map(|r| {
                    (
                        r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5), r.get(6), r.get(7), r.get(8), r.get(9),
                        r.get(10), r.get(11), r.get(12),
                    )
                })
                .collect()
        }
    };
    Ok(rows.into_iter().map(view_of).collect())
}

/// How many tickets the account was issued since `since_ms`.
pub async fn issued_since(db: &Db, account_id: &str, since_ms: i64) -> DbResult<u64> {
    let ctx = "counting recent tickets";
    let account = account_id.to_string();
    let n: i64 = match db {
        Db::Sqlite(pool) => {
            pool.read(ctx, move |c| {
                c.query_row(
                    "SELECT count(*) FROM tickets WHERE account_id = ?1 AND created_at >= ?2",
                    rusqlite::params![account, since_ms],
                    |r| r.get(0),
                )
            })
            .await?
        }
        Db::Postgres(pool) => pool
            .client()
            .await?
            .query_one("SELECT count(*) FROM tickets WHERE account_id = $1 AND created_at >= $2", &[&account, &since_ms])
            .await
            .map_err(postgres::q(ctx))?
            .get(0),
    };
    Ok(n.max(0) as u64)
}

/// Whether a ticket with this id was issued.
pub async fn exists(db: &Db, ticket_id: &str) -> DbResult<bool> {
    let ctx = "looking up a ticket";
    let id = ticket_id.to_string();
    match db {
        Db::Sqlite(pool) => {
            pool.read(ctx, move |c| c.query_row("SELECT EXISTS(SELECT 1 FROM tickets WHERE id = ?1)", [id], |r| r.get(0)))
                .await
        }
        Db::Postgres(pool) => Ok(pool
            .client()
            .await?
            .query_one("SELECT EXISTS(SELECT 1 FROM tickets WHERE id = $1)", &[&id])
            .await
            .map_err(postgres::q(ctx))?
            .get(0)),
    }
}

/// The account's verified identity attributes (none for an unknown account).
pub async fn verified_attributes(db: &Db, account_id: &str) -> DbResult<VerifiedAttributes> {
    let ctx = "reading verified attributes";
    let account = account_id.to_string();
    let stored: Option<String> = match db {
        Db::Sqlite(pool) => {
            pool.read(ctx, move |c| {
                c.query_row("SELECT verified_attributes FROM accounts WHERE id = ?1", [account], |r| r.get(0))
                    .map(Some)
                    .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })
            })
            .await?
        }
        Db::Postgres(pool) => pool
            .client()
            .await?
            .query_opt("SELECT verified_attributes FROM accounts WHERE id = $1", &[&account])
            .await
            .map_err(postgres::q(ctx))?
            .map(|r| r.get(0)),
    };
    Ok(stored.map(|s| VerifiedAttributes::from_stored(&s)).unwrap_or_default())
}

/// A P-256 public JWK as its 33-byte compressed SEC1 point (what tickets carry).
fn compressed_point(jwk: &str) -> Option<Vec<u8>> {
    let jwk: serde_json::Value = serde_json::from_str(jwk).ok()?;
    if jwk["kty"] != "EC" || jwk["crv"] != "P-256" {
        return None;
    }
    let x = b64url_decode(jwk["x"].as_str()?).ok()?;
    let y = b64url_decode(jwk["y"].as_str()?).ok()?;
    if x.len() != 32 || y.len() != 32 {
        return None;
    }
    compress_device_key(&[&[0x04][..], &x, &y].concat()).ok()
}

/// Whether `device_key` (compressed P-256) is a device key this account registered at login.
pub async fn is_registered_device(db: &Db, account_id: &str, device_key: &[u8]) -> DbResult<bool> {
    let ctx = "reading device keys";
    let account = account_id.to_string();
    let jwks: Vec<String> = match db {
        Db::Sqlite(pool) => {
            pool.read(ctx, move |c| {
                let mut stmt = c.prepare_cached("SELECT public_jwk FROM devices WHERE account_id = ?1")?;
                let rows = stmt.query_map([account], |r| r.get(0))?;
                rows.collect()
            })
            .await?
        }
        Db::Postgres(pool) => pool
            .client()
            .await?
            .query("SELECT public_jwk FROM devices WHERE account_id = $1", &[&account])
            .await
            .map_err(postgres::q(ctx))?
            .into_iter()
            .map(|r| r.get(0))
            .collect(),
    };
    Ok(jwks.iter().filter_map(|j| compressed_point(j)).any(|k| k == device_key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use congdan_core::crypto::jws::Jwk;
    use congdan_core::crypto::P256Signer;

    #[test]
    fn a_jwk_compresses_to_the_sec1_point() {
        let signer = P256Signer::from_pkcs8(&P256Signer::generate_pkcs8().unwrap(), None).unwrap();
        let point = signer.public_key().bytes;
        let jwk = serde_json::to_string(&Jwk::from_p256_point(&point).unwrap()).unwrap();
        let compressed = compressed_point(&jwk).unwrap();
        assert_eq!(compressed[0], 0x02 | (point[64] & 1));
        assert_eq!(&compressed[1..], &point[1..33]);
        assert_eq!(compressed_point("{\"kty\":\"OKP\"}"), None);
    }
}
