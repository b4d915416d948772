//! The audit trail of a signature request: an append-only, hash-chained log (created, delivered
//! to the device, decided, bundle fetched, cancelled). Each entry's hash covers the previous
//! entry's hash and the entry itself, and the request row keeps the newest hash and the count,
//! so changing, removing, reordering or inserting any stored entry, or cutting the tail, breaks
//! [`verify`].
//!
//! Entry hash = SHA-256 over: previous hash (32 bytes; 32 zero bytes for the first) · seq (u64,
//! big-endian) · at (i64 milliseconds, big-endian) · then request id, kind, actor, detail, each
//! as a u32 big-endian length and its UTF-8 bytes.

use serde::Serialize;

use crate::db::{postgres, sqlite, Db, DbResult};

pub const CREATED: &str = "created";
pub const DELIVERED: &str = "delivered";
pub const DECIDED: &str = "decided";
pub const BUNDLE_FETCHED: &str = "bundle_fetched";
pub const CANCELLED: &str = "cancelled";

pub const GENESIS: [u8; 32] = [0; 32];

/// One stored entry.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Entry {
    pub seq: i64,
    pub kind: String,
    /// Milliseconds since the epoch.
    pub at: i64,
    /// Who caused it: an account id, or `server`.
    pub actor: String,
    /// JSON text with what the entry is about.
    pub detail: String,
    #[serde(serialize_with = "as_hex")]
    pub prev_hash: Vec<u8>,
    #[serde(serialize_with = "as_hex")]
    pub hash: Vec<u8>,
}

fn as_hex<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&congdan_core::crypto::hex(bytes))
}

pub fn entry_hash(prev: &[u8], request_id: &str, seq: i64, at: i64, kind: &str, actor: &str, detail: &str) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(prev);
    ctx.update(&(seq as u64).to_be_bytes());
    ctx.update(&at.to_be_bytes());
    for part in [request_id, kind, actor, detail] {
        ctx.update(&(part.len() as u32).to_be_bytes());
        ctx.update(part.as_bytes());
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// What a check of a chain found.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Verification {
    pub valid: bool,
    pub entries: usize,
    /// The first entry (by position) that does not hold, and why.
    pub broken_at: Option<i64>,
    pub problem: Option<String>,
}

/// Checks `entries` (in stored order) against the request row's head and count.
pub fn verify(request_id: &str, entries: &[Entry], head: &[u8], count: i64) -> Verification {
    let fail = |at: i64, why: &str| Verification { valid: false, entries: entries.len(), broken_at: Some(at), problem: Some(why.into()) };
    let mut prev = GENESIS.to_vec();
    for (i, e) in entries.iter().enumerate() {
        if e.seq != i as i64 + 1 {
            return fail(e.seq, "entries missing or out of order");
        }
        if e.prev_hash != prev {
            return fail(e.seq, "previous hash does not match the entry before");
        }
        let recomputed = entry_hash(&prev, request_id, e.seq, e.at, &e.kind, &e.actor, &e.detail);
        if e.hash != recomputed {
            return fail(e.seq, "entry changed after it was written");
        }
        prev = e.hash.clone();
    }
    if entries.len() as i64 != count || prev != head {
        return fail(entries.len() as i64 + 1, "entries removed from or added to the end");
    }
    Verification { valid: true, entries: entries.len(), broken_at: None, problem: None }
}

