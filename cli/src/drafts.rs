//! `congdan draft …`, `congdan case …` and `congdan send`: case drafts from a terminal, offline
//! first, submitted through the core's outbox exactly as the phone does.

use clap::Subcommand;
use congdan_core::catalog::FieldType;
use congdan_core::drafts::store::DraftState;
use congdan_core::drafts::validation::{FieldIssue, FieldValue};
use congdan_core::outbox::OutboxState;
use congdan_core::{Core, Error};

use crate::pick;

#[derive(Subcommand)]
pub enum DraftAction {
    /// Start a draft of a procedure: `congdan draft new PA-1022`.
    New {
        procedure: String,
        #[arg(long)]
        title: Option<String>,
    },
    /// Your drafts, most recently edited first.
    List,
    /// One draft with its values and what still needs fixing.
    Show { id: String },
    /// Set a field (saved at once). Choices: comma-separated values; locations: `LAT,LON`.
    Set { id: String, field: String, value: String },
    /// Clear a field.
    Clear { id: String, field: String },
    /// Rename a draft.
    Rename { id: String, title: String },
    /// Delete a draft (undo with `congdan draft undelete`).
    Delete { id: String },
    /// Bring back a deleted draft.
    Undelete { id: String },
    /// Check and send: queued at once, delivered now or when the network is back.
    Submit { id: String },
    /// Attach a file (a photo, a PDF) under one of the procedure's attachment rules:
    /// `congdan draft attach ID rental_contract hop-dong.jpg`. Checked by its content.
    Attach { id: String, rule: String, file: std::path::PathBuf },
}

#[derive(Subcommand)]
pub enum CaseAction {
    /// Your cases (run `congdan sync` first for the latest status).
    List,
    /// One case with its timeline, the agency's messages and what it asks for.
    Show { case_id: String },
    /// Answer "more information needed": `congdan case answer CASE_ID FIELD VALUE [FIELD VALUE…]`.
    Answer {
        case_id: String,
        /// Pairs of a field id and its new value (typed like `draft set`).
        #[arg(required = true, num_args = 2.., value_names = ["FIELD", "VALUE"])]
        pairs: Vec<String>,
    },
}

/// A file refused as an attachment: the reason in the resident's language.
pub(crate) fn print_refusal(en: bool, e: &Error) {
    if let Error::AttachmentRefused { problem } = e {
        let text = problem.user_message();
        println!("{}", pick(en, &text.vi, &text.en));
    }
}

fn print_issues(en: bool, issues: &[FieldIssue]) {
    for issue in issues {
        println!("  ! {}", pick(en, &issue.message.vi, &issue.message.en));
    }
}

/// Reads a typed value for `field` from what was typed on the command line.
fn parse_value(field_type: FieldType, raw: &str) -> Result<FieldValue, Error> {
    let bad = |what: &str| Error::InvalidConfig(format!("expected {what}"));
    Ok(match field_type {
        FieldType::Number => FieldValue::Number(raw.trim().parse().map_err(|_| bad("a number"))?),
        FieldType::Date => FieldValue::Date(raw.trim().to_string()),
        FieldType::Choice => FieldValue::Choice(raw.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()),
        FieldType::Location => {
            let (lat, lon) = raw.split_once(',').ok_or_else(|| bad("LAT,LON"))?;
            FieldValue::Location {
                lat: lat.trim().parse().map_err(|_| bad("LAT,LON"))?,
                lon: lon.trim().parse().map_err(|_| bad("LAT,LON"))?,
            }
        }
        FieldType::Text | FieldType::Phone | FieldType::NationalId | FieldType::Address => FieldValue::Text(raw.to_string()),
    })
}

pub(crate) fn show_value(value: &FieldValue) -> String {
    match value {
        FieldValue::Text(t) | FieldValue::Date(t) => t.clone(),
        FieldValue::Number(n) => n.to_string(),
        FieldValue::Choice(c) => c.join(", "),
        FieldValue::Location { lat, lon } => format!("{lat}, {lon}"),
    }
}

