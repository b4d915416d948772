//! `congdan`: a terminal shell that drives the core exactly as a phone does.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
mod agency;
mod drafts;
mod gate;
mod id;
mod login;
mod sign;
mod ticket;

use congdan_core::catalog::{FieldType, ProcedureKind};
use congdan_core::identity::SessionState;
use congdan_core::platform::Platform;
use congdan_core::sync::SyncState;
use congdan_core::{Core, CoreConfig, Error};

#[derive(Parser)]
#[command(name = "congdan", version, about = "The congdan citizen app, in a terminal")]
struct Cli {
    /// The congdan server.
    #[arg(long, env = "CONGDAN_SERVER", default_value = "http://127.0.0.1:8080", global = true)]
    server: String,
    /// Where this "phone" keeps its data.
    #[arg(long, env = "CONGDAN_DATA_DIR", default_value = ".congdan", global = true)]
    data_dir: PathBuf,
    /// Messages in English instead of Vietnamese.
    #[arg(long, global = true)]
    english: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The procedure catalog (works offline after one sync).
    Catalog {
        #[command(subcommand)]
        action: CatalogAction,
    },
    /// Log in with the national electronic identity (VNeID; the built-in provider locally).
    Login {
        /// Complete the built-in development provider's form as this demo resident (lan, minh,
        /// staff, operator) instead of printing the address to open.
        #[arg(long)]
        demo_user: Option<String>,
        /// How long to wait for the browser to come back, in seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Log out: revoke the session on the server and wipe it here (drafts stay).
    Logout,
    /// Who is logged in, as the server says (an authenticated call).
    Whoami,
    /// The session on this device (works offline).
    Session,
    /// Pull everything from the server: the catalog, and the resident's own data when logged in.
    Sync,
    /// Case drafts (offline; `submit` queues them for sending).
    Draft {
        #[command(subcommand)]
        action: drafts::DraftAction,
    },
    /// Your submitted cases and their status.
    Case {
        #[command(subcommand)]
        action: drafts::CaseAction,
    },
    /// Send what waits in the outbox now.
    Send,
    /// Agency staff (a role `agency:<CODE>`): incoming cases and their statuses.
    Agency {
        #[command(subcommand)]
        action: agency::AgencyAction,
    },
    /// Signature requests from agencies: list, show (with the document), approve, decline.
    Sign {
        #[command(subcommand)]
        action: sign::SignAction,
    },
    /// Metro tickets: buy, list, and show the code for the gate (works offline).
    Ticket {
        #[command(subcommand)]
        action: ticket::TicketAction,
    },
    /// A metro gate: validate ticket codes (QR text or PNG) offline, sync keys, revocations, taps.
    Gate(gate::GateArgs),
    /// The identity credential: renew it, show it as a QR with the fields you pick (offline);
    /// at a front desk, fetch the city's keys and verify codes offline.
    Id {
        #[command(subcommand)]
        action: id::IdAction,
    },
}

#[derive(Subcommand)]
enum CatalogAction {
    /// Pull catalog changes from the server.
    Sync,
    /// List procedures (add --reports for hotline reports only).
    List {
        #[arg(long)]
        reports: bool,
    },
    /// Search with or without diacritics: `congdan catalog search tam tru`.
    Search {
        #[arg(required = true)]
        words: Vec<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Show one procedure with its form.
    Show { code: String },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let english = cli.english;
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let (vi, en) = e.user_message();
            eprintln!("{}", if english { en } else { vi });
            eprintln!("  ({e})");
            ExitCode::FAILURE
        }
    }
}

pub(crate) fn pick<'a>(english: bool, vi: &'a str, en: &'a str) -> &'a str {
    if english {
        en
    } else {
        vi
    }
}

async fn sync(core: &Core, en: bool) -> Result<(), Error> {
    let report = core
        .sync(&|p| {
            eprintln!("  {}: {} changes{}", p.feed, p.changes_applied, if p.has_more { "…" } else { "" });
            true
        })
        .await?;
    let count = core.catalog().status()?.procedure_count;
    match report.state {
        SyncState::UpToDate => println!(
            "{} ({} {}, {} {})",
            pick(en, "Đã cập nhật", "Up to date"),
            report.changes_applied,
            pick(en, "thay đổi", "changes"),
            count,
            pick(en, "thủ tục", "procedures"),
        ),
        SyncState::Offline => println!(
            "{} ({count} {})",
            pick(en, "Chưa có kết nối; dùng dữ liệu đã lưu", "Offline; using saved data"),
            pick(en, "thủ tục", "procedures"),
        ),
        SyncState::LoginRequired => println!(
            "{} ({count} {})",
            pick(
                en,
                "Đã cập nhật danh mục. Vui lòng đăng nhập lại để đồng bộ hồ sơ của bạn",
                "Catalog up to date. Please log in again to sync your own data"
            ),
            pick(en, "thủ tục", "procedures"),
        ),
    }
    Ok(())
}

fn print_account(en: bool, account: &congdan_core::identity::wire::AccountInfo) {
    println!("{}: {}", pick(en, "Họ tên", "Name"), account.display_name);
    println!("{}: {}", pick(en, "Số định danh", "National ID"), account.national_id_masked);
    println!("{}: {}", pick(en, "Vai trò", "Roles"), account.roles.join(", "));
}