/// Appends an entry inside a SQLite write transaction (the request row exists).
pub fn append_sqlite(tx: &rusqlite::Transaction<'_>, request_id: &str, kind: &str, actor: &str, detail: &str, at: i64) -> DbResult<()> {
    let ctx = "appending to an audit trail";
    let (head, count): (Vec<u8>, i64) = tx
        .query_row("SELECT audit_head, audit_len FROM signature_requests WHERE id = ?1", [request_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(sqlite::q(ctx))?;
    let seq = count + 1;
    let hash = entry_hash(&head, request_id, seq, at, kind, actor, detail);
    tx.execute(
        "INSERT INTO signature_audit(request_id, seq, kind, at, actor, detail, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        rusqlite::params![request_id, seq, kind, at, actor, detail, head, hash.to_vec()],
    )
    .map_err(sqlite::q(ctx))?;
    tx.execute(
        "UPDATE signature_requests SET audit_head = ?2, audit_len = ?3 WHERE id = ?1",
        rusqlite::params![request_id, hash.to_vec(), seq],
    )
    .map_err(sqlite::q(ctx))?;
    Ok(())
}

/// Appends an entry inside a PostgreSQL transaction; locks the request row first (callers that
/// also write the feed lock the feed head before, see feed.rs).
pub async fn append_pg(
    tx: &deadpool_postgres::Transaction<'_>,
    request_id: &str,
    kind: &str,
    actor: &str,
    detail: &str,
    at: i64,
) -> DbResult<()> {
    let ctx = "appending to an audit trail";
    let p = |e| postgres::q(ctx)(e);
    let read = tx
        .prepare_cached("SELECT audit_head, audit_len FROM signature_requests WHERE id = $1 FOR UPDATE")
        .await
        .map_err(p)?;
    let row = tx.query_one(&read, &[&request_id]).await.map_err(p)?;
    let (head, count): (Vec<u8>, i64) = (row.get(0), row.get(1));
    let seq = count + 1;
    let hash = entry_hash(&head, request_id, seq, at, kind, actor, detail).to_vec();
    let insert = tx
        .prepare_cached(
            "INSERT INTO signature_audit(request_id, seq, kind, at, actor, detail, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .await
        .map_err(p)?;
    tx.execute(&insert, &[&request_id, &seq, &kind, &at, &actor, &detail, &head, &hash]).await.map_err(p)?;
    let bump = tx.prepare_cached("UPDATE signature_requests SET audit_head = $2, audit_len = $3 WHERE id = $1").await.map_err(p)?;
    tx.execute(&bump, &[&request_id, &hash, &seq]).await.map_err(p)?;
    Ok(())
}

/// Appends one entry in its own transaction (entries without other writes: delivered, bundle
/// fetched). `only_once` skips it when an entry of this kind exists already.
pub async fn append(db: &Db, request_id: &str, kind: &'static str, actor: &str, detail: &str, only_once: bool) -> DbResult<()> {
    let ctx = "appending to an audit trail";
    let at = crate::db::now_millis();
    let (request_id, actor, detail) = (request_id.to_string(), actor.to_string(), detail.to_string());
    match db {
        Db::Sqlite(pool) => {
            pool.write(ctx, move |tx| {
                if only_once {
                    let exists: bool = tx
                        .query_row(
                            "SELECT EXISTS(SELECT 1 FROM signature_audit WHERE request_id = ?1 AND kind = ?2)",
                            rusqlite::params![request_id, kind],
                            |r| r.get(0),
                        )
                        .map_err(sqlite::q(ctx))?;
                    if exists {
                        return Ok(());
                    }
                }
                append_sqlite(tx, &request_id, kind, &actor, &detail, at)
            })
            .await
        }
        Db::Postgres(pool) => {
            let mut client = pool.client().await?;
            let tx = client.transaction().await.map_err(postgres::q(ctx))?;
            // The row lock first, so two instances never both see "not yet delivered".
            tx.execute("SELECT 1 FROM signature_requests WHERE id = $1 FOR UPDATE", &[&request_id])
                .await
                .map_err(postgres::q(ctx))?;
            if only_once {
                let exists: bool = tx
                    .query_one(
                        "SELECT EXISTS(SELECT 1 FROM signature_audit WHERE request_id = $1 AND kind = $2)",
                        &[&request_id, &kind],
                    )
                    .await
                    .map_err(postgres::q(ctx))?
                    .get(0);
                if exists {
                    return Ok(());
                }
            }
            append_pg(&tx, &request_id, kind, &actor, &detail, at).await?;
            tx.commit().await.map_err(postgres::q(ctx))
        }
    }
}

/// The stored chain of a request with the row's head and count (`None`: no such request).
pub async fn load(db: &Db, request_id: &str) -> DbResult<Option<(Vec<Entry>, Vec<u8>, i64)>> {
    let ctx = "reading an audit trail";
    let id = request_id.to_string();
    type Row = (i64, String, i64, String, String, Vec<u8>, Vec<u8>);
    let to_entry = |(seq, kind, at, actor, detail, prev_hash, hash): Row| Entry { seq, kind, at, actor, detail, prev_hash, hash };
    match db {
        Db::Sqlite(pool) => {
            let found = pool
                .read(ctx, move |c| {
                    let head = c.query_row("SELECT audit_head, audit_len FROM signature_requests WHERE id = ?1", [&id], |r| {
                        Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?))
                    });
                    let (head, count) = match head {
                        Ok(h) => h,
                        Err(rusqlite::Error::QueryReturnedNoRows) => return Ok(None),
                        Err(e) => return Err(e),
                    };
                    let mut stmt = c.prepare_cached(
                        "SELECT seq, kind, at, actor, detail, prev_hash, hash FROM signature_audit WHERE request_id = ?1 ORDER BY seq",
                    )?;
                    let rows = stmt
                        .query_map([&id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)))?
                        .collect::<rusqlite::Result<Vec<Row>>>()?;
                    Ok(Some((rows, head, count)))
                })
                .await?;
            Ok(found.map(|(rows, head, count)| (rows.into_iter().map(to_entry).collect(), head, count)))
        }
        Db::Postgres(pool) => {
            let client = pool.client().await?;
            let p = |e| postgres::q(ctx)(e);
            let Some(row) = client
                .query_opt("SELECT audit_head, audit_len FROM signature_requests WHERE id = $1", &[&id])
                .await
                .map_err(p)?
            else {
                return Ok(None);
            };
            let rows = client
                .query(
                    "SELECT seq, kind, at, actor, detail, prev_hash, hash FROM signature_audit WHERE request_id = $1 ORDER BY seq",
                    &[&id],
                )
                .await
                .map_err(p)?;
            let entries = rows
                .into_iter()
                .map(|r| to_entry((r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5), r.get(6))))
                .collect();
            Ok(Some((entries, row.get(0), row.get(1))))
        }
    }
}

