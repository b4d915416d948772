//! `congdan gate …`: a metro gate in a terminal. Validates codes given as QR text or PNG
//! images against operator keys and a revocation list pulled from the server (log in as the
//! demo user `operator`) or given as files, and prints each decision with its reason.
//! Decisions are logged in this data directory like on a real gate, so pass-back holds across
//! invocations.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use congdan_core::tickets::gate::{self, Decision, Direction, Gate, GateConfig, OperatorKeys};
use congdan_core::{Core, Error};

use crate::pick;

#[derive(Args)]
pub struct GateArgs {
    /// The station this gate stands in (1 Bến Thành … 14 Suối Tiên).
    #[arg(long, default_value_t = 1)]
    station: u64,
    /// This gate's id (letters, digits, '-', '_', '.').
    #[arg(long, default_value = "cli-gate")]
    gate: String,
    /// An exit gate (default: entry).
    #[arg(long)]
    exit: bool,
    #[command(subcommand)]
    action: GateAction,
}

#[derive(Subcommand)]
pub enum GateAction {
    /// Validate codes: QR text arguments and/or `--png` images. Exit status 0 only when every
    /// code was accepted.
    Validate {
        /// Codes as QR text (base45).
        codes: Vec<String>,
        /// QR images (PNG) to read codes from.
        #[arg(long = "png")]
        pngs: Vec<PathBuf>,
        /// Trust the operator keys in this JSON file (the shape of GET /v1/operator/keys).
        #[arg(long)]
        keys: Option<PathBuf>,
        /// Take the signed revocation list in this file (raw statement, or base64 text).
        #[arg(long)]
        revocations: Option<PathBuf>,
        /// The gate's clock, unix seconds (default: now).
        #[arg(long)]
        now: Option<u64>,
    },
    /// Pull operator keys and the revocation list, and upload the gate's taps (operator login).
    Sync,
    /// What the gate holds: keys, revocation list, logged taps.
    Status,
}

fn read_file(path: &PathBuf) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| Error::InvalidConfig(format!("{}: {e}", path.display())))
}

/// Reads the QR code in a PNG image (any colour type) with rqrr.
pub(crate) fn code_from_png(path: &PathBuf) -> Result<String, Error> {
    let bad = |m: String| Error::InvalidConfig(format!("{}: {m}", path.display()));
    let mut decoder = png::Decoder::new(std::io::Cursor::new(read_file(path)?));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(|e| bad(e.to_string()))?;
    let mut pixels = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut pixels).map_err(|e| bad(e.to_string()))?;
    let channels = frame.color_type.samples();
    let (w, h) = (frame.width as usize, frame.height as usize);
    if w == 0 || h == 0 || w > 8192 || h > 8192 {
        return Err(bad("image size out of range".into()));
    }
    let luma = |x: usize, y: usize| -> u8 {
        let i = (y * frame.line_size) + x * channels;
        match channels {
            1 | 2 => pixels[i],
            _ => ((pixels[i] as u32 * 299 + pixels[i + 1] as u32 * 587 + pixels[i + 2] as u32 * 114) / 1000) as u8,
        }
    };
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(w, h, luma);
    let grids = image.detect_grids();
    let grid = grids.first().ok_or_else(|| bad("no QR code found".into()))?;
    let (_, text) = grid.decode().map_err(|e| bad(format!("QR code unreadable: {e:?}")))?;
    Ok(text)
}

fn print_decision(en: bool, label: &str, decision: &Decision) {
    match decision {
        Decision::Accept(a) => {
            let product = congdan_core::tickets::Product::from_code(a.product)
                .map(|p| crate::ticket::product_name(en, p))
                .unwrap_or("?");
            println!(
                "{label}: {} — {product}, {} {} {}{}{}",
                pick(en, "MỜI QUA", "ACCEPTED"),
                pick(en, "còn", "valid for"),
                a.remaining_s / 60,
                pick(en, "phút", "minutes"),
                if a.consumed_until.is_some() { pick(en, ", vé lượt đã dùng", ", single journey used") } else { "" },
                a.clock_skew_s.map(|s| format!(" ({} {s} s)", pick(en, "đồng hồ điện thoại nhanh", "phone clock ahead by"))).unwrap_or_default(),
            );
        }
        Decision::Refuse(r) => {
            let (vi, english) = r.reason.message();
            println!("{label}: {} — {} [{}]", pick(en, "TỪ CHỐI", "REFUSED"), pick(en, vi, english), r.reason.code());
        }
    }
    if let Some(id) = decision.ticket_id() {
        println!("  {}: {}", pick(en, "mã vé", "ticket id"), congdan_core::crypto::hex(&id));
    }
}

