//! The `congdan-server` binary as an operator runs it: embedded default, catalog commands, and a
//! graceful stop on SIGTERM.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_congdan-server"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn embedded_default_serves_the_seeded_catalog_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = bin()
        .args(["--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir.path())
        .env_remove("DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        let got = std::net::TcpStream::connect(("127.0.0.1", port)).ok().and_then(|mut s| {
            use std::io::{Read, Write};
            s.write_all(b"GET /v1/catalog/procedures HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
            let mut out = String::new();
            s.read_to_string(&mut out).ok()?;
            Some(out)
        });
        if let Some(b) = got {
            break b;
        }
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("CT-TAM-TRU"));
    assert!(dir.path().join("congdan-server.db").exists());

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "exit status {exit:?}");
    let mut log = String::new();
    use std::io::Read;
    child.stdout.take().unwrap().read_to_string(&mut log).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut log).unwrap();
    assert!(log.contains("seeded the demo catalog"), "{log}");
    assert!(log.contains("shutdown signal received"), "{log}");
}

#[test]
fn catalog_import_is_strict_and_withdraw_reports_unknown_codes() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("s.db").display());
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"[{"code": "x", "kind": "procedure"}]"#).unwrap();
    let out = bin().args(["--database-url", &db, "catalog", "import"]).arg(&bad).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a valid catalog"));

    let good = dir.path().join("good.json");
    std::fs::write(&good, congdan_server::catalog::DEMO_CATALOG).unwrap();
    let out = bin().args(["--database-url", &db, "catalog", "import"]).arg(&good).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("published 10 changed, 0 unchanged"));
    let out = bin().args(["--database-url", &db, "catalog", "import"]).arg(&good).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("published 0 changed, 10 unchanged"));
    let out = bin().args(["--database-url", &db, "catalog", "withdraw", "CT-BAN-SAO"]).output().unwrap();
    assert!(out.status.success());
    let out = bin().args(["--database-url", &db, "catalog", "withdraw", "CT-BAN-SAO"]).output().unwrap();
    assert!(!out.status.success());
}

#[test]
fn a_bad_trusted_proxy_is_refused_at_start_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["--listen", &format!("127.0.0.1:{}", free_port()), "--trusted-proxy", "10.0.0.0/8,10.0.0.0/40", "--data-dir"])
        .arg(dir.path())
        .env_remove("DATABASE_URL")
        .env_remove("CONGDAN_TRUSTED_PROXIES")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("10.0.0.0/40") && err.contains("prefix length must be 0 to 32"), "{err}");
}
