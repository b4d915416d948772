//! The `congdan` binary against a real server: sync once, then everything works offline.

use std::process::Command;

fn congdan(data_dir: &std::path::Path, server: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_congdan"))
        .args(["--server", server, "--data-dir"])
        .arg(data_dir)
        .args(args)
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_sync_then_list_search_show_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = congdan_server::ServerConfig::embedded(&tmp.path().join("server"));
    config.listen = "127.0.0.1:0".parse().unwrap();
    let server = congdan_server::start(config).await.unwrap();
    let url = server.url();
    let phone = tmp.path().join("phone");

    let (ok, out, err) = congdan(&phone, &url, &["catalog", "sync"]);
    assert!(ok, "{err}");
    assert!(out.starts_with("Đã cập nhật"), "{out}");
    server.shutdown().await;

    // Offline from here on.
    let (ok, out, _) = congdan(&phone, &url, &["catalog", "sync"]);
    assert!(ok);
    assert!(out.contains("Chưa có kết nối"), "{out}");
    let (ok, out, _) = congdan(&phone, &url, &["catalog", "list"]);
    assert!(ok && out.lines().count() >= 8, "{out}");
    let (ok, out, _) = congdan(&phone, &url, &["catalog", "search", "tam", "tru"]);
    assert!(ok && out.starts_with("CT-TAM-TRU"), "{out}");
    let (ok, out, _) = congdan(&phone, &url, &["--english", "catalog", "show", "CT-TAM-TRU"]);
    assert!(ok && out.contains("[national_id]") && out.contains("working days"), "{out}");
    let (ok, _, err) = congdan(&phone, &url, &["catalog", "show", "NOPE"]);
    assert!(!ok && err.contains("Không tìm thấy"), "{err}");
    let (ok, _, err) = congdan(&phone, "http://example.com", &["catalog", "list"]);
    assert!(!ok && err.contains("không hợp lệ"), "{err}");
}
