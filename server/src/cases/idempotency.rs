//! Idempotency keys (IETF draft "The Idempotency-Key HTTP Header Field"), server side of the one
//! outbox (DESIGN §1). A command is claimed under its key and a fingerprint of its body before any
//! work; the work and the recorded answer then commit together. So:
//!
//! - a retry of a finished command gets the first answer again, byte for byte;
//! - the same key while the first request still works: `409 request_in_progress`;
//! - the same key with another body: `422 idempotency_key_reused`.
//!
//! A claim is a lease: if an instance dies mid-command, the key is free again after
//! [`LEASE_MS`], and the retry does the work (the work itself is one transaction, so it either
//! happened with its answer recorded, or not at all).

use crate::db::{now_millis, postgres, sqlite, Db, DbResult};

/// How long a claimed key stays locked for other requests.
pub const LEASE_MS: i64 = 30_000;

/// What a claim found.
#[derive(Debug, PartialEq)]
pub enum Claim {
    /// The key is ours: do the work, then [`finish_sqlite`]/[`finish_pg`] in its transaction.
    Fresh,
    /// Done before: answer this again.
    Replay { status: u16, body: String },
    /// Another request holds the key right now.
    InProgress,
    /// The key was used for another body.
    Mismatch,
}

pub fn fingerprint(body: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, body).as_ref().to_vec()
}

/// Claims `key` for `account` with the body's `fingerprint` (its own short transaction).
pub async fn claim(db: &Db, account: &str, key: &str, fingerprint: Vec<u8>) -> DbResult<Claim> {
    let ctx = "claiming an idempotency key";
    let now = now_millis();
    match db {
        Db::Sqlite(pool) => {
            let (account, key) = (account.to_string(), key.to_string());
            pool.write(ctx, move |tx| {
                let existing = tx
                    .prepare_cached(
                        "SELECT fingerprint, status, response, locked_until FROM idempotency_keys \
                         WHERE account_id = ?1 AND key = ?2",
                    )
                    .and_then(|mut s| {
                        s.query_row(rusqlite::params![account, key], |r| {
                            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Option<i64>>(1)?, r.get::<_, Option<String>>(2)?, r.get::<_, i64>(3)?))
                        })
                    })
                    .map(Some)
                    .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })
                    .map_err(sqlite::q(ctx))?;
                let claim = decide(existing, &fingerprint, now);
                if claim == Claim::Fresh {
                    tx.prepare_cached(
                        "INSERT INTO idempotency_keys(account_id, key, fingerprint, locked_until, created_at) \
                         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(account_id, key) DO UPDATE SET locked_until = excluded.locked_until",
                    )
                    .and_then(|mut s| s.execute(rusqlite::params![account, key, fingerprint, now + LEASE_MS, now]))
                    .map_err(sqlite::q(ctx))?;
                }
                Ok(claim)
            })
            .await
        }
        Db::Postgres(pool) => {
            let client = pool.client().await?;
            // One statement, one round trip, its own transaction: a new key is inserted with its
            // lease; an unfinished key of the same body whose lease ran out is leased again. A
            // row comes back exactly when the key is now ours. Statements are prepared once per
            // connection.
            let take = client
                .prepare_cached(
                    "INSERT INTO idempotency_keys(account_id, key, fingerprint, locked_until, created_at) \
                     VALUES ($1, $2, $3, $5, $4) ON CONFLICT (account_id, key) DO UPDATE SET locked_until = excluded.locked_until \
                     WHERE idempotency_keys.fingerprint = excluded.fingerprint AND idempotency_keys.status IS NULL \
                     AND idempotency_keys.locked_until <= $4 \
                     RETURNING 1",
                )
                .await
                .map_err(postgres::q(ctx))?;
            let taken = client.query_opt(&take, &[&account, &key, &fingerprint, &now, &(now + LEASE_MS)]).await.map_err(postgres::q(ctx))?;
            if taken.is_some() {
                return Ok(Claim::Fresh);
            }
            // Not ours (a retry, a reuse, or a holder at work): say which.
            let read = client
                .prepare_cached(
                    "SELECT fingerprint, status, response, locked_until FROM idempotency_keys WHERE account_id = $1 AND key = $2",
                )
                .await
                .map_err(postgres::q(ctx))?;
            let existing = client.query_opt(&read, &[&account, &key]).await.map_err(postgres::q(ctx))?.map(|row| {
                let status: Option<i32> = row.get(1);
                (row.get::<_, Vec<u8>>(0), status.map(i64::from), row.get::<_, Option<String>>(2), row.get::<_, i64>(3))
            });
            // A lease that ran out just now, or a row gone: not taken here; the retry takes it.
            Ok(match decide(existing, &fingerprint, now) {
                Claim::Fresh => Claim::InProgress,
                other => other,
            })
        }
    }
}

