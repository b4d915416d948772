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
    embedded_server_with(|_| {}).await
}

async fn embedded_server_with(tune: impl FnOnce(&mut congdan_server::ServerConfig)) -> (tempfile::TempDir, congdan_server::RunningServer) {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = congdan_server::ServerConfig::embedded(&tmp.path().join("server"));
    config.listen = "127.0.0.1:0".parse().unwrap();
    tune(&mut config);
    let server = congdan_server::start(config).await.unwrap();
    (tmp, server)
}

/// Refresh tokens the server has issued, and how many of them were used (rotated).
async fn refresh_tokens(server: &congdan_server::RunningServer) -> (i64, i64) {
    match &server.state.db {
        congdan_server::db::Db::Sqlite(pool) => pool
            .read("counting", |c| {
                c.query_row("SELECT count(*), count(used_at) FROM refresh_tokens", [], |r| Ok((r.get(0)?, r.get(1)?)))
            })
            .await
            .unwrap(),
        congdan_server::db::Db::Postgres(_) => unreachable!("the embedded default is SQLite"),
    }
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
    // Access tokens of 2 seconds, so that the session outlives one within the test.
    let (tmp, server) = embedded_server_with(|c| c.identity.access_token_ttl_secs = 2).await;
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
    let (_, used_before) = refresh_tokens(&server).await;

    // The access token expires; the next command refreshes it by itself (a new run of the
    // binary: the session is read back from the sealed store).
    tokio::time::sleep(std::time::Duration::from_millis(2_200)).await;
    let (ok, out, err) = congdan(&phone, &url, &["--english", "whoami"]);
    assert!(ok && out.contains("National ID: 079*******21"), "after expiry: {out}{err}");
    let (issued, used) = refresh_tokens(&server).await;
    assert_eq!(used, used_before + 1, "the expired session was refreshed once");
    assert_eq!(issued, used + 1, "one live refresh token: each use rotated it");

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

/// Issue 4's "Done when", from a terminal: a temporary-residence registration drafted offline
/// with a photo, submitted while the server is down, sent when it is back; the demo agency (a
/// second "phone" logged in as `staff`) asks for more information, the resident answers, the
/// agency marks it done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_residence_offline_to_done_with_the_demo_agency() {
    use congdan_core::drafts::validation::CalendarDate;
    let (tmp, server) = embedded_server().await;
    let url = server.url();
    let addr = server.addr;
    let lan = tmp.path().join("lan");
    let staff = tmp.path().join("staff");
    for (dir, user) in [(&lan, "lan"), (&staff, "staff")] {
        let (ok, out, err) = congdan(dir, &url, &["login", "--demo-user", user]);
        assert!(ok, "{out}{err}");
        assert!(congdan(dir, &url, &["sync"]).0);
    }
    // A resident is not an agency.
    let (ok, _, err) = congdan(&lan, &url, &["--english", "agency", "cases"]);
    assert!(!ok && err.contains("not allowed"), "{err}");
    server.shutdown().await;

    // Offline: the draft, its values and its photo.
    let (ok, out, err) = congdan(&lan, &url, &["draft", "new", "CT-TAM-TRU"]);
    assert!(ok, "{err}");
    let id = out.trim().to_string();
    let today = CalendarDate::today_utc_plus_7();
    let (from, until) = (today.to_string(), today.add_days(365).to_string());
    for (field, value) in [
        ("tenant_national_id", "079165012345"),
        ("tenant_full_name", "Nguyễn Thị Lan"),
        ("tenant_date_of_birth", "1990-05-12"),
        ("tenant_phone", "0901234567"),
        ("temporary_address", "12 Lê Lợi, phường Bến Nghé, Quận 1"),
        ("stay_from", from.as_str()),
        ("stay_until", until.as_str()),
        ("relationship_to_owner", "tenant"),
        ("owner_national_id", "079088004321"),
        ("owner_full_name", "Trần Văn Chủ"),
        ("host_consent", "agree"),
    ] {
        let (ok, out, err) = congdan(&lan, &url, &["draft", "set", &id, field, value]);
        assert!(ok && !out.contains("!"), "{field}: {out}{err}");
    }
    let (ok, out, _) = congdan(&lan, &url, &["draft", "submit", &id]);
    assert!(!ok && out.contains("cần sửa"), "the contract is required: {out}");
    let disguised = tmp.path().join("hop-dong.jpg");
    std::fs::write(&disguised, b"MZ\x90\x00 this is a program").unwrap();
    let (ok, out, _) = congdan(&lan, &url, &["--english", "draft", "attach", &id, "rental_contract", disguised.to_str().unwrap()]);
    assert!(!ok && out.contains("not recognised"), "{out}");
    let photo = tmp.path().join("hop-dong-thue-nha.jpg");
    let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0x00, 0x01, 0x01, 0x00, 0x00, 0x01];
    jpeg.extend((0..4000u32).map(|i| (i % 251) as u8));
    jpeg.extend([0xFF, 0xD9]);
    std::fs::write(&photo, &jpeg).unwrap();
    let (ok, out, err) = congdan(&lan, &url, &["draft", "attach", &id, "rental_contract", photo.to_str().unwrap()]);
    assert!(ok && out.contains("image/jpeg") && out.contains(&format!("{} bytes", jpeg.len())), "{out}{err}");
    let (ok, out, err) = congdan(&lan, &url, &["draft", "submit", &id]);
    assert!(ok && out.contains("Chưa có kết nối"), "{out}{err}");

    // The server is back on the same address: `send` delivers the photo and the case, once.
    let mut config = congdan_server::ServerConfig::embedded(&tmp.path().join("server"));
    config.listen = addr;
    let server = congdan_server::start(config).await.unwrap();
    let (ok, out, err) = congdan(&lan, &url, &["send"]);
    assert!(ok && out.contains("Đã gửi"), "{out}{err}");
    let (ok, out, _) = congdan(&lan, &url, &["draft", "show", &id]);
    let number = out.lines().find_map(|l| l.strip_prefix("Mã hồ sơ: ")).unwrap_or_else(|| panic!("{out}")).to_string();
    assert!(ok && number.starts_with("HCM-"), "{out}");

    // The agency sees it, and asks for more information on the phone number.
    let (ok, out, err) = congdan(&staff, &url, &["agency", "cases", "--status", "received"]);
    assert!(ok && out.contains(&number) && out.contains("CT-TAM-TRU"), "{out}{err}");
    let (ok, out, err) = congdan(&staff, &url, &["agency", "show", &number]);
    assert!(ok && out.contains("Nguyễn Thị Lan") && out.contains("tenant_phone = 0901234567"), "{out}{err}");
    // The photo is listed with its hash, and downloads intact.
    let listed = out.lines().find_map(|l| l.trim().strip_prefix("rental_contract  ")).unwrap_or_else(|| panic!("{out}"));
    let sha = listed.split_whitespace().next().unwrap().to_string();
    assert!(listed.ends_with(&format!("image/jpeg  {} byte", jpeg.len())), "{out}");
    let copy = tmp.path().join("agency-copy.jpg");
    let (ok, out, err) = congdan(&staff, &url, &["agency", "attachment", "get", &number, &sha, "--out", copy.to_str().unwrap()]);
    assert!(ok && out.contains("Đã tải về"), "{out}{err}");
    assert_eq!(std::fs::read(&copy).unwrap(), jpeg);
    let (ok, out, err) = congdan(&staff, &url, &[
        "agency", "status", &number, "needs_information",
        "--message", "Số điện thoại không liên lạc được, vui lòng kiểm tra lại.",
        "--field", "tenant_phone",
    ]);
    assert!(ok && out.contains("needs_information"), "{out}{err}");
    let (ok, _, err) = congdan(&staff, &url, &["--english", "agency", "status", &number, "done"]);
    assert!(!ok && err.contains("refused"), "waits for the resident: {err}");

    // The resident sees the request, answers it, sends.
    assert!(congdan(&lan, &url, &["sync"]).0);
    let (ok, out, _) = congdan(&lan, &url, &["case", "show", &number]);
    assert!(ok && out.contains("needs_information") && out.contains("không liên lạc được"), "{out}");
    assert!(out.contains("Cần bổ sung: tenant_phone"), "{out}");
    let (ok, out, _) = congdan(&lan, &url, &["case", "answer", &number, "tenant_phone", "12345"]);
    assert!(!ok && out.contains("!"), "checked before queueing: {out}");
    let (ok, out, err) = congdan(&lan, &url, &["case", "answer", &number, "tenant_phone", "0912345678"]);
    assert!(ok && out.contains("hàng chờ"), "{out}{err}");
    let (ok, out, err) = congdan(&lan, &url, &["send"]);
    assert!(ok && out.contains("Đã gửi 1"), "{out}{err}");

    // The agency finishes it; the resident sees it done.
    let (ok, out, err) = congdan(&staff, &url, &["agency", "show", &number]);
    assert!(ok && out.contains("information_provided") && out.contains("tenant_phone = 0912345678"), "{out}{err}");
    let (ok, out, err) = congdan(&staff, &url, &["agency", "status", &number, "done", "--result", "Giấy xác nhận tạm trú số 123/2026"]);
    assert!(ok && out.contains("[done]"), "{out}{err}");
    assert!(congdan(&lan, &url, &["sync"]).0);
    let (ok, out, _) = congdan(&lan, &url, &["--english", "case", "show", &number]);
    assert!(ok && out.contains("[done]") && out.contains("Result: Giấy xác nhận tạm trú số 123/2026"), "{out}");
    let (ok, out, _) = congdan(&lan, &url, &["case", "list"]);
    assert!(ok && out.starts_with(&number) && out.contains("done"), "{out}");
    server.shutdown().await;
}

