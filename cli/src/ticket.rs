//! `congdan ticket …`: the rider's side of QR transit tickets, as the phone app does it: buy
//! (through the outbox, offline too), list, and show the rotating code as a QR in the terminal or
//! as a PNG file.

use clap::Subcommand;
use congdan_core::outbox::OutboxState;
use congdan_core::tickets::network::{self, LINE_1};
use congdan_core::tickets::store::PurchaseState;
use congdan_core::tickets::{Product, TicketStatus, TicketSummary};
use congdan_core::{Core, Error};

use crate::pick;

#[derive(Subcommand)]
pub enum TicketAction {
    /// Buy a ticket: `single --from 1 --to 14`, `day`, `three-day` or `monthly`. Sent now, or
    /// when the network is back.
    Buy {
        /// single, day, three-day, monthly.
        product: String,
        /// Origin station id (single journeys; see `congdan ticket stations`).
        #[arg(long)]
        from: Option<u64>,
        /// Destination station id.
        #[arg(long)]
        to: Option<u64>,
    },
    /// Your tickets on this phone (run `congdan sync` for ones bought on your other phones).
    List,
    /// Show a ticket's code for the gate (an id or its first characters): the QR in the
    /// terminal, and with --png a PNG file. Works offline.
    Show {
        id: String,
        /// Write the QR code as a PNG image to this file.
        #[arg(long)]
        png: Option<std::path::PathBuf>,
        /// Print only the code's text (base45), for scripts.
        #[arg(long)]
        text: bool,
    },
    /// Metro Line 1 stations and full fares from Bến Thành.
    Stations,
}

pub(crate) fn product_name(en: bool, p: Product) -> &'static str {
    match p {
        Product::SingleJourney => pick(en, "Vé lượt", "Single journey"),
        Product::DayPass => pick(en, "Vé 1 ngày", "Day pass"),
        Product::ThreeDayPass => pick(en, "Vé 3 ngày", "Three-day pass"),
        Product::MonthlyPass => pick(en, "Vé tháng", "Monthly pass"),
    }
}

fn status_name(en: bool, s: TicketStatus) -> &'static str {
    match s {
        TicketStatus::Active => pick(en, "dùng được", "active"),
        TicketStatus::NotYetValid => pick(en, "chưa đến giờ", "not yet valid"),
        TicketStatus::Expired => pick(en, "hết hạn", "expired"),
        TicketStatus::Revoked => pick(en, "đã thu hồi", "revoked"),
        TicketStatus::OtherDevice => pick(en, "trên điện thoại khác", "on another phone"),
    }
}

fn station_name(en: bool, id: Option<u64>) -> String {
    match id.and_then(network::station) {
        Some(s) => pick(en, s.name_vi, s.name_en).to_string(),
        None => "?".into(),
    }
}

/// Seconds since the epoch as `YYYY-MM-DD HH:MM` in Vietnam's time (UTC+7).
pub(crate) fn local_time(secs: u64) -> String {
    let local = secs as i64 + 7 * 3600;
    let date = congdan_core::drafts::validation::CalendarDate::from_days_since_epoch(local.div_euclid(86_400));
    let minutes = local.rem_euclid(86_400) / 60;
    format!("{date} {:02}:{:02}", minutes / 60, minutes % 60)
}

fn print_ticket(en: bool, t: &TicketSummary) {
    let route = match t.product {
        Product::SingleJourney => format!(" {} → {}", station_name(en, t.origin), station_name(en, t.destination)),
        _ => String::new(),
    };
    let concession = t.concession.map(|c| format!(" ({})", c.name())).unwrap_or_default();
    println!(
        "{}  {}{}{}  {} VND  {} {}  [{}]",
        &t.id,
        product_name(en, t.product),
        route,
        concession,
        t.fare_vnd,
        pick(en, "hạn đến", "valid until"),
        local_time(t.valid_until),
        status_name(en, t.status)
    );
}

/// A ticket id, or the first characters of one (unique among this phone's tickets).
fn resolve(core: &Core, id: &str) -> Result<String, Error> {
    let id = id.trim().to_ascii_lowercase();
    let matches: Vec<String> =
        core.tickets().list()?.into_iter().map(|t| t.id).filter(|t| t.starts_with(&id)).collect();
    match matches.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(Error::NotFound { what: "ticket" }),
    }
}

