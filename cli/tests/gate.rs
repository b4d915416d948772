//! `congdan gate validate` from the terminal: codes as QR text and as PNG images, keys and a
//! revocation list given as files, pass-back across invocations (the gate's tap log), and the
//! exit status scripts read (0 accepted, 2 refused).

use std::process::Command;

use congdan_core::crypto::{Ed25519Signer, P256Signer};
use congdan_core::tickets::gate::{unix_now, OperatorKey, OperatorKeys, RevocationList};
use congdan_core::tickets::{base45, compress_device_key, make_code, qr, ticket_id, Product, Ticket};

fn operator() -> Ed25519Signer {
    Ed25519Signer::from_seed(&[42; 32], b"1".to_vec()).unwrap()
}

/// A fresh day pass on its own device, and its current code as QR text.
fn rider() -> (Vec<u8>, String) {
    let device = P256Signer::from_pkcs8(&P256Signer::generate_pkcs8().unwrap(), None).unwrap();
    let start = unix_now() - unix_now() % 60;
    let ticket = Ticket {
        product: Product::DayPass,
        concession: None,
        origin: None,
        destination: None,
        fare_vnd: 40_000,
        valid_from: start - 3600,
        valid_until: start + 23 * 3600,
        device_key: compress_device_key(&device.public_key().bytes).unwrap(),
    }
    .sign(&operator())
    .unwrap();
    let code = make_code(&ticket, unix_now(), &device).unwrap();
    (ticket, base45::encode(&code))
}

fn gate(dir: &std::path::Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_congdan"))
        .arg("--data-dir")
        .arg(dir)
        .args(["--server", "http://127.0.0.1:9", "--english", "gate", "--station", "3", "--gate", "S3-E1"])
        .args(args)
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

#[test]
fn validate_text_and_png_codes_with_keys_and_revocations_from_files() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("gate");
    let keys = OperatorKeys::new(vec![OperatorKey { key_id: "1".into(), public_key: operator().public_key().bytes, valid_from: 0, valid_until: None }]).unwrap();
    let keys_file = tmp.path().join("keys.json");
    std::fs::write(&keys_file, keys.to_json()).unwrap();
    let keys_arg = keys_file.to_str().unwrap();

    let (_, text) = rider();
    let (status, out) = gate(&data, &["validate", "--keys", keys_arg, &text]);
    assert_eq!(status, 0, "{out}");
    assert!(out.contains("ACCEPTED"), "{out}");

    // The same ticket again: pass-back, remembered by the gate's log across invocations.
    let (status, out) = gate(&data, &["validate", &text]);
    assert_eq!(status, 2, "{out}");
    assert!(out.contains("pass_back"), "{out}");

    // A code read from a PNG image.
    let (_, text) = rider();
    let png = tmp.path().join("code.png");
    std::fs::write(&png, qr::encode(&text).unwrap().to_png(4).unwrap()).unwrap();
    let (status, out) = gate(&data, &["validate", "--png", png.to_str().unwrap()]);
    assert_eq!(status, 0, "{out}");

    // A revoked ticket, with the signed list given as a file.
    let (ticket, text) = rider();
    let list = RevocationList::from_ids(1, unix_now(), vec![ticket_id(&ticket)]).sign(&operator()).unwrap();
    let list_file = tmp.path().join("revocations.bin");
    std::fs::write(&list_file, list).unwrap();
    let (status, out) = gate(&data, &["validate", "--revocations", list_file.to_str().unwrap(), &text]);
    assert_eq!(status, 2, "{out}");
    assert!(out.contains("revoked"), "{out}");

    // Garbage is refused as malformed, not an error.
    let (status, out) = gate(&data, &["validate", "NOT-A-CODE"]);
    assert_eq!(status, 2, "{out}");
    assert!(out.contains("malformed"), "{out}");

    let (status, out) = gate(&data, &["status"]);
    assert_eq!(status, 0, "{out}");
    assert!(out.contains("Taps logged: 5"), "{out}");
}
