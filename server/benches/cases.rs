//! Server case submissions per second (the storage work of `POST /v1/cases`: the idempotency
//! claim, then the case, its event, its feed change and the recorded answer), next to a bare
//! single-row INSERT loop through the same driver in the same run. SQLite always; PostgreSQL
//! too when `CONGDAN_TEST_PG_URL` is set (`scripts/with-postgres.sh cargo bench -p
//! congdan-server --bench cases`). Authentication is measured by the `auth` bench.

use std::time::Instant;

use congdan_server::cases::{idempotency, store};
use congdan_server::db::Db;

async fn account(db: &Db) -> String {
    let id = "bench-account".to_string();
    match db {
        Db::Sqlite(pool) => {
            let id = id.clone();
            pool.write("bench", move |tx| {
                tx.execute(
                    "INSERT INTO accounts(id, national_id, display_name, created_at) VALUES (?1, '079165012345', 'Bench', 0)",
                    [&id],
                )
                .map_err(|e| congdan_server::db::DbError::Query { context: "bench", message: e.to_string() })?;
                tx.execute_batch("CREATE TABLE bare (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)")
                    .map_err(|e| congdan_server::db::DbError::Query { context: "bench", message: e.to_string() })?;
                Ok(())
            })
            .await
            .unwrap();
        }
        Db::Postgres(pool) => {
            let client = pool.client().await.unwrap();
            client
                .execute(
                    "INSERT INTO accounts(id, national_id, display_name, created_at) VALUES ($1, '079165012345', 'Bench', 0)",
                    &[&id],
                )
                .await
                .unwrap();
            client.batch_execute("CREATE TABLE bare (id BIGINT PRIMARY KEY, payload TEXT NOT NULL)").await.unwrap();
        }
    }
    id
}

async fn submit_once(db: &Db, account: &str, i: usize) {
    let key = format!("bench-key-{i}");
    let body = format!("{{\"draft_id\":\"d{i}\"}}");
    let claim = idempotency::claim(db, account, &key, idempotency::fingerprint(body.as_bytes())).await.unwrap();
    assert_eq!(claim, idempotency::Claim::Fresh);
    let case = store::NewCase {
        id: format!("case-{i}"),
        account_id: account.to_string(),
        procedure_code: "PA-1022".into(),
        agency_code: "TT-1022".into(),
        draft_id: format!("d{i}"),
        values_json: r#"{"description":{"type":"text","value":"Nước ngập tới đầu gối."}}"#.into(),
        received_at_ms: 1_763_859_600_000,
        due_date: "2026-11-27".into(),
        key,
        anonymous: false,
        attachments: Default::default(),
    };
    store::create(db, case, 2026).await.unwrap();
}

async fn bare_insert(db: &Db, i: usize) {
    match db {
        Db::Sqlite(pool) => pool
            .write("bench", move |tx| {
                tx.execute("INSERT INTO bare(id, payload) VALUES (?1, 'x')", [i as i64])
                    .map_err(|e| congdan_server::db::DbError::Query { context: "bench", message: e.to_string() })?;
                Ok(())
            })
            .await
            .unwrap(),
        Db::Postgres(pool) => {
            pool.client().await.unwrap().execute("INSERT INTO bare(id, payload) VALUES ($1, 'x')", &[&(i as i64)]).await.unwrap();
        }
    }
}

/// Blocks of submissions and of bare inserts take turns, so a machine busy with something else
/// for a while slows both sides alike instead of skewing the ratio.
const ROUNDS: usize = 10;

async fn run(name: &str, db: Db, n: usize) {
    let account = account(&db).await;
    let per_round = n.div_ceil(ROUNDS);
    let (mut cases_time, mut bare_time) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
    for round in 0..ROUNDS {
        let block = round * per_round..((round + 1) * per_round).min(n);
        let started = Instant::now();
        for i in block.clone() {
            submit_once(&db, &account, i).await;
        }
        cases_time += started.elapsed();
        let started = Instant::now();
        for i in block {
            bare_insert(&db, i).await;
        }
        bare_time += started.elapsed();
    }
    let cases = n as f64 / cases_time.as_secs_f64();
    let bare = n as f64 / bare_time.as_secs_f64();
    println!("{:<12} {:>14.0} {:>16.0} {:>10.2}", name, cases, bare, cases / bare);
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n = if full { 2000 } else { 50 };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        println!("\n{:<12} {:>14} {:>16} {:>10}", "database", "submissions/s", "bare INSERT/s", "ratio");
        let tmp = tempfile::tempdir().unwrap();
        let sqlite = Db::connect(&format!("sqlite://{}", tmp.path().join("bench.db").display())).await.unwrap();
        run("sqlite", sqlite, n).await;
        if let Ok(admin) = std::env::var("CONGDAN_TEST_PG_URL") {
            let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(conn);
            let name = format!("congdan_bench_{}", std::process::id());
            client.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
            let base = admin.rsplit_once('/').unwrap().0;
            let pg = Db::connect(&format!("{base}/{name}")).await.unwrap();
            run("postgres", pg, n).await;
        } else {
            println!("(PostgreSQL skipped: run through scripts/with-postgres.sh)");
        }
    });
}