fn state_name(en: bool, state: DraftState) -> &'static str {
    match state {
        DraftState::Editing => pick(en, "đang soạn", "editing"),
        DraftState::Submitting => pick(en, "đang chờ gửi", "waiting to send"),
        DraftState::Submitted => pick(en, "đã gửi", "sent"),
        DraftState::Rejected => pick(en, "bị từ chối, cần sửa", "refused, needs changes"),
    }
}

/// Sends what waits in the outbox and says what happened.
pub async fn send(core: &Core, en: bool) -> Result<(), Error> {
    let report = core.retry_outbox_now().await?;
    if report.sent + report.rejected > 0 {
        println!("{} {}, {} {}", pick(en, "Đã gửi", "Sent"), report.sent, pick(en, "bị từ chối", "refused"), report.rejected);
    }
    if report.offline && report.waiting > 0 {
        println!(
            "{} ({})",
            pick(en, "Chưa có kết nối; hồ sơ sẽ tự gửi khi có mạng", "Offline; it will be sent when you are online"),
            report.waiting
        );
    } else if report.login_required {
        println!("{}", pick(en, "Vui lòng đăng nhập lại để gửi hồ sơ.", "Please log in again to send."));
    }
    Ok(())
}

pub async fn run_draft(core: &Core, action: DraftAction, en: bool) -> Result<(), Error> {
    let drafts = core.drafts();
    match action {
        DraftAction::New { procedure, title } => {
            let d = drafts.create(&procedure, title.as_deref())?;
            println!("{}", d.id);
        }
        DraftAction::List => {
            for d in drafts.list()? {
                let number = d.case_number.map(|n| format!(" {n}")).unwrap_or_default();
                println!("{}  {:<18} {} [{}]{number}", d.id, d.procedure_code, d.title, state_name(en, d.state));
            }
        }
        DraftAction::Show { id } => {
            let d = drafts.get(&id)?.ok_or(Error::NotFound { what: "draft" })?;
            println!("{}  {} [{}]", d.summary.procedure_code, d.summary.title, state_name(en, d.summary.state));
            if let Some(number) = &d.summary.case_number {
                println!("{}: {number}", pick(en, "Mã hồ sơ", "Case number"));
            }
            for (field, value) in &d.values {
                println!("  {field} = {}", show_value(value));
            }
            if let Some(rejection) = &d.rejection {
                println!("{}: {}", pick(en, "Máy chủ từ chối", "Refused by the server"), rejection.code);
            }
            print_issues(en, &drafts.validate(&id)?);
            for item in drafts.outbox(&id)? {
                let state = match item.state {
                    OutboxState::Waiting => pick(en, "chờ gửi", "waiting to send"),
                    OutboxState::Sending => pick(en, "đang gửi", "sending"),
                    OutboxState::Sent => pick(en, "đã gửi", "sent"),
                    OutboxState::Rejected => pick(en, "bị từ chối", "refused"),
                };
                println!("  [{}] {state} ({} {})", item.kind, item.attempts, pick(en, "lần thử", "attempts"));
            }
        }
        DraftAction::Set { id, field, value } => {
            let d = drafts.get(&id)?.ok_or(Error::NotFound { what: "draft" })?;
            let procedure = core
                .catalog()
                .get(&d.summary.procedure_code)?
                .ok_or(Error::ProcedureUnavailable { code: d.summary.procedure_code.clone() })?;
            let form_field = procedure.fields.iter().find(|f| f.id == field).ok_or(Error::NotFound { what: "form field" })?;
            let issues = drafts.set_field(&id, &field, parse_value(form_field.field_type, &value)?)?;
            println!("{}", pick(en, "Đã lưu.", "Saved."));
            print_issues(en, &issues);
        }
        DraftAction::Clear { id, field } => drafts.clear_field(&id, &field)?,
        DraftAction::Rename { id, title } => drafts.rename(&id, &title)?,
        DraftAction::Delete { id } => {
            drafts.delete(&id)?;
            println!("{}", pick(en, "Đã xoá (có thể khôi phục).", "Deleted (can be undone)."));
        }
        DraftAction::Undelete { id } => drafts.undelete(&id)?,
        DraftAction::Attach { id, rule, file } => match drafts.attach_file(&id, &rule, &file) {
            Ok(a) => println!("{} {} ({} bytes)", pick(en, "Đã đính kèm", "Attached"), a.media_type, a.size),
            Err(e) => {
                print_refusal(en, &e);
                return Err(e);
            }
        },
        DraftAction::Submit { id } => {
            match drafts.submit(&id) {
                Err(Error::DraftInvalid { issues, .. }) => {
                    println!("{}", pick(en, "Hồ sơ còn thông tin cần sửa:", "Some information needs fixing:"));
                    print_issues(en, &issues);
                    return Err(Error::DraftInvalid { count: issues.len(), issues });
                }
                other => other?,
            };
            println!("{}", pick(en, "Đã đưa vào hàng chờ gửi.", "Queued for sending."));
            send(core, en).await?;
            if let Some(number) = drafts.get(&id)?.and_then(|d| d.summary.case_number) {
                println!("{}: {number}", pick(en, "Mã hồ sơ", "Case number"));
            }
        }
    }
    Ok(())
}

