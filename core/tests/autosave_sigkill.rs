//! A process killed with SIGKILL in the middle of a stream of autosaves loses no edit whose call
//! had returned, and the database is intact when it is opened again.
//!
//! The test runs itself twice: as the parent (the test) and, with `CONGDAN_AUTOSAVE_CHILD` set,
//! as the child that edits drafts as fast as it can and prints each edit after its call returned.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use congdan_core::drafts::validation::FieldValue;
use congdan_core::platform::Platform;
use congdan_core::{Core, CoreConfig};

const CHILD_ENV: &str = "CONGDAN_AUTOSAVE_CHILD";

fn open(dir: &std::path::Path) -> Core {
    Core::open(CoreConfig::new(dir, "http://127.0.0.1:9"), Platform::software(dir).unwrap()).unwrap()
}

/// The child: creates a draft every ten edits and saves one field per edit, forever.
fn child(dir: &std::path::Path) {
    use std::io::Write;
    let core = open(dir);
    let drafts = core.drafts();
    let mut out = std::io::stdout().lock();
    let mut id = String::new();
    for i in 0u64.. {
        if i % 10 == 0 {
            id = drafts.create("PA-1022", None).unwrap().id;
        }
        drafts.set_field(&id, "description", FieldValue::Text(format!("Lần sửa thứ {i} của báo cáo"))).unwrap();
        // Printed only after the call returned: the edit must now survive anything.
        writeln!(out, "{id} {i}").unwrap();
        out.flush().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_autosave_loses_no_returned_edit() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(std::path::Path::new(&dir));
        return;
    }
    // A phone with the catalog cached, then offline for good.
    let tmp = tempfile::tempdir().unwrap();
    let mut config = congdan_server::ServerConfig::embedded(&tmp.path().join("server"));
    config.listen = "127.0.0.1:0".parse().unwrap();
    let server = congdan_server::start(config).await.unwrap();
    let phone = tmp.path().join("phone");
    let core = Core::open(CoreConfig::new(&phone, server.url()), Platform::software(&phone).unwrap()).unwrap();
    core.sync(&|_| true).await.unwrap();
    drop(core);
    server.shutdown().await;

    for round in 0..3 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "sigkill_mid_autosave_loses_no_returned_edit", "--nocapture", "--test-threads", "1"])
            .env(CHILD_ENV, &phone)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut returned: BTreeMap<String, u64> = BTreeMap::new();
        let stop_after = 150 + round * 97;
        let mut seen = 0;
        while let Some(Ok(line)) = lines.next() {
            // libtest prints its own lines; ours are "<draft id> <edit number>".
            let Some((id, n)) = line.split_once(' ') else { continue };
            let Ok(n) = n.parse::<u64>() else { continue };
            returned.insert(id.to_string(), n);
            seen += 1;
            if seen == stop_after {
                child.kill().unwrap(); // SIGKILL: no destructor, no flush, mid-transaction
                break;
            }
        }
        child.wait().unwrap();
        assert!(seen >= stop_after, "round {round}: the child made only {seen} edits");

        let core = open(&phone);
        assert!(core.store().integrity_ok().unwrap(), "round {round}: integrity_check");
        for (id, last) in &returned {
            let draft = core.drafts().get(id).unwrap().unwrap_or_else(|| panic!("round {round}: draft {id} lost"));
            let Some(FieldValue::Text(text)) = draft.values.get("description") else {
                panic!("round {round}: draft {id} lost its field");
            };
            let stored: u64 = text.split_whitespace().nth(3).unwrap().parse().unwrap();
            assert!(stored >= *last, "round {round}: draft {id} has edit {stored}, edit {last} had returned");
        }
    }
}
