//! Versioned schema migrations keyed on `PRAGMA user_version`. Each migration is applied once, in
//! order, and all pending ones run in a single transaction: a crash mid-upgrade leaves the old
//! schema intact. Never edit a released migration; add a new one.

use rusqlite::Connection;

use crate::error::{Error, Result};

const MIGRATIONS: &[&str] = &[
    // 1: the backbone: key/value metadata and one cursor per change feed.
    r#"
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY NOT NULL,
        value TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE feed_cursors (
        feed       TEXT PRIMARY KEY NOT NULL,
        cursor     TEXT NOT NULL,
        synced_at  INTEGER NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 2: the offline procedure catalog, with a diacritic-folded search column. The form (`body`,
    // several KiB) is the last column of a rowid table so that listing and searching, which read
    // only the columns before it, never walk its overflow pages.
    r#"
    CREATE TABLE procedures (
        code        TEXT PRIMARY KEY NOT NULL,
        kind        TEXT NOT NULL,
        name_vi     TEXT NOT NULL,
        name_en     TEXT NOT NULL,
        agency_code TEXT NOT NULL,
        fee_vnd     INTEGER NOT NULL,
        processing_days INTEGER NOT NULL,
        name_folded TEXT NOT NULL,
        search_text TEXT NOT NULL,
        withdrawn   INTEGER NOT NULL DEFAULT 0,
        feed_seq    INTEGER NOT NULL,
        body        TEXT NOT NULL
    );
    CREATE INDEX procedures_listing ON procedures(withdrawn, name_folded);
    "#,
    // 3: identity. The tokens are sealed (AES-256-GCM) under a data key that only the platform
    // keystore can unwrap; what the screens show offline (name, masked ID, roles) is in clear.
    r#"
    CREATE TABLE session (
        id               INTEGER PRIMARY KEY CHECK (id = 1),
        account_id       TEXT NOT NULL,
        account_json     TEXT NOT NULL,
        profile_seq      INTEGER NOT NULL DEFAULT 0,
        state            TEXT NOT NULL CHECK (state IN ('active', 'login_required')),
        ended_reason     TEXT,
        sealed_tokens    BLOB,
        access_expires_at INTEGER NOT NULL,
        refresh_due_at   INTEGER NOT NULL,
        updated_at       INTEGER NOT NULL
    );
    CREATE TABLE pending_login (
        id              INTEGER PRIMARY KEY CHECK (id = 1),
        state           TEXT NOT NULL,
        redirect_uri    TEXT NOT NULL,
        sealed_verifier BLOB NOT NULL,
        created_at      INTEGER NOT NULL
    );
    "#,
    // 4: the one outbox (DESIGN §1), and case drafts with per-field clocks for merging.
    r#"
    CREATE TABLE outbox (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        idempotency_key TEXT NOT NULL UNIQUE,
        kind            TEXT NOT NULL,
        subject         TEXT NOT NULL,
        payload         TEXT NOT NULL,
        state           TEXT NOT NULL CHECK (state IN ('waiting', 'sending', 'sent', 'rejected')),
        result          TEXT,
        rejection       TEXT,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        last_error      TEXT,
        created_at      INTEGER NOT NULL,
        updated_at      INTEGER NOT NULL
    );
    CREATE INDEX outbox_due ON outbox(state, next_attempt_at);
    CREATE INDEX outbox_subject ON outbox(subject);
    CREATE TABLE drafts (
        id             TEXT PRIMARY KEY NOT NULL,
        procedure_code TEXT NOT NULL,
        title          TEXT NOT NULL,
        state          TEXT NOT NULL CHECK (state IN ('editing', 'submitting', 'submitted', 'rejected')),
        case_id        TEXT,
        case_number    TEXT,
        rejection      TEXT,
        deleted_at     INTEGER,
        created_at     INTEGER NOT NULL,
        updated_at     INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX drafts_listing ON drafts(deleted_at, updated_at);
    CREATE TABLE draft_fields (
        draft_id TEXT NOT NULL REFERENCES drafts(id) ON DELETE CASCADE,
        field_id  TEXT NOT NULL,
        value     TEXT,
        hlc       TEXT NOT NULL,
        edited_at INTEGER NOT NULL,
        PRIMARY KEY (draft_id, field_id)
    ) WITHOUT ROWID;
    CREATE TABLE cases (
        id             TEXT PRIMARY KEY NOT NULL,
        case_number    TEXT NOT NULL,
        procedure_code TEXT NOT NULL,
        draft_id       TEXT,
        status         TEXT NOT NULL,
        due_date       TEXT NOT NULL,
        received_at    INTEGER NOT NULL,
        body           TEXT NOT NULL,
        feed_seq       INTEGER NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 5: attachments: content-addressed files under `<data_dir>/blobs/`, how much of each the
    // server has acknowledged (uploads resume from there), and which draft uses which file.
    r#"
    CREATE TABLE blobs (
        sha256         TEXT PRIMARY KEY NOT NULL,
        size           INTEGER NOT NULL,
        media_type     TEXT NOT NULL,
        uploaded_bytes INTEGER NOT NULL DEFAULT 0,
        uploaded_at    INTEGER
    ) WITHOUT ROWID;
    CREATE TABLE draft_attachments (
        draft_id TEXT NOT NULL REFERENCES drafts(id) ON DELETE CASCADE,
        rule_id  TEXT NOT NULL,
        sha256   TEXT NOT NULL REFERENCES blobs(sha256),
        added_at INTEGER NOT NULL,
        PRIMARY KEY (draft_id, rule_id, sha256)
    ) WITHOUT ROWID;
    CREATE INDEX draft_attachments_blob ON draft_attachments(sha256);
    "#,
    // 6: a hotline report may be sent anonymously (the agency never sees who sent it).
    r#"
    ALTER TABLE drafts ADD COLUMN anonymous INTEGER NOT NULL DEFAULT 0;
    "#,
    // 7: drafts across devices: the stamps of the title and of the deletion (empty: never set),
    // and whether an unbuilt `draft.backup` command waits in the outbox (so autosave queues at
    // most one).
    r#"
    ALTER TABLE drafts ADD COLUMN title_hlc TEXT NOT NULL DEFAULT '';
    ALTER TABLE drafts ADD COLUMN deleted_hlc TEXT NOT NULL DEFAULT '';
    ALTER TABLE drafts ADD COLUMN backup_pending INTEGER NOT NULL DEFAULT 0;
    "#,
    // 8: a metro gate's durable tap log (every decision, and peers' accepted taps) and the
    // trust material it keeps across restarts (operator keys, signed revocation list).
    r#"
    CREATE TABLE gate_taps (
        id             INTEGER PRIMARY KEY,
        gate_id        TEXT NOT NULL,
        station_id     INTEGER NOT NULL,
        direction      TEXT NOT NULL,
        ticket_id      BLOB,
        decision       TEXT NOT NULL,
        slot_start     INTEGER,
        consumed_until INTEGER,
        tapped_at      INTEGER NOT NULL,
        source         TEXT NOT NULL,
        upload_batch   TEXT,
        uploaded       INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX gate_taps_recent ON gate_taps(tapped_at) WHERE decision = 'accept';
    CREATE INDEX gate_taps_consumed ON gate_taps(consumed_until) WHERE consumed_until IS NOT NULL;
    CREATE INDEX gate_taps_to_upload ON gate_taps(id) WHERE upload_batch IS NULL;
    CREATE INDEX gate_taps_batch ON gate_taps(upload_batch);
    CREATE TABLE gate_trust (
        name  TEXT PRIMARY KEY NOT NULL,
        value BLOB NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 9: one phone, several residents over time (a shared family phone, a new owner): a command
    // belongs to the account logged in when it was queued (NULL: queued logged out, taken by the
    // next login) and is only sent with that account's tokens; a file counts as uploaded only
    // for the account that uploaded it, as the server keeps files per resident.
    r#"
    ALTER TABLE outbox ADD COLUMN account_id TEXT;
    UPDATE outbox SET account_id = (SELECT account_id FROM session WHERE id = 1);
    ALTER TABLE blobs ADD COLUMN uploaded_for TEXT;
    UPDATE blobs SET uploaded_for = (SELECT account_id FROM session WHERE id = 1) WHERE uploaded_at IS NOT NULL;
    "#,
    // 10: the rider's tickets as issued (the signed statement, kept for showing codes
    // offline; its fields in columns for listing; revocation), and purchases waiting in the outbox.
    r#"
    CREATE TABLE tickets (
        id             TEXT PRIMARY KEY NOT NULL,
        account_id     TEXT,
        statement      BLOB NOT NULL,
        product        INTEGER NOT NULL,
        concession     INTEGER,
        origin         INTEGER,
        destination    INTEGER,
        fare_vnd       INTEGER NOT NULL,
        valid_from     INTEGER NOT NULL,
        valid_until    INTEGER NOT NULL,
        device_key     BLOB NOT NULL,
        received_at    INTEGER NOT NULL,
        revoked_at     INTEGER,
        revoked_reason TEXT
    ) WITHOUT ROWID;
    CREATE INDEX tickets_by_account ON tickets(account_id, valid_until);
    CREATE TABLE ticket_purchases (
        id          TEXT PRIMARY KEY NOT NULL,
        account_id  TEXT,
        product     INTEGER NOT NULL,
        origin      INTEGER,
        destination INTEGER,
        state       TEXT NOT NULL CHECK (state IN ('waiting', 'issued', 'refused')),
        ticket_id   TEXT,
        created_at  INTEGER NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 11: signature requests for the resident (from the account feed), with what this phone did:
    // the document fetched and checked (its file under signature-documents/), the decision queued
    // in the outbox, the server's refusal of it.
    r#"
    CREATE TABLE signature_requests (
        id              TEXT PRIMARY KEY NOT NULL,
        account_id      TEXT,
        agency_code     TEXT NOT NULL,
        title           TEXT NOT NULL,
        summary         TEXT NOT NULL,
        purpose         TEXT NOT NULL,
        document_sha256 TEXT NOT NULL,
        document_size   INTEGER NOT NULL,
        content_type    TEXT NOT NULL,
        document_link   TEXT,
        created_at      INTEGER NOT NULL,
        expires_at      INTEGER NOT NULL,
        state           TEXT NOT NULL CHECK (state IN ('pending', 'signed', 'declined', 'expired', 'cancelled')),
        state_reason    TEXT,
        document_file   TEXT,
        local_decision  TEXT CHECK (local_decision IN ('approve', 'decline')),
        decline_reason  TEXT,
        decided_at      INTEGER,
        decision_key    TEXT,
        refusal_code    TEXT,
        feed_seq        INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    CREATE INDEX signature_requests_by_account ON signature_requests(account_id, state, created_at);
    "#,
    // 12: the identity credential of the logged-in resident, sealed under the session's data key
    // (statement, salts and values: personal data), and the city's public keys that verify
    // credentials offline at a front desk.
    r#"
    CREATE TABLE identity_credential (
        id          INTEGER PRIMARY KEY CHECK (id = 1),
        account_id  TEXT NOT NULL,
        sealed      BLOB NOT NULL,
        expires_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
    );
    CREATE TABLE credential_keys (
        key_id      TEXT PRIMARY KEY NOT NULL,
        public_key  BLOB NOT NULL,
        fetched_at  INTEGER NOT NULL
    ) WITHOUT ROWID;
    "#,
];

pub const LATEST_VERSION: i64 = MIGRATIONS.len() as i64;

pub(crate) fn migrate(conn: &mut Connection) -> Result<()> {
    migrate_to(conn, LATEST_VERSION)
}

/// Applies migrations up to `target` (tests use it to build every older schema).
pub fn migrate_to(conn: &mut Connection, target: i64) -> Result<()> {
    let ctx = "migrating the schema";
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(Error::db(ctx))?;
    let current: i64 =
        tx.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(Error::db(ctx))?;
    if current < 0 {
        return Err(Error::BadData(format!("database schema version {current} is invalid")));
    }
    if current > LATEST_VERSION {
        return Err(Error::SchemaTooNew { found: current, supported: LATEST_VERSION });
    }
    if current >= target {
        return Ok(());
    }
    for sql in &MIGRATIONS[current as usize..target as usize] {
        tx.execute_batch(sql).map_err(Error::db(ctx))?;
    }
    tx.pragma_update(None, "user_version", target).map_err(Error::db(ctx))?;
    tx.commit().map_err(Error::db(ctx))
}

/// The schema as SQLite stores it, normalised, for comparing databases.
pub fn schema_dump(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT type || ' ' || name || ' ' || coalesce(sql, '') FROM sqlite_master \
         WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name",
    )?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    rows.map(|r| r.map(|s| s.split_whitespace().collect::<Vec<_>>().join(" ")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrading_from_every_older_version_equals_a_fresh_schema() {
        let dir = tempfile::tempdir().unwrap();
        let mut fresh = Connection::open(dir.path().join("fresh.db")).unwrap();
        migrate(&mut fresh).unwrap();
        let want = schema_dump(&fresh).unwrap();
        assert!(!want.is_empty());
        for start in 0..LATEST_VERSION {
            let mut old = Connection::open(dir.path().join(format!("v{start}.db"))).unwrap();
            migrate_to(&mut old, start).unwrap();
            if start >= 1 {
                old.execute(
                    "INSERT INTO feed_cursors(feed, cursor, synced_at) VALUES ('public', '1.7', 1)",
                    [],
                )
                .unwrap();
            }
            migrate(&mut old).unwrap();
            assert_eq!(schema_dump(&old).unwrap(), want, "upgrade from version {start}");
            let v: i64 = old.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
            assert_eq!(v, LATEST_VERSION);
            if start >= 1 {
                let cursor: String = old
                    .query_row("SELECT cursor FROM feed_cursors WHERE feed='public'", [], |r| {
                        r.get(0)
                    })
                    .unwrap();
                assert_eq!(cursor, "1.7", "data survives the upgrade from {start}");
            }
        }
    }

    #[test]
    fn migrating_twice_is_a_no_op() {
        let mut c = Connection::open_in_memory().unwrap();
        migrate(&mut c).unwrap();
        let before = schema_dump(&c).unwrap();
        migrate(&mut c).unwrap();
        assert_eq!(schema_dump(&c).unwrap(), before);
    }
}
