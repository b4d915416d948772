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

/// The embedded default server (SQLite, demo data, development identity provider) on a free port.
async fn embedded_server() -> (tempfile::TempDir, congdan_server::RunningServer) {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = congdan_server::ServerConfig::embedded(&tmp.path().join("server"));
    config.listen = "127.0.0.1:0".parse().unwrap();
    let server = congdan_server::start(config).await.unwrap();
    (tmp, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_sync_then_list_search_show_offline() {
    let (tmp, server) = embedded_server().await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_whoami_sync_logout_against_the_built_in_provider() {
    let (tmp, server) = embedded_server().await;
    let url = server.url();
    let phone = tmp.path().join("phone");

    let (ok, out, _) = congdan(&phone, &url, &["session"]);
    assert!(ok && out.contains("Chưa đăng nhập"), "{out}");
    let (ok, _, err) = congdan(&phone, &url, &["whoami"]);
    assert!(!ok && err.contains("đăng nhập lại"), "{err}");

    let (ok, out, err) = congdan(&phone, &url, &["login", "--demo-user", "staff"]);
    assert!(ok, "{err}");
    assert!(out.contains("Đăng nhập thành công") && out.contains("Lê Văn Hùng"), "{out}");
    assert!(out.contains("agency:CONG-AN-PHUONG-XA"), "roles come from the server's configuration: {out}");
    assert!(!out.contains("079088004321") && !err.contains("079088004321"), "the national ID is shown masked");

    let (ok, out, err) = congdan(&phone, &url, &["--english", "whoami"]);
    assert!(ok && out.contains("National ID: 079*******21"), "{out}{err}");
    let (ok, out, err) = congdan(&phone, &url, &["sync"]);
    assert!(ok && out.starts_with("Đã cập nhật"), "{out}{err}");

    let (ok, out, _) = congdan(&phone, &url, &["logout"]);
    assert!(ok && out.contains("Đã đăng xuất"), "{out}");
    let (ok, _, err) = congdan(&phone, &url, &["whoami"]);
    assert!(!ok && err.contains("đăng nhập lại"), "{err}");

    // A wrong demo user is a clear refusal, not a crash.
    let (ok, _, err) = congdan(&phone, &url, &["--english", "login", "--demo-user", "nobody"]);
    assert!(!ok && err.contains("cancelled or refused"), "{err}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_drafted_offline_is_sent_when_the_server_is_back() {
    let (tmp, server) = embedded_server().await;
    let url = server.url();
    let addr = server.addr;
    let phone = tmp.path().join("phone");
    assert!(congdan(&phone, &url, &["login", "--demo-user", "lan"]).0);
    assert!(congdan(&phone, &url, &["sync"]).0);
    server.shutdown().await;

    let (ok, out, err) = congdan(&phone, &url, &["draft", "new", "PA-1022", "--title", "Ngập đường"]);
    assert!(ok, "{err}");
    let id = out.trim().to_string();
    let (ok, out, _) = congdan(&phone, &url, &["draft", "submit", &id]);
    assert!(!ok && out.contains("cần sửa"), "{out}");
    let (ok, out, _) = congdan(&phone, &url, &["draft", "set", &id, "description", "ngập"]);
    assert!(ok && out.contains("Đã lưu") && out.contains("!"), "live check: {out}");
    for (field, value) in [
        ("category", "flooding"),
        ("location", "10.7769,106.7009"),
        ("description", "Nước ngập tới đầu gối trên đường Nguyễn Hữu Cảnh."),
    ] {
        let (ok, out, err) = congdan(&phone, &url, &["draft", "set", &id, field, value]);
        assert!(ok && !out.contains("!"), "{field}: {out}{err}");
    }
    let (ok, out, err) = congdan(&phone, &url, &["draft", "submit", &id]);
    assert!(ok && out.contains("Chưa có kết nối"), "{out}{err}");
    let (ok, _, err) = congdan(&phone, &url, &["draft", "set", &id, "description", "sửa sau khi gửi"]);
    assert!(!ok && err.contains("không sửa được"), "{err}");

    // The server is back on the same address: `send` delivers it once.
    let mut config = congdan_server::ServerConfig::embedded(&tmp.path().join("server"));
    config.listen = addr;
    let server = congdan_server::start(config).await.unwrap();
    let (ok, out, err) = congdan(&phone, &url, &["send"]);
    assert!(ok && out.contains("Đã gửi 1"), "{out}{err}");
    let (ok, out, _) = congdan(&phone, &url, &["draft", "show", &id]);
    assert!(ok && out.contains("Mã hồ sơ: HCM-"), "{out}");
    assert!(congdan(&phone, &url, &["sync"]).0);
    let (ok, out, _) = congdan(&phone, &url, &["case", "list"]);
    assert!(ok && out.starts_with("HCM-") && out.contains("received"), "{out}");
    server.shutdown().await;
}
