//! `congdan ticket …` against a real server: buy, list, and show the code (terminal and PNG),
//! read back from the PNG and verified with the operator's keys.

use std::process::Command;

use congdan_core::tickets::wire::{parse_code_text, verify_code};

fn congdan(data_dir: &std::path::Path, server: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_congdan"))
        .args(["--server", server, "--data-dir"])
        .arg(data_dir)
        .args(args)
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// The QR text in a PNG file, read with `rqrr`.
fn read_png(path: &std::path::Path) -> String {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let (w, h) = (info.width as usize, info.height as usize);
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| buf[y * w + x]);
    image.detect_grids()[0].decode().unwrap().1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buy_list_and_show_a_ticket_whose_png_code_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = congdan_server::ServerConfig::embedded(&tmp.path().join("server"));
    config.listen = "127.0.0.1:0".parse().unwrap();
    let server = congdan_server::start(config).await.unwrap();
    let url = server.url();
    let phone = tmp.path().join("phone");

    let (ok, out, _) = congdan(&phone, &url, &["ticket", "stations"]);
    assert!(ok && out.contains("Bến xe Suối Tiên") && out.contains("20000 VND"), "{out}");
    let (ok, _, err) = congdan(&phone, &url, &["login", "--demo-user", "lan"]);
    assert!(ok, "{err}");
    let (ok, _, err) = congdan(&phone, &url, &["ticket", "buy", "single"]);
    assert!(!ok && err.contains("cần chọn ga đi và ga đến"), "{err}");
    let (ok, out, err) = congdan(&phone, &url, &["ticket", "buy", "single", "--from", "2", "--to", "9"]);
    assert!(ok && out.contains("Đã mua vé"), "{out}{err}");
    let (ok, out, _) = congdan(&phone, &url, &["--english", "ticket", "list"]);
    assert!(ok && out.contains("Single journey Opera House → Phuoc Long") && out.contains("[active]"), "{out}");
    let id = out.split_whitespace().next().unwrap().to_string();

    let png = tmp.path().join("ticket.png");
    let prefix = &id[..8];
    let (ok, out, err) = congdan(&phone, &url, &["ticket", "show", prefix, "--png", png.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains('█') && out.contains("Mã đổi sau"), "{out}");
    let text = read_png(&png);
    let keys = congdan_server::tickets::keys::key_set(&congdan_server::tickets::keys::trusted(&server.state.db).await.unwrap());
    let parsed = parse_code_text(&text).unwrap();
    assert_eq!(congdan_core::crypto::hex(&parsed.ticket_id()), id);
    let code = congdan_core::tickets::base45::decode(&text).unwrap();
    let verified = verify_code(&code, &keys).unwrap();
    assert_eq!((verified.ticket.ticket.origin, verified.ticket.ticket.destination), (Some(2), Some(9)));

    // Offline: the code is still shown.
    server.shutdown().await;
    let (ok, out, _) = congdan(&phone, &url, &["ticket", "show", &id, "--text"]);
    assert!(ok && parse_code_text(out.trim_end_matches('\n')).is_ok(), "{out}");
}