fn decide(existing: Option<(Vec<u8>, Option<i64>, Option<String>, i64)>, fingerprint: &[u8], now: i64) -> Claim {
    match existing {
        None => Claim::Fresh,
        Some((stored, _, _, _)) if stored != fingerprint => Claim::Mismatch,
        Some((_, Some(status), Some(body), _)) => Claim::Replay { status: status as u16, body },
        Some((_, _, _, locked_until)) if locked_until > now => Claim::InProgress,
        // A lease that ran out (its instance died): the work never committed; take it over.
        Some(_) => Claim::Fresh,
    }
}

/// Records the answer inside the work's own transaction (SQLite).
pub fn finish_sqlite(tx: &rusqlite::Transaction<'_>, account: &str, key: &str, status: u16, body: &str) -> DbResult<()> {
    tx.prepare_cached("UPDATE idempotency_keys SET status = ?3, response = ?4, locked_until = 0 WHERE account_id = ?1 AND key = ?2")
        .and_then(|mut s| s.execute(rusqlite::params![account, key, status as i64, body]))
        .map_err(sqlite::q("recording a command's answer"))?;
    Ok(())
}

/// Records the answer inside the work's own transaction (PostgreSQL).
pub async fn finish_pg(tx: &deadpool_postgres::Transaction<'_>, account: &str, key: &str, status: u16, body: &str) -> DbResult<()> {
    let ctx = "recording a command's answer";
    let stmt = tx
        .prepare_cached(
            "UPDATE idempotency_keys SET status = $3, response = $4, locked_until = 0 WHERE account_id = $1 AND key = $2",
        )
        .await
        .map_err(postgres::q(ctx))?;
    tx.execute(&stmt, &[&account, &key, &(status as i32), &body]).await.map_err(postgres::q(ctx))?;
    Ok(())
}

/// Releases a claim whose work failed for a transient reason (the database), so a retry can go on.
pub async fn release(db: &Db, account: &str, key: &str) -> DbResult<()> {
    let ctx = "releasing an idempotency key";
    match db {
        Db::Sqlite(pool) => {
            let (account, key) = (account.to_string(), key.to_string());
            pool.write(ctx, move |tx| {
                tx.execute(
                    "UPDATE idempotency_keys SET locked_until = 0 WHERE account_id = ?1 AND key = ?2 AND status IS NULL",
                    rusqlite::params![account, key],
                )
                .map_err(sqlite::q(ctx))?;
                Ok(())
            })
            .await
        }
        Db::Postgres(pool) => {
            let client = pool.client().await?;
            client
                .execute(
                    "UPDATE idempotency_keys SET locked_until = 0 WHERE account_id = $1 AND key = $2 AND status IS NULL",
                    &[&account, &key],
                )
                .await
                .map_err(postgres::q(ctx))?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions() {
        let fp = fingerprint(b"{}");
        assert_eq!(decide(None, &fp, 10), Claim::Fresh);
        assert_eq!(decide(Some((fingerprint(b"[]"), None, None, 0)), &fp, 10), Claim::Mismatch);
        assert_eq!(
            decide(Some((fp.clone(), Some(201), Some("x".into()), 0)), &fp, 10),
            Claim::Replay { status: 201, body: "x".into() }
        );
        assert_eq!(decide(Some((fp.clone(), None, None, 20)), &fp, 10), Claim::InProgress);
        assert_eq!(decide(Some((fp.clone(), None, None, 5)), &fp, 10), Claim::Fresh, "expired lease");
    }
}
