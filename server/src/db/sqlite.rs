//! SQLite backend: a small pool of connections used from blocking threads. Writers take the lock
//! up front (`BEGIN IMMEDIATE`) so two writers never deadlock on upgrade.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, Transaction, TransactionBehavior};
use tokio::sync::Semaphore;

use super::{DbError, DbResult};

const POOL_SIZE: usize = 4;

const MIGRATIONS: &[&str] = &[
    // 1: the change feed and the catalog.
    r#"
    CREATE TABLE feed_heads (
        feed TEXT PRIMARY KEY NOT NULL,
        head INTEGER NOT NULL
    );
    CREATE TABLE changes (
        feed       TEXT NOT NULL,
        seq        INTEGER NOT NULL,
        kind       TEXT NOT NULL,
        key        TEXT NOT NULL,
        data       TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (feed, seq)
    );
    CREATE TABLE procedures (
        code       TEXT PRIMARY KEY NOT NULL,
        body       TEXT NOT NULL,
        withdrawn  INTEGER NOT NULL DEFAULT 0,
        updated_at INTEGER NOT NULL
    );
    "#,
    // 2: identity (docs/identity.md): accounts, devices, logins, codes, token families, refresh
    // tokens, the DPoP replay store and the server's own keys.
    r#"
    CREATE TABLE accounts (
        id           TEXT PRIMARY KEY NOT NULL,
        national_id  TEXT NOT NULL UNIQUE,
        display_name TEXT NOT NULL,
        profile      TEXT NOT NULL DEFAULT '',
        created_at   INTEGER NOT NULL
    );
    CREATE TABLE devices (
        account_id TEXT NOT NULL REFERENCES accounts(id),
        jkt        TEXT NOT NULL,
        public_jwk TEXT NOT NULL,
        first_seen INTEGER NOT NULL,
        last_seen  INTEGER NOT NULL,
        PRIMARY KEY (account_id, jkt)
    );
    CREATE TABLE login_transactions (
        id               BLOB PRIMARY KEY NOT NULL,
        app_state        TEXT NOT NULL,
        app_challenge    TEXT NOT NULL,
        app_redirect_uri TEXT NOT NULL,
        nonce            TEXT NOT NULL,
        pkce_verifier    TEXT NOT NULL,
        created_at       INTEGER NOT NULL,
        used_at          INTEGER
    );
    CREATE TABLE app_codes (
        hash         BLOB PRIMARY KEY NOT NULL,
        account_id   TEXT NOT NULL REFERENCES accounts(id),
        challenge    TEXT NOT NULL,
        redirect_uri TEXT NOT NULL,
        expires_at   INTEGER NOT NULL,
        used_at      INTEGER,
        family_id    TEXT
    );
    CREATE TABLE token_families (
        id             TEXT PRIMARY KEY NOT NULL,
        account_id     TEXT NOT NULL REFERENCES accounts(id),
        jkt            TEXT NOT NULL,
        created_at     INTEGER NOT NULL,
        revoked_at     INTEGER,
        revoked_reason TEXT
    );
    CREATE INDEX token_families_account ON token_families(account_id);
    CREATE TABLE refresh_tokens (
        hash           BLOB PRIMARY KEY NOT NULL,
        family_id      TEXT NOT NULL REFERENCES token_families(id),
        created_at     INTEGER NOT NULL,
        expires_at     INTEGER NOT NULL,
        used_at        INTEGER,
        successor_hash BLOB,
        revoked_at     INTEGER
    );
    CREATE INDEX refresh_tokens_family ON refresh_tokens(family_id);
    CREATE TABLE dpop_jtis (
        key        BLOB PRIMARY KEY NOT NULL,
        expires_at INTEGER NOT NULL
    );
    CREATE INDEX dpop_jtis_expiry ON dpop_jtis(expires_at);
    CREATE TABLE signing_keys (
        purpose    TEXT NOT NULL,
        generation INTEGER NOT NULL,
        secret     BLOB NOT NULL,
        public_key BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (purpose, generation)
    );
    "#,
    // 3: cases, their timeline, and the idempotency keys of commands (DESIGN §1).
    r#"
    CREATE TABLE idempotency_keys (
        account_id   TEXT NOT NULL,
        key          TEXT NOT NULL,
        fingerprint  BLOB NOT NULL,
        status       INTEGER,
        response     TEXT,
        locked_until INTEGER NOT NULL,
        created_at   INTEGER NOT NULL,
        PRIMARY KEY (account_id, key)
    );
    CREATE TABLE counters (
        name  TEXT PRIMARY KEY NOT NULL,
        value INTEGER NOT NULL
    );
    CREATE TABLE cases (
        id             TEXT PRIMARY KEY NOT NULL,
        number         TEXT NOT NULL UNIQUE,
        account_id     TEXT NOT NULL REFERENCES accounts(id),
        procedure_code TEXT NOT NULL,
        agency_code    TEXT NOT NULL,
        draft_id       TEXT NOT NULL,
        field_values   TEXT NOT NULL,
        status         TEXT NOT NULL,
        received_at    INTEGER NOT NULL,
        due_date       TEXT NOT NULL,
        updated_at     INTEGER NOT NULL
    );
    CREATE INDEX cases_account ON cases(account_id);
    CREATE INDEX cases_agency ON cases(agency_code, status, received_at);
    CREATE TABLE case_events (
        case_id TEXT NOT NULL REFERENCES cases(id),
        at      INTEGER NOT NULL,
        status  TEXT NOT NULL,
        message TEXT
    );
    CREATE INDEX case_events_case ON case_events(case_id, at);
    "#,
    // 4: cases after receipt: anonymous hotline reports (the agency never sees the sender), the
    // fields an agency asks for, the result document; an agency's newest-first list.
    r#"
    ALTER TABLE cases ADD COLUMN anonymous INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE cases ADD COLUMN requested_fields TEXT;
    ALTER TABLE cases ADD COLUMN result_document TEXT;
    CREATE INDEX cases_agency_recent ON cases(agency_code, received_at, id);
    "#,
    // 5: attachments. Each resident uploads their own copy of a file (keyed by account and
    // SHA-256), in chunks stored in the database so every instance can serve and finish it; a
    // case records the files it was submitted with.
    r#"
    CREATE TABLE blobs (
        account_id TEXT NOT NULL REFERENCES accounts(id),
        sha256     TEXT NOT NULL,
        size       INTEGER NOT NULL,
        media_type TEXT NOT NULL,
        received   INTEGER NOT NULL DEFAULT 0,
        complete   INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (account_id, sha256)
    );
    CREATE TABLE blob_chunks (
        account_id TEXT NOT NULL,
        sha256     TEXT NOT NULL,
        start_byte INTEGER NOT NULL,
        data       BLOB NOT NULL,
        PRIMARY KEY (account_id, sha256, start_byte)
    );
    CREATE TABLE case_attachments (
        case_id TEXT NOT NULL REFERENCES cases(id),
        rule_id TEXT NOT NULL,
        sha256  TEXT NOT NULL,
        PRIMARY KEY (case_id, rule_id, sha256)
    );
    "#,
    // 6: drafts backed up from a resident's devices, merged per field by hybrid logical clock
    // (stamps as their fixed-width text; '' for a title or deletion never stamped).
    r#"
    CREATE TABLE server_drafts (
        draft_id       TEXT PRIMARY KEY NOT NULL,
        account_id     TEXT NOT NULL REFERENCES accounts(id),
        procedure_code TEXT NOT NULL,
        title          TEXT NOT NULL,
        title_hlc      TEXT NOT NULL,
        deleted        INTEGER NOT NULL DEFAULT 0,
        deleted_hlc    TEXT NOT NULL,
        updated_at     INTEGER NOT NULL
    );
    CREATE TABLE server_draft_fields (
        draft_id TEXT NOT NULL REFERENCES server_drafts(draft_id),
        field_id TEXT NOT NULL,
        value    TEXT,
        hlc      TEXT NOT NULL,
        PRIMARY KEY (draft_id, field_id)
    );
    "#,
    // One draft makes at most one case per resident, whichever device submits it.
    r#"
    CREATE UNIQUE INDEX cases_account_draft ON cases(account_id, draft_id);
    "#,
    // Tickets (issue 5): verified identity attributes (concessions), issued tickets, the demo
    // payment provider's book, revocations and gate taps.
    r#"
    ALTER TABLE accounts ADD COLUMN verified_attributes TEXT NOT NULL DEFAULT '{}';
    CREATE TABLE tickets (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        id          TEXT NOT NULL UNIQUE,
        account_id  TEXT NOT NULL REFERENCES accounts(id),
        product     INTEGER NOT NULL,
        concession  TEXT,
        origin      INTEGER,
        destination INTEGER,
        fare_vnd    INTEGER NOT NULL,
        valid_from  INTEGER NOT NULL,
        valid_until INTEGER NOT NULL,
        key_id      TEXT NOT NULL,
        statement   TEXT NOT NULL,
        charge_id   TEXT,
        created_at  INTEGER NOT NULL
    );
    CREATE INDEX tickets_account ON tickets(account_id, seq);
    CREATE TABLE demo_payment_charges (
        id              TEXT PRIMARY KEY NOT NULL,
        account_id      TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        amount_vnd      INTEGER NOT NULL,
        created_at      INTEGER NOT NULL,
        refunded_at     INTEGER,
        UNIQUE (account_id, idempotency_key)
    );
    CREATE TABLE ticket_revocations (
        ticket_id   TEXT PRIMARY KEY NOT NULL,
        account_id  TEXT NOT NULL,
        reason      TEXT NOT NULL,
        valid_until INTEGER NOT NULL,
        revoked_at  INTEGER NOT NULL
    );
    CREATE INDEX ticket_revocations_valid ON ticket_revocations(valid_until);
    CREATE TABLE ticket_taps (
        ticket_id   TEXT NOT NULL,
        station     INTEGER NOT NULL,
        gate        TEXT NOT NULL,
        direction   TEXT NOT NULL,
        at          INTEGER NOT NULL,
        decision    TEXT NOT NULL,
        operator_id TEXT NOT NULL,
        received_at INTEGER NOT NULL,
        PRIMARY KEY (ticket_id, gate, at, direction)
    );
    "#,
    // Signature requests (issue 6): device keys revocable by their resident, requests with their
    // hash-chained audit trail (the row keeps the newest hash and the count), and the signatures
    // of submitted cases (a case without a row was submitted unsigned).
    r#"
    ALTER TABLE devices ADD COLUMN revoked_at INTEGER;
    CREATE TABLE signature_requests (
        id                     TEXT PRIMARY KEY NOT NULL,
        agency_code            TEXT NOT NULL,
        account_id             TEXT NOT NULL REFERENCES accounts(id),
        created_by             TEXT NOT NULL,
        title                  TEXT NOT NULL,
        summary                TEXT NOT NULL,
        purpose                TEXT NOT NULL,
        document_sha256        TEXT NOT NULL,
        document_size          INTEGER NOT NULL,
        document_type          TEXT NOT NULL,
        document_link          TEXT,
        document_owner         TEXT,
        created_at             INTEGER NOT NULL,
        expires_at             INTEGER NOT NULL,
        state                  TEXT NOT NULL,
        cancelled_at           INTEGER,
        cancel_reason          TEXT,
        decided_at             INTEGER,
        decision               BLOB,
        decision_signed_sha256 BLOB,
        decision_key_id        BLOB,
        decision_response      TEXT,
        audit_head             BLOB NOT NULL,
        audit_len              INTEGER NOT NULL
    );
    CREATE INDEX signature_requests_agency ON signature_requests(agency_code, created_at, id);
    CREATE INDEX signature_requests_account ON signature_requests(account_id);
    CREATE TABLE signature_audit (
        request_id TEXT NOT NULL,
        seq        INTEGER NOT NULL,
        kind       TEXT NOT NULL,
        at         INTEGER NOT NULL,
        actor      TEXT NOT NULL,
        detail     TEXT NOT NULL,
        prev_hash  BLOB NOT NULL,
        hash       BLOB NOT NULL,
        PRIMARY KEY (request_id, seq)
    );
    CREATE TABLE case_signatures (
        case_id    TEXT PRIMARY KEY NOT NULL,
        account_id TEXT NOT NULL,
        statement  BLOB NOT NULL,
        key_id     BLOB NOT NULL,
        signed_at  INTEGER NOT NULL,
        stored_at  INTEGER NOT NULL
    );
    "#,
];