pub async fn run_case(core: &Core, action: CaseAction, en: bool) -> Result<(), Error> {
    match action {
        CaseAction::Show { case_id } => {
            let cases = core.drafts().cases()?;
            let case = cases
                .iter()
                .find(|c| c.case_id == case_id || c.case_number == case_id)
                .ok_or(Error::NotFound { what: "case" })?;
            println!("{}  {}  [{}]", case.case_number, case.procedure_code, case.status);
            println!("{}: {}", pick(en, "Hạn giải quyết", "Due"), case.due_date);
            for step in &case.timeline {
                let message = step.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default();
                println!("  {}  {}{message}", crate::agency::time(step.at_ms), step.status);
            }
            if !case.requested_fields.is_empty() {
                println!("{}: {}", pick(en, "Cần bổ sung", "Information needed"), case.requested_fields.join(", "));
            }
            if let Some(doc) = &case.result_document {
                println!("{}: {doc}", pick(en, "Kết quả", "Result"));
            }
        }
        CaseAction::Answer { case_id, pairs } => {
            if pairs.len() % 2 != 0 {
                return Err(Error::InvalidConfig("expected FIELD VALUE pairs".into()));
            }
            let drafts = core.drafts();
            let case = drafts
                .cases()?
                .into_iter()
                .find(|c| c.case_id == case_id || c.case_number == case_id)
                .ok_or(Error::NotFound { what: "case" })?;
            let procedure = core
                .catalog()
                .get(&case.procedure_code)?
                .ok_or(Error::ProcedureUnavailable { code: case.procedure_code.clone() })?;
            let mut values = std::collections::BTreeMap::new();
            for pair in pairs.chunks(2) {
                let field = procedure.fields.iter().find(|f| f.id == pair[0]).ok_or(Error::NotFound { what: "form field" })?;
                values.insert(pair[0].clone(), parse_value(field.field_type, &pair[1])?);
            }
            match drafts.answer(&case.case_id, values) {
                Err(Error::DraftInvalid { issues, .. }) => {
                    println!("{}", pick(en, "Thông tin bổ sung cần sửa:", "Some information needs fixing:"));
                    print_issues(en, &issues);
                    return Err(Error::DraftInvalid { count: issues.len(), issues });
                }
                other => other?,
            };
            println!("{}", pick(en, "Đã đưa câu trả lời vào hàng chờ gửi.", "Answer queued for sending."));
        }
        CaseAction::List => {
            for case in core.drafts().cases()? {
                println!(
                    "{}  {:<18} {}  {}: {}",
                    case.case_number,
                    case.procedure_code,
                    case.status,
                    pick(en, "hạn", "due"),
                    case.due_date
                );
                for step in &case.timeline {
                    if let Some(message) = &step.message {
                        println!("    {}: {message}", step.status);
                    }
                }
            }
        }
    }
    Ok(())
}
