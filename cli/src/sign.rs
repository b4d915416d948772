//! `congdan sign …`: the resident's signature requests (list, show with the document fetched and
//! kept for offline reading, approve, decline), and `congdan agency sign-request …`: the demo
//! agency creates requests with a PDF, lists them, shows one with the resident's decision,
//! cancels, and downloads verification bundles.

use clap::Subcommand;
use congdan_core::signing::agency::NewSignatureRequest;
use congdan_core::signing::agency_wire::AgencySignatureRequest;
use congdan_core::signing::{refusal_message, DecisionStatus, RequestState, SignatureRequestInfo};
use congdan_core::{Core, Error};

use crate::pick;

#[derive(Subcommand)]
pub enum SignAction {
    /// Your signature requests as last synced (run `congdan sync` first), pending first.
    List {
        /// Only requests in this state: pending, signed, declined, expired, cancelled.
        #[arg(long)]
        state: Option<String>,
    },
    /// One request: the full summary, and the document (fetched once, then read offline).
    Show { id: String },
    /// Approve: signed with this device's key, sent now or when the network is back.
    Approve { id: String },
    /// Decline, with an optional reason for the agency.
    Decline {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum SignRequestAction {
    /// Ask a resident to sign a PDF: `congdan agency sign-request create --resident 079165012345
    /// --pdf contract.pdf --title "…" --summary "…" --purpose "…"`.
    Create {
        /// The resident's national ID number.
        #[arg(long)]
        resident: String,
        #[arg(long)]
        pdf: std::path::PathBuf,
        #[arg(long)]
        title: String,
        /// The text the resident reads before signing (its hash is signed).
        #[arg(long)]
        summary: String,
        /// What the signature is for.
        #[arg(long)]
        purpose: String,
        /// Days until the request expires.
        #[arg(long, default_value_t = 7)]
        days: u64,
    },
    /// Your agency's requests, newest first.
    List {
        /// Only requests in this state: pending, signed, declined, expired, cancelled.
        #[arg(long)]
        state: Option<String>,
        /// The next page, as the previous page printed it.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// One request: its state and, once the resident decided, the decision.
    Show { id: String },
    /// Cancel a pending request.
    Cancel {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// The verification bundle of a decided request (JSON: statement, keys as PEM, attestation).
    Bundle {
        id: String,
        /// Write it here instead of printing it.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
}

fn state_name(en: bool, state: RequestState) -> &'static str {
    match state {
        RequestState::Pending => pick(en, "chờ ký", "pending"),
        RequestState::Signed => pick(en, "đã ký", "signed"),
        RequestState::Declined => pick(en, "đã từ chối", "declined"),
        RequestState::Expired => pick(en, "hết hạn", "expired"),
        RequestState::Cancelled => pick(en, "đã hủy", "cancelled"),
    }
}

fn decision_line(en: bool, info: &SignatureRequestInfo) -> Option<String> {
    let what = match info.decision? {
        congdan_core::signing::Intent::Approve => pick(en, "Bạn đã ký đồng ý", "You approved"),
        congdan_core::signing::Intent::Decline => pick(en, "Bạn đã từ chối", "You declined"),
    };
    let status = match info.decision_status {
        DecisionStatus::Queued => pick(en, "đang chờ gửi", "waiting to be sent"),
        DecisionStatus::Sent => pick(en, "đã gửi", "sent"),
        DecisionStatus::Refused => pick(en, "bị từ chối", "refused"),
        DecisionStatus::None => "",
    };
    let mut line = format!("{what} ({status})");
    if let Some(r) = info.refusal {
        let (vi, english) = refusal_message(r);
        line.push_str(&format!(": {}", pick(en, vi, english)));
    } else if let Some(code) = &info.refusal_code {
        line.push_str(&format!(": {code}"));
    }
    Some(line)
}

fn print_request(en: bool, info: &SignatureRequestInfo) {
    let r = &info.request;
    println!("{}  [{}]  {}", r.title, state_name(en, r.state), r.id);
    println!("{}: {}  ·  {}: {}", pick(en, "Cơ quan", "Agency"), r.agency_code, pick(en, "Mục đích", "Purpose"), r.purpose);
    println!("{}: {}", pick(en, "Hạn ký", "Expires"), crate::agency::time(r.expires_at as i64 * 1000));
    println!("\n{}\n", r.summary);
    println!(
        "{}: {} ({} bytes, SHA-256 {})",
        pick(en, "Tài liệu", "Document"),
        info.document_path.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| pick(en, "chưa tải", "not fetched").into()),
        r.document.size,
        r.document.sha256
    );
    if let Some(reason) = &info.state_reason {
        println!("{}: {reason}", pick(en, "Lý do", "Reason"));
    }
    if let Some(line) = decision_line(en, info) {
        println!("{line}");
    }
}

pub async fn run(core: &Core, action: SignAction, en: bool) -> Result<(), Error> {
    let signing = core.signing();
    match action {
        SignAction::List { state } => {
            let list = signing.list(parse_state(state.as_deref())?)?;
            if list.is_empty() {
                println!("{}", pick(en, "Không có yêu cầu ký nào.", "No signature requests."));
            }
            for info in list {
                let r = &info.request;
                let decided = decision_line(en, &info).map(|l| format!("  — {l}")).unwrap_or_default();
                println!("{}  {:<12} {}  {}{decided}", r.id, state_name(en, r.state), r.agency_code, r.title);
            }
        }
        SignAction::Show { id } => {
            let info = signing.get(&id)?;
            if info.document_path.is_none() {
                match signing.fetch_document(&id).await {
                    Ok(_) => {}
                    Err(Error::Offline(_)) => {
                        println!("{}", pick(en, "Chưa tải được tài liệu (không có mạng).", "The document could not be fetched (offline)."))
                    }
                    Err(e) => return Err(e),
                }
            }
            print_request(en, &signing.get(&id)?);
        }
        SignAction::Approve { id } => {
            signing.approve(&id)?;
            println!("{}", pick(en, "Đã ký đồng ý; sẽ gửi khi có mạng.", "Approved and signed; it is sent when online."));
            crate::drafts::send(core, en).await?;
            if let Some(line) = decision_line(en, &signing.get(&id)?) {
                println!("{line}");
            }
        }
        SignAction::Decline { id, reason } => {
            signing.decline(&id, reason.as_deref())?;
            println!("{}", pick(en, "Đã ký từ chối; sẽ gửi khi có mạng.", "Declined and signed; it is sent when online."));
            crate::drafts::send(core, en).await?;
            if let Some(line) = decision_line(en, &signing.get(&id)?) {
                println!("{line}");
            }
        }
    }
    Ok(())
}

fn parse_state(state: Option<&str>) -> Result<Option<RequestState>, Error> {
    match state {
        None => Ok(None),
        Some(s) => RequestState::parse(s).map(Some).ok_or(Error::InvalidConfig(format!("unknown state {s}"))),
    }
}

fn secs(at: u64) -> String {
    crate::agency::time(at as i64 * 1000)
}

/// One line per request of the agency's list.
fn print_agency_line(en: bool, r: &AgencySignatureRequest) {
    let resident = r.resident_national_id_masked.as_deref().map(|m| format!("  {m}")).unwrap_or_default();
    println!("{}  {:<12} {}{resident}  {}", r.id, state_name(en, r.state), secs(r.created_at), r.title);
}

/// A request as its agency sees it, with the decision when there is one.
fn print_agency_request(en: bool, r: &AgencySignatureRequest) {
    println!("{}  [{}]  {}", r.title, state_name(en, r.state), r.id);
    if let Some(resident) = &r.resident_national_id_masked {
        println!("{}: {resident}", pick(en, "Người ký", "Resident"));
    }
    println!("{}: {}  ·  {}: {}", pick(en, "Cơ quan", "Agency"), r.agency_code, pick(en, "Mục đích", "Purpose"), r.purpose);
    println!("{}: {}  ·  {}: {}", pick(en, "Tạo lúc", "Created"), secs(r.created_at), pick(en, "Hạn ký", "Expires"), secs(r.expires_at));
    println!("{}: {} bytes, SHA-256 {}", pick(en, "Tài liệu", "Document"), r.document.size, r.document.sha256);
    if let Some(at) = r.cancelled_at {
        let reason = r.cancel_reason.as_deref().map(|why| format!(": {why}")).unwrap_or_default();
        println!("{} {}{reason}", pick(en, "Đã hủy lúc", "Cancelled at"), secs(at));
    }
    if let Some(d) = &r.decision {
        let what = match d.intent {
            congdan_core::signing::Intent::Approve => pick(en, "Người dân đã ký đồng ý", "The resident approved"),
            congdan_core::signing::Intent::Decline => pick(en, "Người dân đã từ chối", "The resident declined"),
        };
        let reason = d.decline_reason.as_deref().map(|why| format!(": {why}")).unwrap_or_default();
        println!("{what} ({} {}){reason}", pick(en, "ký lúc", "signed at"), secs(d.signed_at));
        println!("{}: {}", pick(en, "Khóa thiết bị", "Device key"), d.device_key_id);
    }
}

pub async fn run_agency(core: &Core, action: SignRequestAction, en: bool) -> Result<(), Error> {
    let agency = core.signing().agency();
    match action {
        SignRequestAction::Create { resident, pdf, title, summary, purpose, days } => {
            let bytes = std::fs::read(&pdf).map_err(|source| Error::DataDirectory { path: pdf.clone(), source })?;
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            let request = NewSignatureRequest {
                resident_national_id: resident,
                title,
                summary,
                purpose,
                expires_at: now + days.clamp(1, 90) * 86_400,
                agency_code: None,
            };
            let created = agency.create(&request, &bytes).await?;
            if let Some(resident) = &created.resident_national_id_masked {
                println!("{}: {resident}  ·  {}: {}", pick(en, "Người ký", "Resident"), pick(en, "Hạn ký", "Expires"), secs(created.expires_at));
            }
            // The id last: scripts take the last word.
            println!("{}: {}", pick(en, "Đã tạo yêu cầu ký", "Signature request created"), created.id);
        }
        SignRequestAction::List { state, cursor } => {
            let page = agency.list(parse_state(state.as_deref())?, cursor.as_deref()).await?;
            if page.requests.is_empty() {
                println!("{}", pick(en, "Không có yêu cầu ký nào.", "No signature requests."));
            }
            for r in &page.requests {
                print_agency_line(en, r);
            }
            if let Some(next) = &page.next_cursor {
                println!("{}: --cursor {next}", pick(en, "Trang sau", "Next page"));
            }
        }
        SignRequestAction::Show { id } => print_agency_request(en, &agency.get(&id).await?),
        SignRequestAction::Cancel { id, reason } => {
            let cancelled = agency.cancel(&id, reason.as_deref()).await?;
            print_agency_request(en, &cancelled);
        }
        SignRequestAction::Bundle { id, out } => {
            let bundle = agency.bundle(&id).await?;
            // The bundle is for tools and third parties: JSON, exactly as the server sent it.
            let text = serde_json::to_string_pretty(&bundle).map_err(|e| Error::BadData(e.to_string()))?;
            match out {
                Some(path) => {
                    std::fs::write(&path, text).map_err(|source| Error::DataDirectory { path: path.clone(), source })?;
                    println!("{}: {}", pick(en, "Đã lưu", "Saved"), path.display());
                }
                None => println!("{text}"),
            }
        }
    }
    Ok(())
}
