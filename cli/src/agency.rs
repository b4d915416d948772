//! `congdan agency …`: the demo agency's side of cases, driven through the core like the app
//! agency staff use (log in as `staff`, whose role is `agency:CONG-AN-PHUONG-XA`).

use clap::Subcommand;
use congdan_core::{Core, Error};

use crate::pick;

#[derive(Subcommand)]
pub enum AgencyAction {
    /// Incoming cases of your agency, newest first.
    Cases {
        /// Only cases with this status (received, processing, needs_information,
        /// information_provided, done, rejected).
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// The next page: the cursor printed under the previous one.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// One case (by id or case number) with its values, timeline, files and who sent it.
    Show { case_id: String },
    /// The files of a case: `congdan agency attachment get CASE_ID SHA256 --out photo.jpg`.
    Attachment {
        #[command(subcommand)]
        action: AttachmentAction,
    },
    /// Move a case on: `congdan agency status CASE_ID needs_information --message "…" --field tenant_phone`.
    Status {
        case_id: String,
        /// processing, needs_information, done or rejected.
        status: String,
        /// What information is needed, or why the case is rejected.
        #[arg(long)]
        message: Option<String>,
        /// A field the resident must fix (with needs_information; repeat for more).
        #[arg(long = "field")]
        fields: Vec<String>,
        /// The result once done (a short text or a link to the document).
        #[arg(long)]
        result: Option<String>,
    },
    /// Signature requests: ask a resident to sign a PDF, list, cancel, download bundles.
    SignRequest {
        #[command(subcommand)]
        action: crate::sign::SignRequestAction,
    },
}

#[derive(Subcommand)]
pub enum AttachmentAction {
    /// Download one file of a case (by id or case number), checked against its SHA-256.
    Get {
        case_id: String,
        /// The file's SHA-256, as `agency show` lists it.
        sha256: String,
        /// Where to write it (default: the hash, in the current directory).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
}

/// `YYYY-MM-DD HH:MM` in Vietnam's time (UTC+7), from milliseconds since the epoch.
pub(crate) fn time(at_ms: i64) -> String {
    let secs = at_ms.div_euclid(1000) + 7 * 3600;
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let date = congdan_core::drafts::validation::CalendarDate::from_days_since_epoch(days);
    format!("{date} {:02}:{:02}", rest / 3600, rest % 3600 / 60)
}


fn print_case(en: bool, case: &congdan_core::drafts::wire::AgencyCaseView) {
    let overdue = if case.overdue { pick(en, "  QUÁ HẠN", "  OVERDUE") } else { "" };
    println!("{}  {}  [{}]{overdue}", case.case_number, case.procedure_code, case.status);
    println!("{}: {}  ·  {}: {}", pick(en, "Hạn giải quyết", "Due"), case.due_date, pick(en, "Mã", "Id"), case.case_id);
    match &case.resident {
        Some(r) => println!("{}: {} ({})", pick(en, "Người nộp", "Sent by"), r.display_name, r.national_id_masked),
        None => println!("{}", pick(en, "Người nộp: ẩn danh", "Sent by: anonymous")),
    }
    for (field, value) in &case.values {
        println!("  {field} = {}", crate::drafts::show_value(value));
    }
    for step in &case.timeline {
        let message = step.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default();
        println!("  {}  {}{message}", time(step.at_ms), step.status);
    }
    if !case.requested_fields.is_empty() {
        println!("{}: {}", pick(en, "Đã yêu cầu bổ sung", "Information asked for"), case.requested_fields.join(", "));
    }
    if let Some(doc) = &case.result_document {
        println!("{}: {doc}", pick(en, "Kết quả", "Result"));
    }
    if !case.attachments.is_empty() {
        println!("{}:", pick(en, "Tệp đính kèm", "Files"));
    }
    for file in &case.attachments {
        println!("  {}  {}  {}  {} {}", file.field, file.sha256, file.media_type, file.size, pick(en, "byte", "bytes"));
    }
}

/// A case id, or a case number looked up in the agency's latest cases.
async fn resolve(agency: &congdan_core::AgencyService, id_or_number: &str) -> Result<String, Error> {
    if !id_or_number.contains('-') || !id_or_number.chars().next().is_some_and(|c| c.is_ascii_uppercase()) {
        return Ok(id_or_number.to_string());
    }
    let found = agency.list_cases(None, 100, None).await?.cases.into_iter().find(|c| c.case_number == id_or_number);
    Ok(found.map_or_else(|| id_or_number.to_string(), |c| c.case_id))
}

pub async fn run(core: &Core, action: AgencyAction, en: bool) -> Result<(), Error> {
    let agency = core.agency();
    match action {
        AgencyAction::SignRequest { action } => crate::sign::run_agency(core, action, en).await?,
        AgencyAction::Cases { status, limit, cursor } => {
            let page = agency.list_cases(status.as_deref(), limit, cursor.as_deref()).await?;
            let cases = page.cases;
            if cases.is_empty() {
                println!("{}", pick(en, "Không có hồ sơ nào.", "No cases."));
            }
            for c in cases {
                let overdue = if c.overdue { pick(en, "  QUÁ HẠN", "  OVERDUE") } else { "" };
                println!(
                    "{}  {}  {:<18} {:<20} {}: {}{overdue}",
                    c.case_number,
                    c.case_id,
                    c.procedure_code,
                    c.status,
                    pick(en, "hạn", "due"),
                    c.due_date
                );
            }
            if let Some(next) = page.next_cursor {
                println!("{} --cursor {next}", pick(en, "Trang sau:", "Next page:"));
            }
        }
        AgencyAction::Attachment { action: AttachmentAction::Get { case_id, sha256, out } } => {
            let case_id = resolve(&agency, &case_id).await?;
            let dest = out.unwrap_or_else(|| std::path::PathBuf::from(&sha256));
            let size = agency.download_attachment(&case_id, &sha256, &dest).await?;
            println!("{} {} ({size} {})", pick(en, "Đã tải về", "Downloaded to"), dest.display(), pick(en, "byte", "bytes"));
        }
        AgencyAction::Show { case_id } => print_case(en, &agency.get_case(&resolve(&agency, &case_id).await?).await?),
        AgencyAction::Status { case_id, status, message, fields, result } => {
            let case_id = resolve(&agency, &case_id).await?;
            let case = agency.set_status(&case_id, &status, message.as_deref(), &fields, result.as_deref()).await?;
            println!("{} {}", pick(en, "Đã chuyển trạng thái:", "Status changed:"), case.status);
            print_case(en, &case);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_are_in_vietnam() {
        assert_eq!(super::time(0), "1970-01-01 07:00");
        assert_eq!(super::time(1_763_859_600_000), "2025-11-23 08:00");
    }
}