pub async fn run(core: &Core, en: bool, args: GateArgs) -> Result<bool, Error> {
    let direction = if args.exit { Direction::Exit } else { Direction::Entry };
    let gate = Gate::open(core.clone(), GateConfig::new(args.station, &args.gate, direction), gate::unix_now())?;
    match args.action {
        GateAction::Validate { codes, pngs, keys, revocations, now } => {
            let now = now.unwrap_or_else(gate::unix_now);
            if let Some(path) = keys {
                let keys = OperatorKeys::from_json(&read_file(&path)?).map_err(|e| Error::InvalidConfig(e.to_string()))?;
                gate.set_keys(keys)?;
            }
            if let Some(path) = revocations {
                let raw = read_file(&path)?;
                let statement = match std::str::from_utf8(&raw).ok().and_then(gate::link::decode_base64) {
                    Some(decoded) => decoded,
                    None => raw,
                };
                gate.set_revocations(&statement, now)?;
            }
            if gate.validator().keys().is_empty() {
                eprintln!(
                    "{}",
                    pick(
                        en,
                        "Cổng chưa có khóa của nhà vận hành: chạy `congdan gate sync` (đăng nhập operator) hoặc dùng --keys.",
                        "The gate holds no operator keys: run `congdan gate sync` (logged in as operator) or pass --keys."
                    )
                );
            }
            let mut inputs: Vec<(String, String)> = codes.into_iter().enumerate().map(|(i, c)| (format!("#{}", i + 1), c)).collect();
            for path in &pngs {
                inputs.push((path.display().to_string(), code_from_png(path)?));
            }
            if inputs.is_empty() {
                return Err(Error::InvalidConfig("no code given: pass QR text or --png FILE".into()));
            }
            let mut all_accepted = true;
            for (label, text) in inputs {
                let decision = gate.tap_text(&text, now)?;
                all_accepted &= decision.is_accept();
                print_decision(en, &label, &decision);
            }
            Ok(all_accepted)
        }
        GateAction::Sync => {
            let report = gate.sync_with_server(gate::unix_now()).await;
            println!("{}: {}", pick(en, "Khóa nhà vận hành", "Operator keys"), report.keys);
            if let Some(e) = &report.keys_error {
                println!("  {}: {e}", pick(en, "không tải được", "not pulled"));
            }
            println!(
                "{}: #{} ({} {})",
                pick(en, "Danh sách thu hồi", "Revocation list"),
                report.revocation_sequence,
                report.revoked,
                pick(en, "vé", "tickets")
            );
            if let Some(e) = &report.revocations_error {
                println!("  {}: {e}", pick(en, "không tải được", "not pulled"));
            }
            let sent = report.upload.as_ref().map(|u| u.sent).unwrap_or(0);
            println!("{}: {} ({} {sent})", pick(en, "Lượt qua cổng đưa vào hàng đợi", "Taps queued"), report.taps_queued, pick(en, "lô đã gửi", "batches sent"));
            if let Some(e) = &report.upload_error {
                println!("  {e}");
            }
            Ok(!report.all_failed())
        }
        GateAction::Status => {
            let keys = gate.validator().keys();
            println!("{}: {}", pick(en, "Khóa nhà vận hành", "Operator keys"), keys.keys().iter().map(|k| k.key_id.as_str()).collect::<Vec<_>>().join(", "));
            let (sequence, revoked) = gate.validator().revocation_status();
            println!("{}: #{sequence} ({revoked})", pick(en, "Danh sách thu hồi", "Revocation list"));
            let log = gate.tap_log_status()?;
            println!(
                "{}: {} ({} {}, {} {})",
                pick(en, "Lượt đã ghi", "Taps logged"),
                log.logged,
                log.accepted,
                pick(en, "được qua", "accepted"),
                log.not_uploaded,
                pick(en, "chưa gửi", "not uploaded")
            );
            Ok(true)
        }
    }
}
