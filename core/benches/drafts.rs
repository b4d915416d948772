//! Drafts benchmark: prints a table. `cargo bench -p congdan-core --bench drafts --features
//! dev-browser` measures; under `cargo test` it runs a few iterations only, as a smoke test.
//!
//! - autosave of one field next to a bare rusqlite single-row UPDATE (same pragmas, same run);
//! - opening the store and listing 1,000 drafts;
//! - pushing 1,000 queued submissions through the outbox to the local server.

use std::time::{Duration, Instant};

use congdan_core::drafts::validation::FieldValue;
use congdan_core::identity::dev_browser;
use congdan_core::platform::Platform;
use congdan_core::{Core, CoreConfig};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn measure(iterations: usize, mut f: impl FnMut(usize)) -> Vec<Duration> {
    f(usize::MAX); // warm-up
    let mut samples: Vec<Duration> = (0..iterations)
        .map(|i| {
            let t = Instant::now();
            f(i);
            t.elapsed()
        })
        .collect();
    samples.sort();
    samples
}

fn row(name: &str, samples: &[Duration]) {
    println!("{:<52} {:>8} {:>12.1?} {:>12.1?}", name, samples.len(), percentile(samples, 0.5), percentile(samples, 0.99));
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let scale = if full { 1 } else { 20 };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut config = congdan_server::ServerConfig::embedded(&tmp.path().join("server"));
    config.listen = "127.0.0.1:0".parse().unwrap();
    let server = rt.block_on(congdan_server::start(config)).unwrap();
    let url = server.url();
    let phone = tmp.path().join("phone");
    let core = Core::open(CoreConfig::new(&phone, &url), Platform::software(&phone).unwrap()).unwrap();
    rt.block_on(async {
        let redirect = "http://127.0.0.1:1/callback";
        let request = core.identity().login_start(redirect).unwrap();
        let callback = dev_browser::demo_login(&request.authorize_url, "lan", "demo", redirect).await.unwrap();
        core.identity().login_finish(&callback).await.unwrap();
        core.sync(&|_| true).await.unwrap();
    });
    println!("\n{:<52} {:>8} {:>12} {:>12}", "benchmark", "samples", "p50", "p99");

    // Autosave next to a bare single-row update with the same pragmas.
    let drafts = core.drafts();
    let draft = drafts.create("PA-1022", None).unwrap();
    let autosave = measure(5000 / scale, |i| {
        drafts.set_field(&draft.id, "description", FieldValue::Text(format!("Nước ngập, lần sửa {i}"))).unwrap();
    });
    let bare_db = rusqlite::Connection::open(tmp.path().join("bare.db")).unwrap();
    bare_db.pragma_update(None, "journal_mode", "WAL").unwrap();
    bare_db.pragma_update(None, "synchronous", "NORMAL").unwrap();
    bare_db.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, value TEXT NOT NULL); INSERT INTO t VALUES (1, '');").unwrap();
    let bare = measure(5000 / scale, |i| {
        bare_db.execute("UPDATE t SET value = ?1 WHERE id = 1", [format!("Nước ngập, lần sửa {i}")]).unwrap();
    });
    row("autosave one field (DraftsService::set_field)", &autosave);
    row("bare rusqlite single-row UPDATE, same pragmas", &bare);
    println!(
        "{:<52} {:>8} {:>12.2}x",
        "  autosave / bare at p50",
        "",
        percentile(&autosave, 0.5).as_secs_f64() / percentile(&bare, 0.5).as_secs_f64()
    );

    // 1,000 drafts: open the store and list them.
    let n = 1000 / scale;
    for i in 0..n {
        let d = drafts.create("PA-1022", Some(&format!("Báo cáo {i}"))).unwrap();
        drafts.set_field(&d.id, "category", FieldValue::Choice(vec!["flooding".into()])).unwrap();
        drafts.set_field(&d.id, "location", FieldValue::Location { lat: 10.77, lon: 106.70 }).unwrap();
        drafts.set_field(&d.id, "description", FieldValue::Text(format!("Nước ngập tới đầu gối, báo cáo {i}."))).unwrap();
    }
    let listing = measure(200 / scale, |_| {
        let core = Core::open(CoreConfig::new(&phone, &url), Platform::software(&phone).unwrap()).unwrap();
        assert!(core.drafts().list().unwrap().len() > n);
    });
    row(&format!("open store + list {} drafts", n + 1), &listing);

    // Push 1,000 queued submissions to the local server in one drain.
    let ids: Vec<String> = drafts.list().unwrap().into_iter().filter(|d| d.title.starts_with("Báo cáo")).map(|d| d.id).collect();
    for id in &ids {
        drafts.submit(id).unwrap();
    }
    let started = Instant::now();
    let report = rt.block_on(core.send_outbox()).unwrap();
    let elapsed = started.elapsed();
    // Plus one backup: the autosave draft, never submitted, is backed up to the account.
    assert_eq!(report.sent as usize, ids.len() + 1, "{report:?}");
    println!("{:<52} {:>8} {:>12.2?} {:>10.0}/s", format!("push {} queued submissions (one drain)", ids.len()), 1, elapsed, ids.len() as f64 / elapsed.as_secs_f64());
    if !full {
        println!("(smoke run: pass --bench, or use `cargo bench`, for real numbers)");
    }
    rt.block_on(server.shutdown());
}