/// Loads and checks a request's chain; `None` for no such request.
pub async fn check(db: &Db, request_id: &str) -> DbResult<Option<(Vec<Entry>, Verification)>> {
    Ok(load(db, request_id).await?.map(|(entries, head, count)| {
        let v = verify(request_id, &entries, &head, count);
        (entries, v)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: usize) -> (Vec<Entry>, Vec<u8>) {
        let mut prev = GENESIS.to_vec();
        let mut out = Vec::new();
        for i in 1..=n as i64 {
            let hash = entry_hash(&prev, "r1", i, 1000 + i, "created", "a", "{}").to_vec();
            out.push(Entry { seq: i, kind: "created".into(), at: 1000 + i, actor: "a".into(), detail: "{}".into(), prev_hash: prev, hash: hash.clone() });
            prev = hash;
        }
        (out, prev)
    }

    #[test]
    fn every_change_is_detected() {
        let (entries, head) = chain(4);
        assert!(verify("r1", &entries, &head, 4).valid);
        assert!(!verify("r2", &entries, &head, 4).valid, "another request's chain");
        let mut changed = entries.clone();
        changed[1].detail = "{\"x\":1}".into();
        assert_eq!(verify("r1", &changed, &head, 4).broken_at, Some(2));
        let mut changed = entries.clone();
        changed[2].at += 1;
        assert_eq!(verify("r1", &changed, &head, 4).broken_at, Some(3));
        let mut cut = entries.clone();
        cut.pop();
        assert!(!verify("r1", &cut, &head, 4).valid, "tail removed");
        let mut removed = entries.clone();
        removed.remove(1);
        assert!(!verify("r1", &removed, &head, 4).valid, "middle removed");
    }
}
