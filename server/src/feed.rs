//! The one change feed, server side. Every capability appends its changes here, inside the same
//! transaction as the change itself. Positions come from a per-feed head row in the database,
//! bumped with `UPDATE … RETURNING`: the row lock serialises writers of one feed until they
//! commit, so positions are gap-free and become visible in order, whichever server instance wrote
//! them. (A bare database sequence would be unique too, but a reader could see position 7 commit
//! before 6 and skip 6 forever.)

use congdan_core::sync::wire::Change;

use crate::db::{now_millis, postgres, sqlite, Db, DbError, DbResult};

/// The feed everyone may read: catalog and key sets.
pub const PUBLIC: &str = "public";

pub fn append_sqlite(
    tx: &rusqlite::Transaction<'_>,
    feed: &str,
    kind: &str,
    key: &str,
    data: &str,
) -> DbResult<u64> {
    let ctx = "appending to the change feed";
    tx.execute("INSERT INTO feed_heads(feed, head) VALUES (?1, 0) ON CONFLICT(feed) DO NOTHING", [feed])
        .map_err(sqlite::q(ctx))?;
    let seq: i64 = tx
        .query_row("UPDATE feed_heads SET head = head + 1 WHERE feed = ?1 RETURNING head", [feed], |r| {
            r.get(0)
        })
        .map_err(sqlite::q(ctx))?;
    tx.execute(
        "INSERT INTO changes(feed, seq, kind, key, data, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        rusqlite::params![feed, seq, kind, key, data, now_millis()],
    )
    .map_err(sqlite::q(ctx))?;
    Ok(seq as u64)
}

/// A feed whose head row this PostgreSQL transaction holds locked: the only way to append to it.
pub struct LockedFeed<'t, 'c> {
    tx: &'t deadpool_postgres::Transaction<'c>,
    feed: &'t str,
}

/// Takes the feed's head-row lock at the start of a PostgreSQL transaction. Every writer of a
/// feed locks the head first and the rows it changes second, so two writers can never hold
/// each other's locks (no deadlock between an import and a withdraw). Appending needs the
/// returned [`LockedFeed`], so the order cannot be got wrong.
///
/// One statement, prepared once per connection: the upsert creates the head row if needed and,
/// as an update of the existing row otherwise, takes its lock until the transaction ends.
pub async fn lock_pg<'t, 'c>(
    tx: &'t deadpool_postgres::Transaction<'c>,
    feed: &'t str,
) -> DbResult<LockedFeed<'t, 'c>> {
    let ctx = "locking the change feed";
    let stmt = tx
        .prepare_cached(
            "INSERT INTO feed_heads(feed, head) VALUES ($1, 0) \
             ON CONFLICT (feed) DO UPDATE SET head = feed_heads.head RETURNING head",
        )
        .await
        .map_err(postgres::q(ctx))?;
    tx.query_one(&stmt, &[&feed]).await.map_err(postgres::q(ctx))?;
    Ok(LockedFeed { tx, feed })
}

impl LockedFeed<'_, '_> {
    /// Appends one change at the next position (the head row exists and is ours).
    pub async fn append(&self, kind: &str, key: &str, data: &str) -> DbResult<u64> {
        let ctx = "appending to the change feed";
        // Bump the head and write the change in one round trip.
        let stmt = self
            .tx
            .prepare_cached(
                "WITH bumped AS (UPDATE feed_heads SET head = head + 1 WHERE feed = $1 RETURNING head) \
                 INSERT INTO changes(feed, seq, kind, key, data, created_at) \
                 SELECT $1, head, $2, $3, $4, $5 FROM bumped RETURNING seq",
            )
            .await
            .map_err(postgres::q(ctx))?;
        let seq: i64 = self
            .tx
            .query_one(&stmt, &[&self.feed, &kind, &key, &data, &now_millis()])
            .await
            .map_err(postgres::q(ctx))?
            .get(0);
        Ok(seq as u64)
    }
}

/// Up to `limit` changes after `after`, and the feed's head (0 for a feed never written).
pub async fn read_page(db: &Db, feed: &str, after: u64, limit: u32) -> DbResult<(Vec<Change>, u64)> {
    let ctx = "reading the change feed";
    let rows: Vec<(i64, String, String, String)>;
    let head: i64;
    match db {
        Db::Sqlite(pool) => {
            let feed = feed.to_string();
            (rows, head) = pool
                .read(ctx, move |c| {
                    let mut stmt = c.prepare_cached(
                        "SELECT seq, kind, key, data FROM changes WHERE feed = ?1 AND seq > ?2 \
                         ORDER BY seq LIMIT ?3",
                    )?;
                    let rows = stmt
                        .query_map(rusqlite::params![feed, after as i64, limit as i64], |r| {
                            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                        })?
                        .collect::<rusqlite::Result<Vec<(i64, String, String, String)>>>()?;
                    let head: i64 = c
                        .query_row("SELECT head FROM feed_heads WHERE feed = ?1", [&feed], |r| r.get(0))
                        .or_else(|e| match e {
                            rusqlite::Error::QueryReturnedNoRows => Ok(0),
                            e => Err(e),
                        })?;
                    Ok((rows, head))
                })
                .await?;
        }
        Db::Postgres(pool) => {
            let client = pool.client().await?;
            let stmt = client
                .prepare_cached(
                    "SELECT seq, kind, key, data FROM changes WHERE feed = $1 AND seq > $2 \
                     ORDER BY seq LIMIT $3",
                )
                .await
                .map_err(postgres::q(ctx))?;
            rows = client
                .query(&stmt, &[&feed, &(after as i64), &(limit as i64)])
                .await
                .map_err(postgres::q(ctx))?
                .into_iter()
                .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
                .collect();
            head = client
                .query_opt("SELECT head FROM feed_heads WHERE feed = $1", &[&feed])
                .await
                .map_err(postgres::q(ctx))?
                .map(|r| r.get(0))
                .unwrap_or(0);
        }
    }
    let changes = rows
        .into_iter()
        .map(|(seq, kind, key, data)| {
            let data = serde_json::from_str(&data)
                .map_err(|e| DbError::Corrupt(format!("change {seq} in {feed}: {e}")))?;
            Ok(Change { seq: seq as u64, kind, key, data })
        })
        .collect::<DbResult<Vec<_>>>()?;
    Ok((changes, head.max(0) as u64))
}
