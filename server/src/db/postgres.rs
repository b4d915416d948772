//! PostgreSQL backend: a deadpool of tokio-postgres connections. Migrations are serialised across
//! instances by a row lock on `schema_migrations`, so several instances may start at once.

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use super::{now_millis, DbError, DbResult};

const MIGRATIONS: &[&str] = &[
    // 1: the change feed and the catalog.
    r#"
    CREATE TABLE feed_heads (
        feed TEXT PRIMARY KEY,
        head BIGINT NOT NULL
    );
    CREATE TABLE changes (
        feed       TEXT NOT NULL,
        seq        BIGINT NOT NULL,
        kind       TEXT NOT NULL,
        key        TEXT NOT NULL,
        data       TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        PRIMARY KEY (feed, seq)
    );
    CREATE TABLE procedures (
        code       TEXT PRIMARY KEY,
        body       TEXT NOT NULL,
        withdrawn  BOOLEAN NOT NULL DEFAULT FALSE,
        updated_at BIGINT NOT NULL
    );
    "#,
    // 2: identity (docs/identity.md): accounts, devices, logins, codes, token families, refresh
    // tokens, the DPoP replay store and the server's own keys.
    r#"
    CREATE TABLE accounts (
        id           TEXT PRIMARY KEY,
        national_id  TEXT NOT NULL UNIQUE,
        display_name TEXT NOT NULL,
        profile      TEXT NOT NULL DEFAULT '',
        created_at   BIGINT NOT NULL
    );
    CREATE TABLE devices (
        account_id TEXT NOT NULL REFERENCES accounts(id),
        jkt        TEXT NOT NULL,
        public_jwk TEXT NOT NULL,
        first_seen BIGINT NOT NULL,
        last_seen  BIGINT NOT NULL,
        PRIMARY KEY (account_id, jkt)
    );
    CREATE TABLE login_transactions (
        id               BYTEA PRIMARY KEY,
        app_state        TEXT NOT NULL,
        app_challenge    TEXT NOT NULL,
        app_redirect_uri TEXT NOT NULL,
        nonce            TEXT NOT NULL,
        pkce_verifier    TEXT NOT NULL,
        created_at       BIGINT NOT NULL,
        used_at          BIGINT
    );
    CREATE TABLE app_codes (
        hash         BYTEA PRIMARY KEY,
        account_id   TEXT NOT NULL REFERENCES accounts(id),
        challenge    TEXT NOT NULL,
        redirect_uri TEXT NOT NULL,
        expires_at   BIGINT NOT NULL,
        used_at      BIGINT,
        family_id    TEXT
    );
    CREATE TABLE token_families (
        id             TEXT PRIMARY KEY,
        account_id     TEXT NOT NULL REFERENCES accounts(id),
        jkt            TEXT NOT NULL,
        created_at     BIGINT NOT NULL,
        revoked_at     BIGINT,
        revoked_reason TEXT
    );
    CREATE INDEX token_families_account ON token_families(account_id);
    CREATE TABLE refresh_tokens (
        hash           BYTEA PRIMARY KEY,
        family_id      TEXT NOT NULL REFERENCES token_families(id),
        created_at     BIGINT NOT NULL,
        expires_at     BIGINT NOT NULL,
        used_at        BIGINT,
        successor_hash BYTEA,
        revoked_at     BIGINT
    );
    CREATE INDEX refresh_tokens_family ON refresh_tokens(family_id);
    CREATE TABLE dpop_jtis (
        key        BYTEA PRIMARY KEY,
        expires_at BIGINT NOT NULL
    );
    CREATE INDEX dpop_jtis_expiry ON dpop_jtis(expires_at);
    CREATE TABLE signing_keys (
        purpose    TEXT NOT NULL,
        generation BIGINT NOT NULL,
        secret     BYTEA NOT NULL,
        public_key BYTEA NOT NULL,
        created_at BIGINT NOT NULL,
        PRIMARY KEY (purpose, generation)
    );
    "#,
    // 3: cases, their timeline, and the idempotency keys of commands (DESIGN §1). Case numbers
    // come from a sequence: unique across instances without serialising them.
    r#"
    CREATE TABLE idempotency_keys (
        account_id   TEXT NOT NULL,
        key          TEXT NOT NULL,
        fingerprint  BYTEA NOT NULL,
        status       INTEGER,
        response     TEXT,
        locked_until BIGINT NOT NULL,
        created_at   BIGINT NOT NULL,
        PRIMARY KEY (account_id, key)
    );
    CREATE SEQUENCE case_number_seq;
    CREATE TABLE cases (
        id             TEXT PRIMARY KEY,
        number         TEXT NOT NULL UNIQUE,
        account_id     TEXT NOT NULL REFERENCES accounts(id),
        procedure_code TEXT NOT NULL,
        agency_code    TEXT NOT NULL,
        draft_id       TEXT NOT NULL,
        field_values   TEXT NOT NULL,
        status         TEXT NOT NULL,
        received_at    BIGINT NOT NULL,
        due_date       TEXT NOT NULL,
        updated_at     BIGINT NOT NULL
    );
    CREATE INDEX cases_account ON cases(account_id);
    CREATE INDEX cases_agency ON cases(agency_code, status, received_at);
    CREATE TABLE case_events (
        case_id TEXT NOT NULL REFERENCES cases(id),
        at      BIGINT NOT NULL,
        status  TEXT NOT NULL,
        message TEXT
    );
    CREATE INDEX case_events_case ON case_events(case_id, at);
    "#,
    // 4: cases after receipt: anonymous hotline reports (the agency never sees the sender), the
    // fields an agency asks for, the result document; an agency's newest-first list.
    r#"
    ALTER TABLE cases ADD COLUMN anonymous BOOLEAN NOT NULL DEFAULT FALSE;
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
        size       BIGINT NOT NULL,
        media_type TEXT NOT NULL,
        received   BIGINT NOT NULL DEFAULT 0,
        complete   BOOLEAN NOT NULL DEFAULT FALSE,
        created_at BIGINT NOT NULL,
        PRIMARY KEY (account_id, sha256)
    );
    CREATE TABLE blob_chunks (
        account_id TEXT NOT NULL,
        sha256     TEXT NOT NULL,
        start_byte BIGINT NOT NULL,
        data       BYTEA NOT NULL,
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
        deleted        BOOLEAN NOT NULL DEFAULT FALSE,
        deleted_hlc    TEXT NOT NULL,
        updated_at     BIGINT NOT NULL
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
        seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id          TEXT NOT NULL UNIQUE,
        account_id  TEXT NOT NULL REFERENCES accounts(id),
        product     BIGINT NOT NULL,
        concession  TEXT,
        origin      BIGINT,
        destination BIGINT,
        fare_vnd    BIGINT NOT NULL,
        valid_from  BIGINT NOT NULL,
        valid_until BIGINT NOT NULL,
        key_id      TEXT NOT NULL,
        statement   TEXT NOT NULL,
        charge_id   TEXT,
        created_at  BIGINT NOT NULL
    );
    CREATE INDEX tickets_account ON tickets(account_id, seq);
    CREATE TABLE demo_payment_charges (
        id              TEXT PRIMARY KEY,
        account_id      TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        amount_vnd      BIGINT NOT NULL,
        created_at      BIGINT NOT NULL,
        refunded_at     BIGINT,
        UNIQUE (account_id, idempotency_key)
    );
    CREATE TABLE ticket_revocations (
        ticket_id   TEXT PRIMARY KEY,
        account_id  TEXT NOT NULL,
        reason      TEXT NOT NULL,
        valid_until BIGINT NOT NULL,
        revoked_at  BIGINT NOT NULL
    );
    CREATE INDEX ticket_revocations_valid ON ticket_revocations(valid_until);
    CREATE TABLE ticket_taps (
        ticket_id   TEXT NOT NULL,
        station     BIGINT NOT NULL,
        gate        TEXT NOT NULL,
        direction   TEXT NOT NULL,
        at          BIGINT NOT NULL,
        decision    TEXT NOT NULL,
        operator_id TEXT NOT NULL,
        received_at BIGINT NOT NULL,
        PRIMARY KEY (ticket_id, gate, at, direction)
    );
    "#,
    // Signature requests (issue 6): device keys revocable by their resident, requests with their
    // hash-chained audit trail (the row keeps the newest hash and the count), and the signatures
    // of submitted cases (a case without a row was submitted unsigned).
    r#"
    ALTER TABLE devices ADD COLUMN revoked_at BIGINT;
    CREATE TABLE signature_requests (
        id                     TEXT PRIMARY KEY NOT NULL,
        agency_code            TEXT NOT NULL,
        account_id             TEXT NOT NULL REFERENCES accounts(id),
        created_by             TEXT NOT NULL,
        title                  TEXT NOT NULL,
        summary                TEXT NOT NULL,
        purpose                TEXT NOT NULL,
        document_sha256        TEXT NOT NULL,
        document_size          BIGINT NOT NULL,
        document_type          TEXT NOT NULL,
        document_link          TEXT,
        document_owner         TEXT,
        created_at             BIGINT NOT NULL,
        expires_at             BIGINT NOT NULL,
        state                  TEXT NOT NULL,
        cancelled_at           BIGINT,
        cancel_reason          TEXT,
        decided_at             BIGINT,
        decision               BYTEA,
        decision_signed_sha256 BYTEA,
        decision_key_id        BYTEA,
        decision_response      TEXT,
        audit_head             BYTEA NOT NULL,
        audit_len              BIGINT NOT NULL
    );
    CREATE INDEX signature_requests_agency ON signature_requests(agency_code, created_at, id);
    CREATE INDEX signature_requests_account ON signature_requests(account_id);
    CREATE TABLE signature_audit (
        request_id TEXT NOT NULL,
        seq        BIGINT NOT NULL,
        kind       TEXT NOT NULL,
        at         BIGINT NOT NULL,
        actor      TEXT NOT NULL,
        detail     TEXT NOT NULL,
        prev_hash  BYTEA NOT NULL,
        hash       BYTEA NOT NULL,
        PRIMARY KEY (request_id, seq)
    );
    CREATE TABLE case_signatures (
        case_id    TEXT PRIMARY KEY NOT NULL,
        account_id TEXT NOT NULL,
        statement  BYTEA NOT NULL,
        key_id     BYTEA NOT NULL,
        signed_at  BIGINT NOT NULL,
        stored_at  BIGINT NOT NULL
    );
    "#,
];

