//! Revoked tickets and the signed list gates pull. A revocation is a row (`ticket_revocations`)
//! and a `ticket.revoked` change on the owner's feed, written together inside the caller's
//! transaction; the list is built on request: the ids of revoked tickets not yet expired,
//! sorted, in one statement of type `0x22` signed by the current operator key (layout in
//! `congdan_core::tickets::gate::revocation`).
//!
//! The list's sequence is the number of revocations ever made: revocations are never deleted,
//! so a list with more revocations always has a higher sequence, and two lists with the same
//! sequence have the same ids, whichever instance built them.

use congdan_core::crypto::{from_hex, jws::b64url};
use congdan_core::tickets::gate::revocation::RevocationList;
use serde::Serialize;

use super::keys;
use super::store::REVOKED_CHANGE;
use crate::db::{now_millis, postgres, sqlite, Db, DbError, DbResult};
use crate::feed;

/// Why a ticket was revoked (the `reason` of the row and of the change).
pub const CLONE_DETECTED: &str = "clone_detected";

fn revoked_change(ticket_id: &str, reason: &str, at_ms: i64) -> String {
    serde_json::json!({ "ticket_id": ticket_id, "reason": reason, "revoked_at_ms": at_ms }).to_string()
}

/// Revokes inside a SQLite transaction; false if it already was.
pub fn revoke_sqlite(
    tx: &rusqlite::Transaction<'_>,
    ticket_id: &str,
    account_id: &str,
    valid_until: i64,
    reason: &str,
) -> DbResult<bool> {
    let ctx = "revoking a ticket";
    let now = now_millis();
    let inserted = tx
        .execute(
            "INSERT INTO ticket_revocations(ticket_id, account_id, reason, valid_until, revoked_at) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(ticket_id) DO NOTHING",
            rusqlite::params![ticket_id, account_id, reason, valid_until, now],
        )
        .map_err(sqlite::q(ctx))?;
    if inserted == 0 {
        return Ok(false);
    }
    let feed_name = crate::identity::store::account_feed(account_id);
    feed::append_sqlite(tx, &feed_name, REVOKED_CHANGE, ticket_id, &revoked_change(ticket_id, reason, now))?;
    Ok(true)
}

/// Revokes inside a PostgreSQL transaction holding the owner's feed lock; false if it already was.
pub async fn revoke_pg(
    tx: &deadpool_postgres::Transaction<'_>,
    owner_feed: &feed::LockedFeed<'_, '_>,
    ticket_id: &str,
    account_id: &str,
    valid_until: i64,
    reason: &str,
) -> DbResult<bool> {
    let ctx = "revoking a ticket";
    let now = now_millis();
    let inserted = tx
        .execute(
            "INSERT INTO ticket_revocations(ticket_id, account_id, reason, valid_until, revoked_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (ticket_id) DO NOTHING",
            &[&ticket_id, &account_id, &reason, &valid_until, &now],
        )
        .await
        .map_err(postgres::q(ctx))?;
    if inserted == 0 {
        return Ok(false);
    }
    owner_feed.append(REVOKED_CHANGE, ticket_id, &revoked_change(ticket_id, reason, now)).await?;
    Ok(true)
}

/// `GET /v1/operator/revocations`.
#[derive(Debug, Serialize)]
pub struct SignedList {
    pub sequence: u64,
    pub issued_at: u64,
    /// How many ids the list holds.
    pub count: usize,
    pub key_id: String,
    /// The statement (type `0x22`), base64url.
    pub statement: String,
}

/// The current list, signed now.
pub async fn signed_list(db: &Db) -> DbResult<SignedList> {
    let ctx = "reading revocations";
    let now_secs = (now_millis() / 1000).max(0);
    let (total, ids): (i64, Vec<String>) = match db {
        Db::Sqlite(pool) => {
            pool.read(ctx, move |c| {
                let total = c.query_row("SELECT count(*) FROM ticket_revocations", [], |r| r.get(0))?;
                let mut stmt = c.prepare_cached(
                    "SELECT ticket_id FROM ticket_revocations WHERE valid_until >= ?1 ORDER BY ticket_id",
                )?;
                let ids = stmt.query_map([now_secs], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
                Ok((total, ids))
            })
            .await?
        }
        Db::Postgres(pool) => {
            // One snapshot for the count and the ids.
            let mut client = pool.client().await?;
            let tx = client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .map_err(postgres::q(ctx))?;
            let total: i64 =
                tx.query_one("SELECT count(*) FROM ticket_revocations", &[]).await.map_err(postgres::q(ctx))?.get(0);
            let ids = tx
                .query("SELECT ticket_id FROM ticket_revocations WHERE valid_until >= $1 ORDER BY ticket_id", &[&now_secs])
                .await
                .map_err(postgres::q(ctx))?
                .into_iter()
                .map(|r| r.get(0))
                .collect();
            tx.commit().await.map_err(postgres::q(ctx))?;
            (total, ids)
        }
    };
    let ids = ids
        .iter()
        .map(|id| from_hex(id).and_then(|b| <[u8; 16]>::try_from(b).ok()))
        .collect::<Option<Vec<[u8; 16]>>>()
        .ok_or_else(|| DbError::Corrupt("a revoked ticket id is not 16 bytes of hex".into()))?;
    let count = ids.len();
    let list = RevocationList::from_ids(total.max(0) as u64, now_secs as u64, ids);
    let key = keys::current(db).await?;
    let statement = list.sign(&key.signer()?).map_err(|e| DbError::Corrupt(format!("signing the revocation list: {e}")))?;
    Ok(SignedList {
        sequence: list.sequence,
        issued_at: list.issued_at,
        count,
        key_id: key.key_id,
        statement: b64url(&statement),
    })
}
