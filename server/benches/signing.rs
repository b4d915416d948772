//! Server-side verification of one signature decision per second: what `POST
//! /v1/signature-requests/{id}/decision` does before it writes (read the request, look up the
//! resident's device keys, verify the P-256 signature, check key activity, every bound field and
//! the request's state), next to a bare P-256 verification of the same bytes in the same run.
//! The in-memory column is the checks alone (request and keys already loaded). SQLite always;
//! PostgreSQL too when `CONGDAN_TEST_PG_URL` is set (`scripts/with-postgres.sh cargo bench -p
//! congdan-server --bench signing`).

use std::time::{Duration, Instant};

use congdan_core::crypto::jws::Jwk;
use congdan_core::crypto::{hex, P256Signer, Signer, SIGNATURE_LEN};
use congdan_core::signing::summary_hash;
use congdan_core::signing::wire::{Decision, Intent};
use congdan_server::db::{Db, DbError};
use congdan_server::identity::device_keys;
use congdan_server::signing::store::{self, RequestRow};
use congdan_server::signing::verify::{check_decision, Outcome};

const ACCOUNT: &str = "bench-account";

async fn exec(db: &Db, sql: String) {
    match db {
        Db::Sqlite(pool) => pool
            .write("bench", move |tx| tx.execute_batch(&sql).map_err(|e| DbError::Query { context: "bench", message: e.to_string() }))
            .await
            .unwrap(),
        Db::Postgres(pool) => pool.client().await.unwrap().batch_execute(&sql).await.unwrap(),
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// The account, three device keys (as a resident with a few phones has), a pending request and
/// a decision signed by one of the keys.
async fn setup(db: &Db) -> (String, Vec<u8>, P256Signer) {
    let device = P256Signer::from_pkcs8(&P256Signer::generate_pkcs8().unwrap(), None).unwrap();
    exec(db, format!("INSERT INTO accounts(id, national_id, display_name, created_at) VALUES ('{ACCOUNT}', '079165012345', 'Bench', 0)")).await;
    for i in 0..3 {
        let signer = if i == 1 { None } else { Some(P256Signer::from_pkcs8(&P256Signer::generate_pkcs8().unwrap(), None).unwrap()) };
        let public = signer.as_ref().map(|s| s.public_key()).unwrap_or_else(|| device.public_key());
        let jwk = serde_json::to_string(&Jwk::from_p256_point(&public.bytes).unwrap()).unwrap();
        exec(db, format!("INSERT INTO devices(account_id, jkt, public_jwk, first_seen, last_seen) VALUES ('{ACCOUNT}', 'jkt-{i}', '{jwk}', 0, 0)")).await;
    }
    let summary = "Biên bản bàn giao căn hộ 12A, Lê Lợi. Người ký xác nhận đã nhận chìa khoá.".to_string();
    let document = [7u8; 32];
    let request = RequestRow {
        id: "bench-request".into(),
        agency_code: "CONG-AN-PHUONG-XA".into(),
        account_id: ACCOUNT.into(),
        created_by: ACCOUNT.into(),
        title: "Bàn giao nhà".into(),
        summary: summary.clone(),
        purpose: "Xác nhận bàn giao nhà".into(),
        document_sha256: hex(&document),
        document_size: 1000,
        document_type: "application/pdf".into(),
        document_link: Some("https://example.gov.vn/x.pdf".into()),
        document_owner: None,
        created_at_ms: (now_secs() - 60) * 1000,
        expires_at: now_secs() + 86_400,
        state: "pending".into(),
        cancelled_at_ms: None,
        cancel_reason: None,
        decided_at_ms: None,
        decision: None,
        decision_signed_sha256: None,
        decision_key_id: None,
        decision_response: None,
    };
    // No claimed key: the answer's update finds no key row and changes nothing.
    store::create(db, request.clone(), &request.id, "{}").await.unwrap();
    let decision = Decision {
        request_id: request.id.clone(),
        agency_code: request.agency_code.clone(),
        document_sha256: document,
        summary_sha256: summary_hash(&summary),
        intent: Intent::Approve,
        purpose: request.purpose.clone(),
        decline_reason: None,
        account_id: ACCOUNT.into(),
        device_key_id: device.key_id().to_vec(),
        signed_at: now_secs() as u64,
        expires_at: request.expires_at as u64,
    };
    let statement = decision.sign(&device).unwrap();
    (request.id, statement, device)
}

async fn server_check(db: &Db, id: &str, statement: &[u8], now: i64) {
    let request = store::get(db, id).await.unwrap().unwrap();
    let keys = device_keys::for_account(db, ACCOUNT).await.unwrap();
    assert!(matches!(check_decision(statement, &request, ACCOUNT, &keys, now), Ok(Outcome::Accept(_))));
}

const ROUNDS: usize = 10;

async fn run(name: &str, db: Db, n: usize) {
    let (id, statement, device) = setup(&db).await;
    let now = now_secs();
    let request = store::get(&db, &id).await.unwrap().unwrap();
    let keys = device_keys::for_account(&db, ACCOUNT).await.unwrap();
    let public = device.public_key();
    let (signed, signature) = statement.split_at(statement.len() - SIGNATURE_LEN);
    let per_round = n.div_ceil(ROUNDS);
    let (mut full, mut memory, mut bare) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    // Blocks take turns, so a machine busy elsewhere for a while slows every column alike.
    for _ in 0..ROUNDS {
        let started = Instant::now();
        for _ in 0..per_round {
            server_check(&db, &id, &statement, now).await;
        }
        full += started.elapsed();
        let started = Instant::now();
        for _ in 0..per_round {
            assert!(matches!(check_decision(&statement, &request, ACCOUNT, &keys, now), Ok(Outcome::Accept(_))));
        }
        memory += started.elapsed();
        let started = Instant::now();
        for _ in 0..per_round {
            public.verify(signed, signature).unwrap();
        }
        bare += started.elapsed();
    }
    let total = (per_round * ROUNDS) as f64;
    let (full, memory, bare) = (total / full.as_secs_f64(), total / memory.as_secs_f64(), total / bare.as_secs_f64());
    println!("{:<10} {:>16.0} {:>16.0} {:>16.0} {:>8.2}", name, full, memory, bare, full / bare);
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n = if full { 5000 } else { 50 };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        println!(
            "\n{:<10} {:>16} {:>16} {:>16} {:>8}",
            "database", "decisions/s", "checks only/s", "bare P-256/s", "ratio"
        );
        let tmp = tempfile::tempdir().unwrap();
        let sqlite = Db::connect(&format!("sqlite://{}", tmp.path().join("bench.db").display())).await.unwrap();
        run("sqlite", sqlite, n).await;
        if let Ok(admin) = std::env::var("CONGDAN_TEST_PG_URL") {
            let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(conn);
            let name = format!("congdan_bench_sig_{}", std::process::id());
            client.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
            let base = admin.rsplit_once('/').unwrap().0;
            let pg = Db::connect(&format!("{base}/{name}")).await.unwrap();
            run("postgres", pg, n).await;
        } else {
            println!("(PostgreSQL skipped: run through scripts/with-postgres.sh)");
        }
        println!("decisions/s: read the request + the resident's keys from the database, verify, check (no write)");
    });
}