#[derive(Clone)]
pub struct SqlitePool {
    conns: Arc<Mutex<Vec<Connection>>>,
    permits: Arc<Semaphore>,
    path: PathBuf,
}

fn query_error(context: &'static str) -> impl FnOnce(rusqlite::Error) -> DbError {
    move |e| match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) =>
        {
            DbError::Unavailable(format!("sqlite busy while {context}"))
        }
        _ => DbError::Query { context, message: e.to_string() },
    }
}

fn open_connection(path: &Path) -> DbResult<Connection> {
    let conn = Connection::open(path).map_err(query_error("opening the database"))?;
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
        .map_err(|e| DbError::Corrupt(format!("{}: {e}", path.display())))?;
    conn.pragma_update(None, "journal_mode", "WAL").map_err(query_error("configuring"))?;
    conn.pragma_update(None, "synchronous", "NORMAL").map_err(query_error("configuring"))?;
    conn.pragma_update(None, "foreign_keys", "ON").map_err(query_error("configuring"))?;
    conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(query_error("configuring"))?;
    Ok(conn)
}

impl SqlitePool {
    pub async fn open(path: &Path) -> DbResult<SqlitePool> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| DbError::Config(format!("cannot create {}: {e}", dir.display())))?;
        }
        let path_owned = path.to_path_buf();
        let conns = tokio::task::spawn_blocking(move || -> DbResult<Vec<Connection>> {
            let mut first = open_connection(&path_owned)?;
            migrate(&mut first)?;
            let mut conns = vec![first];
            for _ in 1..POOL_SIZE {
                conns.push(open_connection(&path_owned)?);
            }
            Ok(conns)
        })
        .await
        .map_err(|e| DbError::Unavailable(e.to_string()))??;
        Ok(SqlitePool {
            conns: Arc::new(Mutex::new(conns)),
            permits: Arc::new(Semaphore::new(POOL_SIZE)),
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn with_conn<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> DbResult<T> + Send + 'static,
    ) -> DbResult<T> {
        // The permit travels with the blocking task: if the request is dropped mid-query, the
        // connection is still counted as busy until the task gives it back.
        let permit = self.permits.clone().acquire_owned().await.map_err(|e| DbError::Unavailable(e.to_string()))?;
        let conns = self.conns.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let mut conn = conns
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop()
                .ok_or_else(|| DbError::Unavailable("no free sqlite connection".into()))?;
            let result = f(&mut conn);
            conns.lock().unwrap_or_else(|p| p.into_inner()).push(conn);
            result
        })
        .await
        .map_err(|e| DbError::Unavailable(format!("sqlite worker failed: {e}")))?
    }

    pub async fn read<T: Send + 'static>(
        &self,
        context: &'static str,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> DbResult<T> {
        self.with_conn(move |c| f(c).map_err(query_error(context))).await
    }

    /// Runs `f` in one IMMEDIATE transaction, committed only if it returns `Ok`.
    pub async fn write<T: Send + 'static>(
        &self,
        context: &'static str,
        f: impl FnOnce(&Transaction<'_>) -> DbResult<T> + Send + 'static,
    ) -> DbResult<T> {
        self.with_conn(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(query_error(context))?;
            let value = f(&tx)?;
            tx.commit().map_err(query_error(context))?;
            Ok(value)
        })
        .await
    }
}

pub(crate) fn q(context: &'static str) -> impl FnOnce(rusqlite::Error) -> DbError {
    query_error(context)
}

fn migrate(conn: &mut Connection) -> DbResult<()> {
    let ctx = "migrating the schema";
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(q(ctx))?;
    let current: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(q(ctx))?;
    let latest = MIGRATIONS.len() as i64;
    if current < 0 {
        return Err(DbError::Corrupt(format!("negative schema version {current}")));
    }
    if current > latest {
        return Err(DbError::Config(format!(
            "database schema version {current} is newer than this server ({latest})"
        )));
    }
    for sql in &MIGRATIONS[current as usize..] {
        tx.execute_batch(sql).map_err(q(ctx))?;
    }
    tx.pragma_update(None, "user_version", latest).map_err(q(ctx))?;
    tx.commit().map_err(q(ctx))
}