pub async fn run(core: &Core, action: TicketAction, en: bool) -> Result<(), Error> {
    let tickets = core.tickets();
    match action {
        TicketAction::Buy { product, from, to } => {
            let product = Product::from_name(product.trim()).ok_or(Error::Ticket {
                problem: congdan_core::tickets::TicketProblem::InvalidOrder(
                    congdan_core::tickets::TicketError::UnknownProduct(0),
                ),
            })?;
            let purchase = tickets.buy(product, from, to)?;
            let report = core.send_outbox().await?;
            let state = tickets.purchases()?.into_iter().find(|p| p.id == purchase).map(|p| p.state);
            match state {
                Some(PurchaseState::Issued) => {
                    println!("{}", pick(en, "Đã mua vé.", "Ticket bought."));
                    let ticket_id = tickets.purchases()?.into_iter().find(|p| p.id == purchase).and_then(|p| p.ticket_id);
                    if let Some(t) = ticket_id.and_then(|id| tickets.get(&id).ok()) {
                        print_ticket(en, &t);
                    }
                }
                Some(PurchaseState::Refused) => {
                    let reason = tickets
                        .outbox(&purchase)?
                        .into_iter()
                        .find_map(|i| i.rejection)
                        .map(|r| r.message)
                        .unwrap_or_default();
                    println!("{} {reason}", pick(en, "Không mua được vé:", "The purchase was refused:"));
                }
                _ => {
                    let why = if report.offline {
                        pick(en, "chưa có mạng", "offline")
                    } else if report.login_required {
                        pick(en, "cần đăng nhập", "login required")
                    } else {
                        pick(en, "sẽ gửi lại sau", "will retry")
                    };
                    println!(
                        "{} ({why}): {purchase}",
                        pick(en, "Đã ghi nhận yêu cầu mua vé, sẽ gửi khi có thể", "Purchase queued, sent when possible")
                    );
                }
            }
        }
        TicketAction::List => {
            let list = tickets.list()?;
            if list.is_empty() {
                println!("{}", pick(en, "Chưa có vé nào.", "No tickets yet."));
            }
            for t in &list {
                print_ticket(en, t);
            }
            for p in tickets.purchases()?.into_iter().filter(|p| p.state == PurchaseState::Waiting) {
                let sending = tickets.outbox(&p.id)?.iter().any(|i| i.state == OutboxState::Sending);
                println!(
                    "{}  {}  [{}]",
                    p.id,
                    product_name(en, p.product),
                    if sending { pick(en, "đang gửi", "sending") } else { pick(en, "đang chờ gửi", "waiting to be sent") }
                );
            }
        }
        TicketAction::Show { id, png, text } => {
            let id = resolve(core, &id)?;
            let code = tickets.current_code(&id)?;
            if text {
                println!("{}", code.text);
                return Ok(());
            }
            if let Some(path) = png {
                let bytes = code.qr.to_png(8).map_err(|e| Error::BadData(e.to_string()))?;
                std::fs::write(&path, bytes).map_err(|source| Error::DataDirectory { path: path.clone(), source })?;
                println!("{} {}", pick(en, "Đã ghi mã QR vào", "QR code written to"), path.display());
            }
            print!("{}", code.qr.to_text_blocks());
            if let Ok(t) = tickets.get(&id) {
                print_ticket(en, &t);
            }
            println!(
                "{} {} {}",
                pick(en, "Mã đổi sau", "The code changes in"),
                code.seconds_remaining,
                pick(en, "giây.", "seconds.")
            );
        }
        TicketAction::Stations => {
            for s in LINE_1 {
                let fare = network::single_fare(1, s.id, None).unwrap_or(network::MIN_SINGLE_FARE);
                println!("{:>2}  {:<24} {:>5.1} km  {:>6} VND", s.id, pick(en, s.name_vi, s.name_en), s.position_m as f64 / 1000.0, fare);
            }
            println!(
                "{}: {} / {} / {} VND",
                pick(en, "Vé ngày / 3 ngày / tháng", "Day / three-day / monthly pass"),
                network::DAY_PASS,
                network::THREE_DAY_PASS,
                network::MONTHLY_PASS
            );
        }
    }
    Ok(())
}