async fn run(cli: Cli) -> Result<(), Error> {
    std::fs::create_dir_all(&cli.data_dir)
        .map_err(|source| Error::DataDirectory { path: cli.data_dir.clone(), source })?;
    let platform = Platform::software(&cli.data_dir)
        .map_err(|e| Error::Platform { service: "keystore", message: e.0 })?;
    let core = Core::open(CoreConfig::new(&cli.data_dir, &cli.server), platform)?;
    let en = cli.english;
    match cli.command {
        Command::Catalog { action } => match action {
            CatalogAction::Sync => sync(&core, en).await?,
            CatalogAction::List { reports } => {
                let kind = reports.then_some(ProcedureKind::Report);
                for p in core.catalog().list(kind)? {
                    println!("{:<20} {}", p.code, pick(en, &p.name_vi, &p.name_en));
                }
            }
            CatalogAction::Search { words, limit } => {
                let found = core.catalog().search(&words.join(" "), limit)?;
                if found.is_empty() {
                    println!("{}", pick(en, "Không tìm thấy thủ tục nào.", "No procedure found."));
                }
                for p in found {
                    println!("{:<20} {}", p.code, pick(en, &p.name_vi, &p.name_en));
                }
            }
            CatalogAction::Show { code } => {
                let p = core.catalog().get(&code)?.ok_or(Error::NotFound { what: "procedure" })?;
                println!("{}  {}", p.code, pick(en, &p.name.vi, &p.name.en));
                println!("{}", pick(en, &p.description.vi, &p.description.en));
                println!(
                    "{}: {}  ·  {}: {} VND  ·  {}: {} {}",
                    pick(en, "Cơ quan", "Agency"),
                    pick(en, &p.agency.name.vi, &p.agency.name.en),
                    pick(en, "Lệ phí", "Fee"),
                    p.fee_vnd,
                    pick(en, "Thời hạn", "Processing time"),
                    p.processing_days,
                    pick(en, "ngày làm việc", "working days"),
                );
                println!("{}:", pick(en, "Thông tin cần điền", "Form"));
                for f in &p.fields {
                    println!(
                        "  {} {:<28} [{}]",
                        if f.required { "*" } else { " " },
                        pick(en, &f.label.vi, &f.label.en),
                        field_type_name(f.field_type)
                    );
                }
                if !p.attachments.is_empty() {
                    println!("{}:", pick(en, "Giấy tờ đính kèm", "Attachments"));
                    for a in &p.attachments {
                        println!("  {} {}", if a.required { "*" } else { " " }, pick(en, &a.label.vi, &a.label.en));
                    }
                }
            }
        },
        Command::Sync => sync(&core, en).await?,
        Command::Draft { action } => drafts::run_draft(&core, action, en).await?,
        Command::Case { action } => drafts::run_case(&core, action, en).await?,
        Command::Agency { action } => agency::run(&core, action, en).await?,
        Command::Ticket { action } => ticket::run(&core, action, en).await?,
        Command::Sign { action } => sign::run(&core, action, en).await?,
        Command::Id { action } => {
            if !id::run(&core, action, en).await? {
                // Scripts read the exit status: 2 when a code was refused.
                std::process::exit(2);
            }
        }
        Command::Gate(args) => {
            if !gate::run(&core, en, args).await? {
                // Scripts read the exit status: 2 when a code was refused (or nothing synced).
                std::process::exit(2);
            }
        }
        Command::Send => drafts::send(&core, en).await?,
        Command::Login { demo_user, timeout } => {
            let account = login::run(&core, demo_user.as_deref(), std::time::Duration::from_secs(timeout), en).await?;
            println!("{}", pick(en, "Đăng nhập thành công.", "Logged in."));
            print_account(en, &account);
        }
        Command::Logout => {
            let confirmed = core.identity().logout().await?;
            println!(
                "{}",
                if confirmed {
                    pick(en, "Đã đăng xuất.", "Logged out.")
                } else {
                    pick(
                        en,
                        "Đã đăng xuất trên máy này (chưa báo được máy chủ vì không có mạng).",
                        "Logged out on this device (the server could not be told: offline).",
                    )
                }
            );
        }
        Command::Whoami => print_account(en, &core.identity().account().await?),
        Command::Session => match core.identity().state()? {
            SessionState::LoggedOut => println!("{}", pick(en, "Chưa đăng nhập.", "Not logged in.")),
            SessionState::Active { account, .. } => {
                println!("{}", pick(en, "Đang đăng nhập.", "Logged in."));
                print_account(en, &account);
            }
            SessionState::LoginRequired { account, .. } => {
                println!("{}", pick(en, "Phiên đã hết hạn: vui lòng đăng nhập lại.", "Session ended: please log in again."));
                print_account(en, &account);
            }
        },
    }
    Ok(())
}

fn field_type_name(t: FieldType) -> &'static str {
    match t {
        FieldType::Text => "text",
        FieldType::Number => "number",
        FieldType::Date => "date",
        FieldType::Choice => "choice",
        FieldType::Phone => "phone",
        FieldType::NationalId => "national_id",
        FieldType::Address => "address",
        FieldType::Location => "location",
    }
}
