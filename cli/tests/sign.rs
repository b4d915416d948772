//! `congdan sign …` and `congdan agency sign-request …` against a real server: the demo agency
//! asks Lan to sign a PDF, she reads it and declines with a reason, the agency's bundle says so.

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
async fn the_agency_asks_the_resident_reads_and_declines() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = congdan_server::ServerConfig::embedded(&tmp.path().join("server"));
    config.listen = "127.0.0.1:0".parse().unwrap();
    let server = congdan_server::start(config).await.unwrap();
    let url = server.url();
    let (lan, staff) = (tmp.path().join("lan"), tmp.path().join("staff"));
    let pdf = tmp.path().join("hop-dong.pdf");
    std::fs::write(&pdf, b"%PDF-1.4\n% hop dong\n%%EOF\n").unwrap();

    assert!(congdan(&lan, &url, &["login", "--demo-user", "lan"]).0);
    assert!(congdan(&staff, &url, &["login", "--demo-user", "staff"]).0);
    let (ok, out, err) = congdan(
        &staff,
        &url,
        &["agency", "sign-request", "create", "--resident", "079165012345", "--pdf", pdf.to_str().unwrap(),
          "--title", "Hợp đồng thuê nhà", "--summary", "Thuê 12 tháng.", "--purpose", "Xác nhận hợp đồng"],
    );
    assert!(ok && out.contains("Đã tạo yêu cầu ký"), "{out}{err}");
    let id = out.trim().rsplit(' ').next().unwrap().to_string();

    assert!(congdan(&lan, &url, &["sync"]).0);
    let (ok, out, _) = congdan(&lan, &url, &["sign", "list"]);
    assert!(ok && out.contains(&id) && out.contains("chờ ký"), "{out}");
    let (ok, out, err) = congdan(&lan, &url, &["--english", "sign", "show", &id]);
    assert!(ok && out.contains("Thuê 12 tháng.") && out.contains(".pdf"), "{out}{err}");
    let (ok, out, err) = congdan(&lan, &url, &["--english", "sign", "decline", &id, "--reason", "Sai giá thuê"]);
    assert!(ok && out.contains("Declined and signed") && out.contains("(sent)"), "{out}{err}");
    let (ok, _, err) = congdan(&lan, &url, &["sign", "approve", &id]);
    assert!(!ok && err.contains("đã được trả lời"), "{err}");

    // The agency's view: the list, the request with the decision, a cancellation.
    let (ok, out, err) = congdan(&staff, &url, &["agency", "sign-request", "list", "--state", "declined"]);
    assert!(ok && out.contains(&id) && out.contains("đã từ chối") && out.contains("Hợp đồng thuê nhà"), "{out}{err}");
    let (ok, out, err) = congdan(&staff, &url, &["--english", "agency", "sign-request", "show", &id]);
    assert!(ok && out.contains("[declined]") && out.contains("079*******45"), "{out}{err}");
    assert!(out.contains("The resident declined") && out.contains("Sai giá thuê"), "{out}");
    let (ok, out, err) = congdan(
        &staff,
        &url,
        &["agency", "sign-request", "create", "--resident", "079165012345", "--pdf", pdf.to_str().unwrap(),
          "--title", "Phụ lục hợp đồng", "--summary", "Gia hạn 6 tháng.", "--purpose", "Xác nhận phụ lục"],
    );
    assert!(ok, "{out}{err}");
    let second = out.trim().rsplit(' ').next().unwrap().to_string();
    let (ok, out, err) = congdan(&staff, &url, &["agency", "sign-request", "cancel", &second, "--reason", "Gửi nhầm"]);
    assert!(ok && out.contains("[đã hủy]") && out.contains("Gửi nhầm"), "{out}{err}");
    let (ok, out, _) = congdan(&staff, &url, &["agency", "sign-request", "list", "--state", "pending"]);
    assert!(ok && out.contains("Không có yêu cầu ký nào."), "{out}");

    let bundle = tmp.path().join("bundle.json");
    let (ok, _, err) = congdan(&staff, &url, &["agency", "sign-request", "bundle", &id, "--out", bundle.to_str().unwrap()]);
    assert!(ok, "{err}");
    let bundle: serde_json::Value = serde_json::from_slice(&std::fs::read(&bundle).unwrap()).unwrap();
    assert_eq!(bundle["decoded"]["intent"], "decline");
    assert_eq!(bundle["decoded"]["decline_reason"], "Sai giá thuê");
    server.shutdown().await;
}
