use super::*;
use crate::crypto::{Ed25519Signer, P256Signer};
use crate::tickets::wire::*;

/// Decodes a PNG with the pure-Rust `rqrr` decoder.
fn read_with_rqrr(png_bytes: &[u8]) -> (String, usize) {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Grayscale);
    let (w, h) = (info.width as usize, info.height as usize);
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| buf[y * w + x]);
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1, "one symbol in the image");
    let (meta, text) = grids[0].decode().unwrap();
    (text, meta.version.0)
}

/// Decodes a PNG with zbar's `zbarimg` (package zbar-tools, installed by .ci/run).
fn read_with_zbar(png_bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("code.png");
    std::fs::write(&path, png_bytes).unwrap();
    let out = std::process::Command::new("zbarimg")
        .args(["--quiet", "--raw", "-Sdisable", "-Sqrcode.enable"])
        .arg(&path)
        .output()
        .expect("zbarimg not found: install zbar-tools (apt-get install zbar-tools), as .ci/run does");
    assert!(out.status.success(), "zbarimg failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim_end_matches('\n').to_string()
}

fn worst_case_text() -> String {
    let op = Ed25519Signer::from_seed(&[3; 32], b"99".to_vec()).unwrap();
    let dev = P256Signer::from_pkcs8(&P256Signer::generate_pkcs8().unwrap(), None).unwrap();
    let ticket = Ticket {
        product: Product::SingleJourney,
        concession: Some(Concession::Student),
        origin: Some(MAX_STATION_ID),
        destination: Some(1),
        fare_vnd: MAX_FARE_VND,
        valid_from: MAX_TIME - 60,
        valid_until: MAX_TIME,
        device_key: compress_device_key(&dev.public_key().bytes).unwrap(),
    };
    let code = make_code(&ticket.sign(&op).unwrap(), MAX_SLOT_START, &dev).unwrap();
    assert_eq!(code.len(), MAX_CODE_LEN);
    code_text(&code)
}

#[test]
fn the_largest_code_fits_version_10_m_and_reads_back_with_two_decoders() {
    let text = worst_case_text();
    assert_eq!(text.len(), 300);
    let matrix = encode(&text).unwrap();
    assert!(matrix.version <= MAX_VERSION);
    assert_eq!(matrix.size, 17 + 4 * matrix.version as usize);
    assert_eq!(matrix.rows.len(), matrix.size);
    assert!(matrix.rows.iter().all(|r| r.len() == matrix.size));
    let png = matrix.to_png(4).unwrap();
    let (read, version) = read_with_rqrr(&png);
    assert_eq!(read, text);
    assert_eq!(version, matrix.version as usize);
    assert_eq!(read_with_zbar(&png), text);
}

#[test]
fn codes_of_every_length_read_back() {
    for len in [1usize, 2, 20, 77, 150, 193, 199] {
        let bytes: Vec<u8> = (0..len).map(|i| (i * 151 + 7) as u8).collect();
        let text = crate::tickets::base45::encode(&bytes);
        let matrix = encode(&text).unwrap();
        let png = matrix.to_png(3).unwrap();
        assert_eq!(read_with_rqrr(&png).0, text, "{len} bytes");
        assert_eq!(read_with_zbar(&png), text, "{len} bytes");
    }
}

#[test]
fn too_long_or_non_alphanumeric_text_is_refused() {
    assert_eq!(encode(&"A".repeat(312)), Err(QrError::TooLong { max_version: MAX_VERSION }));
    assert!(encode(&"A".repeat(311)).is_ok());
    assert_eq!(encode("abc"), Err(QrError::NotAlphanumeric));
}

#[test]
fn svg_and_text_blocks_draw_every_module() {
    let matrix = encode("HELLO 45").unwrap();
    assert_eq!(matrix.version, 1);
    let svg = matrix.to_svg();
    let dark = matrix.rows.iter().flatten().filter(|d| **d).count();
    assert_eq!(svg.matches("h1v1h-1z").count(), dark);
    assert!(svg.starts_with("<svg") && svg.contains("viewBox=\"0 0 29 29\""));
    let blocks = matrix.to_text_blocks();
    let lines: Vec<&str> = blocks.lines().collect();
    assert_eq!(lines.len(), 29usize.div_ceil(2));
    assert!(lines.iter().all(|l| l.chars().count() == 29));
    assert!(lines[0].chars().all(|c| c == '█'), "the quiet zone is light");
}