/// The identity credential from the terminal: Ba renews it, shows his name and that he is over
/// 60 as a PNG; a desk that fetched the city's keys reads the PNG offline and sees exactly that.
/// A damaged code exits with status 2 and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_code_from_the_phone_verified_offline_at_a_desk() {
    let (tmp, server) = embedded_server().await;
    let url = server.url();
    let (phone, desk) = (tmp.path().join("phone"), tmp.path().join("desk"));
    let (ok, _, err) = congdan(&phone, &url, &["login", "--demo-user", "ba"]);
    assert!(ok, "{err}");
    let (ok, out, err) = congdan(&phone, &url, &["--english", "id", "refresh"]);
    assert!(ok && out.contains("Personal ID number: 079050001950") && out.contains("Aged 60 or over: true"), "{out}{err}");
    let (ok, out, err) = congdan(&desk, &url, &["id", "keys"]);
    assert!(ok && out.contains(": 1"), "{out}{err}");
    server.shutdown().await;

    // Offline: show, write a PNG, verify it at the desk.
    let png = tmp.path().join("id.png");
    let (ok, out, err) = congdan(&phone, &url, &["id", "present", "full_name,age_over_60", "--png", png.to_str().unwrap()]);
    assert!(ok && out.contains("Mã đổi sau"), "{out}{err}");
    let (ok, out, err) = congdan(&desk, &url, &["--english", "id", "verify", "--png", png.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("VALID") && out.contains("Full name: Đặng Văn Ba") && out.contains("Aged 60 or over: true"), "{out}");
    assert!(!out.contains("079050001950") && !out.contains("1950-05-19"), "only the chosen fields: {out}");

    let (ok, text, _) = congdan(&phone, &url, &["id", "present", "birth_date", "--text"]);
    assert!(ok);
    let text = text.trim();
    let tail = if text.ends_with("AA") { "BB" } else { "AA" };
    let damaged = format!("{}{tail}", &text[..text.len() - 2]);
    let out = Command::new(env!("CARGO_BIN_EXE_congdan"))
        .args(["--server", &url, "--data-dir"])
        .arg(&desk)
        .args(["--english", "id", "verify", &damaged])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("REFUSED"));
    let (ok, _, err) = congdan(&phone, &url, &["id", "present", "eye_colour"]);
    assert!(!ok && err.contains("eye_colour"), "{err}");
}