#[derive(Clone)]
pub struct PgPool {
    pool: Pool,
}

/// A tokio-postgres error without connection details (the URL may hold a password).
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}

pub(crate) fn q(context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> DbError {
    move |e| {
        if e.is_closed() || e.as_db_error().is_none() {
            DbError::Unavailable(format!("{context}: {}", describe(&e)))
        } else {
            DbError::Query { context, message: describe(&e) }
        }
    }
}

impl PgPool {
    pub async fn connect(url: &str) -> DbResult<PgPool> {
        let config: tokio_postgres::Config =
            url.parse().map_err(|_| DbError::Config("unreadable postgres URL".into()))?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let pool = Pool::builder(manager)
            .max_size(16)
            .build()
            .map_err(|e| DbError::Config(e.to_string()))?;
        let pg = PgPool { pool };
        pg.migrate().await?;
        Ok(pg)
    }

    pub async fn client(&self) -> DbResult<Object> {
        self.pool.get().await.map_err(|e| DbError::Unavailable(format!("postgres pool: {e}")))
    }

    async fn migrate(&self) -> DbResult<()> {
        let ctx = "migrating the schema";
        let mut client = self.client().await?;
        // Two instances creating the table at once can collide in the catalog; the loser retries.
        for attempt in 0..3 {
            match client
                .batch_execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations \
                     (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
                )
                .await
            {
                Ok(()) => break,
                Err(e) if attempt < 2 => {
                    tracing::debug!("retrying schema_migrations creation: {}", describe(&e));
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => return Err(q(ctx)(e)),
            }
        }
        let tx = client.transaction().await.map_err(q(ctx))?;
        tx.execute(
            "INSERT INTO schema_migrations(version, applied_at) VALUES (0, $1) ON CONFLICT DO NOTHING",
            &[&now_millis()],
        )
        .await
        .map_err(q(ctx))?;
        // The lock row: concurrent migrators wait here until the first one commits.
        tx.query_one("SELECT version FROM schema_migrations WHERE version = 0 FOR UPDATE", &[])
            .await
            .map_err(q(ctx))?;
        let current: i64 = tx
            .query_one("SELECT max(version) FROM schema_migrations", &[])
            .await
            .map_err(q(ctx))?
            .get(0);
        let latest = MIGRATIONS.len() as i64;
        if current > latest {
            return Err(DbError::Config(format!(
                "database schema version {current} is newer than this server ({latest})"
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            tx.batch_execute(sql).await.map_err(q(ctx))?;
            tx.execute(
                "INSERT INTO schema_migrations(version, applied_at) VALUES ($1, $2)",
                &[&(i as i64 + 1), &now_millis()],
            )
            .await
            .map_err(q(ctx))?;
        }
        tx.commit().await.map_err(q(ctx))
    }
}
