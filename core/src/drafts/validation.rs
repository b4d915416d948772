//! Form validation for case drafts, shared by the phone and the server.
//!
//! The phone runs [`validate_field`] live while the resident types and [`validate`] before it
//! queues a submission; the server runs [`validate`] again on every submission because it is the
//! authority. Both run this one code, so they can never disagree about what is valid.
//!
//! Each field gets at most one issue: the first thing to fix. A person (often an older one on a
//! small screen) reads one short message per field, and fixing it may show the next one.
//!
//! **Invariant:** a message names the field and the limit, never the value that was typed: values
//! are personal data and messages end up in logs and screenshots.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

use crate::catalog::model::{
    days_in_month, AttachmentRule, DateBound, FieldType, FormField, LocalizedText, Procedure,
};
use crate::identity::national_id::{self, NationalIdError};

/// How many files one attachment rule takes at most (the front and back of a card, a few photos
/// of a flooded street). The catalog has no per-rule count, so this bounds what a draft can hold.
pub const MAX_FILES_PER_ATTACHMENT: u32 = 10;

/// A field's value as the form holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum FieldValue {
    /// Text, address, phone and national ID fields: exactly what was typed.
    Text(String),
    Number(f64),
    /// `YYYY-MM-DD`, as the date picker gives it.
    Date(String),
    /// The chosen option values (one, unless the field allows several).
    Choice(Vec<String>),
    Location {
        lat: f64,
        lon: f64,
    },
}

/// One problem with one field (or one attachment rule, whose id is then the `field_id`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldIssue {
    pub field_id: String,
    pub code: IssueCode,
    /// Vietnamese first, English second; never contains the typed value.
    pub message: LocalizedText,
}

/// What is wrong, for code that reacts to it (highlighting, counting); the message is for people.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IssueCode {
    Required,
    WrongType,
    TooShort,
    TooLong,
    BelowMin,
    AboveMax,
    NotInteger,
    InvalidDate,
    DateTooEarly,
    DateTooLate,
    NotAnOption,
    OneChoiceOnly,
    InvalidPhone,
    InvalidNationalId,
    InvalidLocation,
    UnknownField,
    AttachmentMissing,
    TooManyAttachments,
}

/// A day in the proleptic Gregorian calendar, without a time zone. Ordered by date.
///
/// Serialized as `YYYY-MM-DD`; deserializing checks that the date exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CalendarDate {
    // Field order matters: the derived `Ord` compares year, then month, then day.
    pub year: i32,
    pub month: u32,
    pub day: u32,
}

/// Vietnam's offset from UTC. Vietnam has no daylight saving time, so a fixed offset is exact.
const VIETNAM_OFFSET_SECS: i64 = 7 * 3600;

impl CalendarDate {
    /// Parses exactly `YYYY-MM-DD` (years 0001 to 9999) and refuses dates that do not exist
    /// (`2023-02-29`). Never panics, whatever the input.
    pub fn parse(s: &str) -> Option<CalendarDate> {
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let num = |range: std::ops::Range<usize>| -> Option<u32> {
            let part = b.get(range)?;
            if !part.iter().all(u8::is_ascii_digit) {
                return None;
            }
            Some(part.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0')))
        };
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let year = i32::try_from(year).ok()?;
        if year == 0 || !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return None;
        }
        Some(CalendarDate { year, month, day })
    }

    /// Today in Vietnam (UTC+7): a date of birth typed at 6 a.m. in Ho Chi Minh City is
    /// checked against that day, not against yesterday in UTC.
    pub fn today_utc_plus_7() -> CalendarDate {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2))
            .unwrap_or(0);
        CalendarDate::from_days_since_epoch((secs + VIETNAM_OFFSET_SECS).div_euclid(86_400))
    }

    /// The date `days` later (earlier when negative). Saturates at the ends of the `i32` year
    /// range instead of overflowing.
    pub fn add_days(self, days: i32) -> CalendarDate {
        CalendarDate::from_days_since_epoch(self.days_since_epoch() + i64::from(days))
    }

    /// Whether this date exists in the calendar (a hand-built value may not).
    pub fn is_valid(&self) -> bool {
        (1..=12).contains(&self.month)
            && self.day >= 1
            && self.day <= days_in_month(self.year, self.month)
    }

    /// Days since 1970-01-01 (Howard Hinnant's `days_from_civil`). Works on any `i32` year
    /// without overflow because it computes in `i64`.
    fn days_since_epoch(self) -> i64 {
        let (m, d) = (i64::from(self.month), i64::from(self.day));
        let y = i64::from(self.year) - i64::from(m <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// Monday 0 … Sunday 6 (1970-01-01 was a Thursday).
    pub fn weekday(self) -> u32 {
        (self.days_since_epoch() + 3).rem_euclid(7) as u32
    }

    /// The date `days` after 1970-01-01 (Hinnant's `civil_from_days`): the one place the crate
    /// turns a day count into a calendar date.
    pub fn from_days_since_epoch(days: i64) -> CalendarDate {
        // Keep the arithmetic far from i64 overflow; outside this range the year would not fit
        // in i32 anyway.
        const LIMIT: i64 = 800_000_000_000;
        let z = days.clamp(-LIMIT, LIMIT) + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        match i32::try_from(year) {
            Ok(year) => CalendarDate { year, month, day },
            Err(_) if year < 0 => CalendarDate {
                year: i32::MIN,
                month: 1,
                day: 1,
            },
            Err(_) => CalendarDate {
                year: i32::MAX,
                month: 12,
                day: 31,
            },
        }
    }

    /// `31/12/2026`: how dates are written in Vietnam.
    fn vietnamese(self) -> String {
        format!("{:02}/{:02}/{:04}", self.day, self.month, self.year)
    }

    /// `31 December 2026`: unambiguous for readers used to either day-month or month-day order.
    fn english(self) -> String {
        const MONTHS: [&str; 12] = [
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ];
        let name = (self.month as usize)
            .checked_sub(1)
            .and_then(|i| MONTHS.get(i))
            .unwrap_or(&"?");
        format!("{} {} {}", self.day, name, self.year)
    }
}

impl fmt::Display for CalendarDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// The error of parsing a [`CalendarDate`]; it never contains the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a calendar date in the form YYYY-MM-DD")]
pub struct InvalidCalendarDate;

impl FromStr for CalendarDate {
    type Err = InvalidCalendarDate;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CalendarDate::parse(s).ok_or(InvalidCalendarDate)
    }
}

impl TryFrom<String> for CalendarDate {
    type Error = InvalidCalendarDate;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<CalendarDate> for String {
    fn from(d: CalendarDate) -> String {
        d.to_string()
    }
}

/// Normalizes a Vietnamese phone number to its national form `0xxxxxxxxx`, or `None` if it is
/// not one.
///
/// Accepted: mobile numbers `0` + 9 digits starting 3, 5, 7, 8 or 9 (`0912 345 678`), written
/// also as `+84…`/`84…` without the 0; landlines `02` + 9 digits (`028 3822 1234`), also as
/// `+84 28…`/`84 28…`. Spaces, dots and dashes may separate digit groups, the way people copy
/// numbers from signs and business cards. Never panics, whatever the input.
pub fn normalize_phone(input: &str) -> Option<String> {
    let s = input.trim();
    let (international, rest) = match s.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    // A separator may not start the number ("+ 84" and "-0912…" are not numbers people write).
    if !rest.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let mut digits = String::with_capacity(12);
    for c in rest.chars() {
        if c.is_ascii_digit() {
            if digits.len() == 12 {
                return None; // longer than any Vietnamese number
            }
            digits.push(c);
        } else if !(c == '.' || c == '-' || c.is_whitespace()) {
            return None;
        }
    }
    let national = match digits.strip_prefix("84") {
        // `84…` without the plus is only taken when it has exactly the length of a full
        // international number, so a local number that happens to start with 84 is not misread.
        Some(after) if international || digits.len() >= 11 => after,
        _ if international => return None,
        _ => digits.strip_prefix('0')?,
    };
    let b = national.as_bytes();
    // Mobile: 9 digits after the 0, from the 03/05/07/08/09 ranges; landline: 02 + 9 digits.
    let valid = matches!(
        (b.first(), b.len()),
        (Some(b'3' | b'5' | b'7' | b'8' | b'9'), 9) | (Some(b'2'), 10)
    );
    valid.then(|| format!("0{national}"))
}

/// Removes the spaces people put between digit groups of a national ID number ("079 165 012
/// 345"). The result is then checked with [`national_id::validate`].
pub fn compact_national_id(input: &str) -> String {
    input.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Checks one field's value: live while typing, and as part of [`validate`]. `value` is `None`
/// when the field has not been filled in. Returns at most one issue.
pub fn validate_field(
    field: &FormField,
    value: Option<&FieldValue>,
    today: CalendarDate,
) -> Vec<FieldIssue> {
    check_field(field, value, today)
        .map(|(code, vi, en)| issue(field, code, &vi, &en))
        .into_iter()
        .collect()
}

/// Checks a whole draft: every field in form order, then values that belong to no field (in key
/// order), then the attachment rules in order (the rule id is the `field_id`), then attachments
/// under no rule. `attachments` maps a rule id to the number of files attached under it.
pub fn validate(
    procedure: &Procedure,
    values: &BTreeMap<String, FieldValue>,
    attachments: &BTreeMap<String, u32>,
    today: CalendarDate,
) -> Vec<FieldIssue> {
    let mut issues = Vec::new();
    for field in &procedure.fields {
        issues.extend(validate_field(field, values.get(&field.id), today));
    }
    for id in values.keys() {
        if !procedure.fields.iter().any(|f| &f.id == id) {
            issues.push(unknown(id));
        }
    }
    for rule in &procedure.attachments {
        let count = attachments.get(&rule.id).copied().unwrap_or(0);
        if let Some(issue) = check_attachment_count(rule, count) {
            issues.push(issue);
        }
    }
    for (id, &count) in attachments {
        if count > 0 && !procedure.attachments.iter().any(|r| &r.id == id) {
            issues.push(unknown(id));
        }
    }
    issues
}

fn check_attachment_count(rule: &AttachmentRule, count: u32) -> Option<FieldIssue> {
    let (code, vi, en) = if count == 0 && rule.required {
        (
            IssueCode::AttachmentMissing,
            "vui lòng đính kèm giấy tờ này.".to_string(),
            "please attach this document.".to_string(),
        )
    } else if count > MAX_FILES_PER_ATTACHMENT {
        (
            IssueCode::TooManyAttachments,
            format!("chỉ được đính kèm tối đa {MAX_FILES_PER_ATTACHMENT} tệp."),
            format!("at most {MAX_FILES_PER_ATTACHMENT} files."),
        )
    } else {
        return None;
    };
    Some(FieldIssue {
        field_id: rule.id.clone(),
        code,
        message: LocalizedText {
            vi: format!("{}: {vi}", rule.label.vi),
            en: format!("{}: {en}", rule.label.en),
        },
    })
}

fn unknown(id: &str) -> FieldIssue {
    FieldIssue {
        field_id: id.to_string(),
        code: IssueCode::UnknownField,
        message: LocalizedText {
            vi: "Hồ sơ có thông tin không thuộc thủ tục này. Vui lòng cập nhật ứng dụng hoặc tạo lại hồ sơ.".into(),
            en: "The form has information that does not belong to this procedure. Please update the app or start the form again.".into(),
        },
    }
}

fn issue(field: &FormField, code: IssueCode, vi: &str, en: &str) -> FieldIssue {
    FieldIssue {
        field_id: field.id.clone(),
        code,
        message: LocalizedText {
            vi: format!("{}: {vi}", field.label.vi),
            en: format!("{}: {en}", field.label.en),
        },
    }
}

/// The one issue of a field, as (code, Vietnamese, English) without the label.
type Problem = (IssueCode, String, String);

fn problem(code: IssueCode, vi: impl Into<String>, en: impl Into<String>) -> Option<Problem> {
    Some((code, vi.into(), en.into()))
}

fn check_field(
    field: &FormField,
    value: Option<&FieldValue>,
    today: CalendarDate,
) -> Option<Problem> {
    let Some(value) = value.filter(|v| !is_empty(v)) else {
        return if field.required {
            required(field.field_type)
        } else {
            None
        };
    };
    let c = &field.constraints;
    match (field.field_type, value) {
        (FieldType::Text | FieldType::Address, FieldValue::Text(s)) => {
            // Counted in characters as people see them: NFC folds a letter typed with separate
            // accent marks (some keyboards do) into one character, and bytes never count.
            let len = s.trim().nfc().count();
            let len = u32::try_from(len).unwrap_or(u32::MAX);
            match (c.min_length, c.max_length) {
                (Some(min), _) if len < min => problem(
                    IssueCode::TooShort,
                    format!("cần ít nhất {min} ký tự."),
                    format!("at least {min} {}.", plural(min, "character")),
                ),
                (_, Some(max)) if len > max => problem(
                    IssueCode::TooLong,
                    format!("tối đa {max} ký tự, vui lòng viết ngắn lại."),
                    format!(
                        "at most {max} {}, please shorten it.",
                        plural(max, "character")
                    ),
                ),
                _ => None,
            }
        }
        (FieldType::Phone, FieldValue::Text(s)) => match normalize_phone(s) {
            Some(_) => None,
            None => problem(
                IssueCode::InvalidPhone,
                "số điện thoại chưa đúng. Ví dụ: 0912 345 678 hoặc 028 3822 1234.",
                "this phone number is not valid. For example: 0912 345 678 or 028 3822 1234.",
            ),
        },
        (FieldType::NationalId, FieldValue::Text(s)) => {
            let year =
                u16::try_from(today.year).unwrap_or(if today.year < 0 { 0 } else { u16::MAX });
            match national_id::validate(&compact_national_id(s), year) {
                Ok(()) => None,
                Err(NationalIdError::NotTwelveDigits) => problem(
                    IssueCode::InvalidNationalId,
                    "số định danh cá nhân phải có đúng 12 chữ số.",
                    "the personal ID number has exactly 12 digits.",
                ),
                Err(NationalIdError::UnknownProvince | NationalIdError::BirthYearOutOfRange) => {
                    problem(
                        IssueCode::InvalidNationalId,
                        "số định danh cá nhân chưa đúng. Vui lòng xem lại trên thẻ căn cước.",
                        "this personal ID number is not valid. Please check it on the ID card.",
                    )
                }
            }
        }
        (FieldType::Number, FieldValue::Number(x)) => check_number(*x, field),
        (FieldType::Date, FieldValue::Date(s)) => check_date(s, field, today),
        (FieldType::Choice, FieldValue::Choice(chosen)) => {
            if !chosen
                .iter()
                .all(|v| c.options.iter().any(|o| &o.value == v))
            {
                problem(
                    IssueCode::NotAnOption,
                    "vui lòng chọn trong danh sách.",
                    "please choose from the list.",
                )
            } else if chosen.len() > 1 && c.multiple != Some(true) {
                problem(
                    IssueCode::OneChoiceOnly,
                    "chỉ được chọn một.",
                    "please choose only one.",
                )
            } else {
                None
            }
        }
        (FieldType::Location, FieldValue::Location { lat, lon }) => {
            let ok = lat.is_finite()
                && lon.is_finite()
                && (-90.0..=90.0).contains(lat)
                && (-180.0..=180.0).contains(lon);
            if ok {
                None
            } else {
                problem(
                    IssueCode::InvalidLocation,
                    "vị trí không hợp lệ. Vui lòng chọn lại trên bản đồ.",
                    "this place is not valid. Please pick it again on the map.",
                )
            }
        }
        (expected, _) => wrong_type(expected),
    }
}

/// Whether a value counts as "not filled in". Numbers and locations always count as filled.
fn is_empty(value: &FieldValue) -> bool {
    match value {
        FieldValue::Text(s) | FieldValue::Date(s) => s.trim().is_empty(),
        FieldValue::Choice(v) => v.is_empty(),
        FieldValue::Number(_) | FieldValue::Location { .. } => false,
    }
}

fn required(t: FieldType) -> Option<Problem> {
    match t {
        FieldType::Choice => problem(IssueCode::Required, "vui lòng chọn.", "please choose."),
        FieldType::Date => problem(
            IssueCode::Required,
            "vui lòng chọn ngày.",
            "please choose a date.",
        ),
        FieldType::Location => problem(
            IssueCode::Required,
            "vui lòng chọn vị trí trên bản đồ.",
            "please pick the place on the map.",
        ),
        _ => problem(
            IssueCode::Required,
            "vui lòng điền mục này.",
            "please fill this in.",
        ),
    }
}

/// A value of the wrong kind only comes from a bug or an outdated app, but the message still
/// says what the field wants, so the person can enter it again.
fn wrong_type(expected: FieldType) -> Option<Problem> {
    let (vi, en) = match expected {
        FieldType::Text | FieldType::Address => ("vui lòng nhập chữ.", "please type text."),
        FieldType::Number => ("vui lòng nhập một số.", "please enter a number."),
        FieldType::Date => ("vui lòng chọn ngày.", "please choose a date."),
        FieldType::Choice => (
            "vui lòng chọn trong danh sách.",
            "please choose from the list.",
        ),
        FieldType::Phone => (
            "vui lòng nhập số điện thoại.",
            "please enter a phone number.",
        ),
        FieldType::NationalId => (
            "vui lòng nhập số định danh cá nhân 12 chữ số.",
            "please enter the 12-digit personal ID number.",
        ),
        FieldType::Location => (
            "vui lòng chọn vị trí trên bản đồ.",
            "please pick the place on the map.",
        ),
    };
    problem(IssueCode::WrongType, vi, en)
}

fn check_number(x: f64, field: &FormField) -> Option<Problem> {
    let c = &field.constraints;
    if !x.is_finite() {
        return wrong_type(FieldType::Number);
    }
    if c.integer == Some(true) && x.fract() != 0.0 {
        return problem(
            IssueCode::NotInteger,
            "vui lòng nhập số nguyên, không có phần lẻ.",
            "please enter a whole number.",
        );
    }
    if let Some(min) = c.min.filter(|&min| x < min) {
        return problem(
            IssueCode::BelowMin,
            format!("số nhỏ nhất được nhập là {}.", format_number(min, true)),
            format!(
                "the smallest allowed number is {}.",
                format_number(min, false)
            ),
        );
    }
    if let Some(max) = c.max.filter(|&max| x > max) {
        return problem(
            IssueCode::AboveMax,
            format!("số lớn nhất được nhập là {}.", format_number(max, true)),
            format!(
                "the largest allowed number is {}.",
                format_number(max, false)
            ),
        );
    }
    None
}

fn check_date(s: &str, field: &FormField, today: CalendarDate) -> Option<Problem> {
    let Some(date) = CalendarDate::parse(s.trim()) else {
        return problem(
            IssueCode::InvalidDate,
            "ngày không hợp lệ. Vui lòng chọn lại.",
            "this date is not valid. Please choose it again.",
        );
    };
    let c = &field.constraints;
    // Bounds were checked when the procedure was published; one that does not parse is ignored
    // rather than blocking every resident's form.
    let resolve = |bound: &Option<String>| -> Option<CalendarDate> {
        match DateBound::parse(bound.as_deref()?)? {
            DateBound::RelativeDays(n) => Some(today.add_days(n)),
            DateBound::Date { year, month, day } => Some(CalendarDate { year, month, day }),
        }
    };
    if let Some(earliest) = resolve(&c.not_before).filter(|&b| date < b) {
        return problem(
            IssueCode::DateTooEarly,
            format!(
                "vui lòng chọn ngày từ {} trở về sau.",
                earliest.vietnamese()
            ),
            format!("please choose a date on or after {}.", earliest.english()),
        );
    }
    if let Some(latest) = resolve(&c.not_after).filter(|&b| date > b) {
        return problem(
            IssueCode::DateTooLate,
            format!(
                "vui lòng chọn ngày từ {} trở về trước.",
                latest.vietnamese()
            ),
            format!("please choose a date on or before {}.", latest.english()),
        );
    }
    None
}

fn plural(n: u32, word: &str) -> String {
    if n == 1 {
        word.to_string()
    } else {
        format!("{word}s")
    }
}

/// A limit as each language writes numbers: `1.000.000,5` in Vietnamese, `1,000,000.5` in English.
fn format_number(x: f64, vietnamese: bool) -> String {
    let (group, decimal) = if vietnamese { ('.', ',') } else { (',', '.') };
    let text = x.to_string(); // f64's Display never uses an exponent
    let (sign, text) = match text.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", text.as_str()),
    };
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    let mut out = String::from(sign);
    let digits = int.len();
    for (i, ch) in int.chars().enumerate() {
        if i > 0 && (digits - i) % 3 == 0 {
            out.push(group);
        }
        out.push(ch);
    }
    if !frac.is_empty() {
        out.push(decimal);
        out.push_str(frac);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::model::{Agency, ChoiceOption, Constraints, ProcedureKind};
    use rand::{Rng, SeedableRng};

    fn lt(vi: &str, en: &str) -> LocalizedText {
        LocalizedText {
            vi: vi.into(),
            en: en.into(),
        }
    }

    fn field(id: &str, t: FieldType, required: bool, constraints: Constraints) -> FormField {
        FormField {
            id: id.into(),
            label: lt("Họ và tên", "Full name"),
            help: None,
            field_type: t,
            required,
            constraints,
        }
    }

    fn text(s: &str) -> FieldValue {
        FieldValue::Text(s.into())
    }

    fn today() -> CalendarDate {
        CalendarDate {
            year: 2026,
            month: 3,
            day: 15,
        }
    }

    /// The codes of the issues, for short assertions.
    fn codes(f: &FormField, v: Option<&FieldValue>) -> Vec<IssueCode> {
        validate_field(f, v, today())
            .into_iter()
            .map(|i| i.code)
            .collect()
    }

    fn one(f: &FormField, v: &FieldValue) -> Option<IssueCode> {
        let issues = validate_field(f, Some(v), today());
        assert!(issues.len() <= 1, "{issues:?}");
        issues.first().map(|i| i.code)
    }

    #[test]
    fn calendar_dates_parse_strictly() {
        assert_eq!(
            CalendarDate::parse("2024-02-29"),
            Some(CalendarDate {
                year: 2024,
                month: 2,
                day: 29
            })
        );
        assert_eq!(CalendarDate::parse("2000-02-29").map(|d| d.day), Some(29));
        for bad in [
            "2023-02-29",
            "1900-02-29",
            "2024-13-01",
            "2024-00-10",
            "2024-04-31",
            "2024-01-00",
            "0000-01-01",
            "24-01-01",
            "2024-1-01",
            "2024/01/01",
            " 2024-01-01",
            "2024-01-01 ",
            "+024-01-01",
            "2024-+1-01",
            "2024-01-+1",
            "２０２４-01-01",
            "",
            "today",
            "2024-01-0é",
        ] {
            assert_eq!(CalendarDate::parse(bad), None, "{bad}");
        }
        let d: CalendarDate = "2026-01-05".parse().unwrap();
        assert_eq!(d.to_string(), "2026-01-05");
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"2026-01-05\"");
        assert_eq!(
            serde_json::from_str::<CalendarDate>("\"2026-01-05\"").unwrap(),
            d
        );
        assert!(serde_json::from_str::<CalendarDate>("\"2026-02-30\"").is_err());
    }

    #[test]
    fn calendar_dates_order_and_add_days() {
        let d = |s: &str| CalendarDate::parse(s).unwrap();
        assert!(d("2025-12-31") < d("2026-01-01"));
        assert!(d("2026-01-31") < d("2026-02-01"));
        assert_eq!(d("2024-02-28").add_days(1), d("2024-02-29"));
        assert_eq!(d("2023-02-28").add_days(1), d("2023-03-01"));
        assert_eq!(d("2026-01-01").add_days(-1), d("2025-12-31"));
        assert_eq!(d("2026-03-15").add_days(-43_800), d("1906-04-14"));
        assert_eq!(d("1970-01-01").add_days(0), d("1970-01-01"));
        // add_days round-trips and agrees with a day-by-day walk.
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        for _ in 0..2000 {
            let start = d("1900-01-01").add_days(rng.gen_range(0..80_000));
            assert!(start.is_valid());
            let n = rng.gen_range(-50_000..50_000);
            assert_eq!(start.add_days(n).add_days(-n), start);
            assert_eq!(CalendarDate::parse(&start.to_string()), Some(start));
            let next = start.add_days(1);
            assert!(next > start && next.is_valid());
        }
        // Extremes saturate instead of overflowing.
        let max = CalendarDate {
            year: i32::MAX,
            month: 12,
            day: 31,
        };
        assert_eq!(max.add_days(i32::MAX), max);
        let min = CalendarDate {
            year: i32::MIN,
            month: 1,
            day: 1,
        };
        assert_eq!(min.add_days(i32::MIN), min);
        // A hand-built impossible date does not panic either.
        let _ = CalendarDate {
            year: 2026,
            month: 0,
            day: 99,
        }
        .add_days(5);
        let _ = CalendarDate {
            year: 2026,
            month: 99,
            day: 0,
        }
        .english();
    }

    #[test]
    fn today_in_vietnam_is_plausible() {
        let t = CalendarDate::today_utc_plus_7();
        assert!(t.is_valid() && (2025..2100).contains(&t.year), "{t}");
    }

    #[test]
    fn phone_numbers() {
        for (input, want) in [
            ("0912345678", "0912345678"),
            ("0912 345 678", "0912345678"),
            ("0912.345.678", "0912345678"),
            ("0912-345-678", "0912345678"),
            ("  0387 123 456 ", "0387123456"),
            ("+84912345678", "0912345678"),
            ("+84 912 345 678", "0912345678"),
            ("84912345678", "0912345678"),
            ("0567891234", "0567891234"),
            ("0701234567", "0701234567"),
            ("0812345678", "0812345678"),
            ("028 3822 1234", "02838221234"),
            ("028.3822.1234", "02838221234"),
            ("0236 3822 123", "02363822123"),
            ("+84 28 3822 1234", "02838221234"),
            ("0912\u{a0}345\u{a0}678", "0912345678"),
        ] {
            assert_eq!(normalize_phone(input).as_deref(), Some(want), "{input}");
        }
        for bad in [
            "",
            "   ",
            "091234567",
            "09123456789",
            "0112345678",
            "0412345678",
            "0612345678",
            "1912345678",
            "+840912345678",
            "+85912345678",
            "+8491234567",
            "+ 84912345678",
            "-0912345678",
            "0912_345_678",
            "(028) 3822 1234",
            "0283822123",
            "028382212345",
            "912345678",
            "+",
            "84",
            "0",
            "++84912345678",
            "0912345678x",
            "０９１２３４５６７８",
            "0912/345/678",
            "849123456789",
        ] {
            assert_eq!(normalize_phone(bad), None, "{bad}");
        }
    }

    #[test]
    fn required_and_empty_values() {
        let req = field("name", FieldType::Text, true, Constraints::default());
        let opt = field("name", FieldType::Text, false, Constraints::default());
        assert_eq!(codes(&req, None), vec![IssueCode::Required]);
        assert_eq!(codes(&req, Some(&text(""))), vec![IssueCode::Required]);
        assert_eq!(
            codes(&req, Some(&text(" \t\n\u{a0}"))),
            vec![IssueCode::Required]
        );
        assert!(codes(&opt, None).is_empty());
        assert!(codes(&opt, Some(&text("  "))).is_empty());
        let choice = field("c", FieldType::Choice, true, Constraints::default());
        assert_eq!(
            codes(&choice, Some(&FieldValue::Choice(vec![]))),
            vec![IssueCode::Required]
        );
        let date = field("d", FieldType::Date, true, Constraints::default());
        assert_eq!(
            codes(&date, Some(&FieldValue::Date(" ".into()))),
            vec![IssueCode::Required]
        );
        let msg = &validate_field(&req, None, today())[0].message;
        assert_eq!(msg.vi, "Họ và tên: vui lòng điền mục này.");
        assert_eq!(msg.en, "Full name: please fill this in.");
    }

    #[test]
    fn types_must_match_the_field() {
        let values = [
            text("x"),
            FieldValue::Number(1.0),
            FieldValue::Date("2026-01-01".into()),
            FieldValue::Choice(vec!["a".into()]),
            FieldValue::Location {
                lat: 10.0,
                lon: 106.0,
            },
        ];
        let types = [
            (FieldType::Text, 0),
            (FieldType::Address, 0),
            (FieldType::Phone, 0),
            (FieldType::NationalId, 0),
            (FieldType::Number, 1),
            (FieldType::Date, 2),
            (FieldType::Choice, 3),
            (FieldType::Location, 4),
        ];
        for (t, accepted) in types {
            let f = field("f", t, true, Constraints::default());
            for (i, v) in values.iter().enumerate() {
                let got = one(&f, v);
                if i == accepted {
                    assert_ne!(got, Some(IssueCode::WrongType), "{t:?} {v:?}");
                } else {
                    assert_eq!(got, Some(IssueCode::WrongType), "{t:?} {v:?}");
                }
            }
        }
        let n = field("n", FieldType::Number, true, Constraints::default());
        for x in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(one(&n, &FieldValue::Number(x)), Some(IssueCode::WrongType));
        }
    }

    #[test]
    fn text_length_counts_characters_after_trimming() {
        let f = field(
            "name",
            FieldType::Text,
            true,
            Constraints {
                min_length: Some(2),
                max_length: Some(5),
                ..Default::default()
            },
        );
        assert_eq!(one(&f, &text("A")), Some(IssueCode::TooShort));
        assert_eq!(one(&f, &text("   A   ")), Some(IssueCode::TooShort));
        assert_eq!(one(&f, &text("Án")), None);
        // 5 Vietnamese letters are 5 characters although they take 13 bytes.
        assert_eq!(one(&f, &text("Nguyễ")), None);
        assert_eq!(one(&f, &text("Nguyễn")), Some(IssueCode::TooLong));
        // Typed with combining accents (NFD), still 5 characters.
        let nfd: String = "Nguyễ".nfd().collect();
        assert!(nfd.chars().count() > 5);
        assert_eq!(one(&f, &text(&nfd)), None);
        let issues = validate_field(&f, Some(&text("A")), today());
        assert_eq!(issues[0].message.vi, "Họ và tên: cần ít nhất 2 ký tự.");
        assert_eq!(issues[0].message.en, "Full name: at least 2 characters.");
        let issues = validate_field(&f, Some(&text("Nguyễn Văn")), today());
        assert!(
            issues[0].message.vi.contains("tối đa 5 ký tự"),
            "{issues:?}"
        );
        let addr = field(
            "a",
            FieldType::Address,
            true,
            Constraints {
                min_length: Some(10),
                ..Default::default()
            },
        );
        assert_eq!(one(&addr, &text("12 Lê Lợi")), Some(IssueCode::TooShort));
        assert_eq!(one(&addr, &text("12 Lê Lợi, P. Bến Nghé")), None);
    }

    #[test]
    fn numbers() {
        let f = field(
            "n",
            FieldType::Number,
            true,
            Constraints {
                min: Some(1.0),
                max: Some(1_000_000.0),
                integer: Some(true),
                ..Default::default()
            },
        );
        assert_eq!(one(&f, &FieldValue::Number(1.0)), None);
        assert_eq!(one(&f, &FieldValue::Number(1_000_000.0)), None);
        assert_eq!(one(&f, &FieldValue::Number(0.0)), Some(IssueCode::BelowMin));
        assert_eq!(
            one(&f, &FieldValue::Number(-3.0)),
            Some(IssueCode::BelowMin)
        );
        assert_eq!(
            one(&f, &FieldValue::Number(1_000_001.0)),
            Some(IssueCode::AboveMax)
        );
        assert_eq!(
            one(&f, &FieldValue::Number(2.5)),
            Some(IssueCode::NotInteger)
        );
        let msg = &validate_field(&f, Some(&FieldValue::Number(2e6)), today())[0].message;
        assert!(msg.vi.ends_with("là 1.000.000."), "{msg:?}");
        assert!(msg.en.ends_with("is 1,000,000."), "{msg:?}");
        let free = field(
            "n",
            FieldType::Number,
            true,
            Constraints {
                min: Some(-0.5),
                ..Default::default()
            },
        );
        assert_eq!(one(&free, &FieldValue::Number(2.5)), None);
        let msg = &validate_field(&free, Some(&FieldValue::Number(-1.0)), today())[0].message;
        assert!(msg.vi.ends_with("là -0,5."), "{msg:?}");
        assert!(msg.en.ends_with("is -0.5."), "{msg:?}");
        assert_eq!(format_number(1234567.25, true), "1.234.567,25");
        assert_eq!(format_number(-999.0, false), "-999");
        assert_eq!(format_number(1000.0, false), "1,000");
    }

    #[test]
    fn dates_and_bounds() {
        let dob = field(
            "dob",
            FieldType::Date,
            true,
            Constraints {
                not_before: Some("today-43800d".into()),
                not_after: Some("today".into()),
                ..Default::default()
            },
        );
        let date = |s: &str| FieldValue::Date(s.into());
        assert_eq!(one(&dob, &date("1960-05-01")), None);
        assert_eq!(
            one(&dob, &date("2026-03-15")),
            None,
            "today itself is allowed"
        );
        assert_eq!(one(&dob, &date("2026-03-16")), Some(IssueCode::DateTooLate));
        assert_eq!(
            one(&dob, &date("1906-04-14")),
            None,
            "exactly the earliest day"
        );
        assert_eq!(
            one(&dob, &date("1906-04-13")),
            Some(IssueCode::DateTooEarly)
        );
        assert_eq!(one(&dob, &date("2026-02-30")), Some(IssueCode::InvalidDate));
        assert_eq!(one(&dob, &date("15/03/2026")), Some(IssueCode::InvalidDate));
        let msg = &validate_field(&dob, Some(&date("2026-03-16")), today())[0].message;
        assert!(msg.vi.contains("15/03/2026 trở về trước"), "{msg:?}");
        assert!(msg.en.contains("on or before 15 March 2026"), "{msg:?}");
        let stay = field(
            "stay",
            FieldType::Date,
            true,
            Constraints {
                not_before: Some("2026-01-01".into()),
                not_after: Some("today+365d".into()),
                ..Default::default()
            },
        );
        assert_eq!(
            one(&stay, &date("2025-12-31")),
            Some(IssueCode::DateTooEarly)
        );
        assert_eq!(one(&stay, &date("2027-03-15")), None);
        assert_eq!(
            one(&stay, &date("2027-03-16")),
            Some(IssueCode::DateTooLate)
        );
        let broken = field(
            "b",
            FieldType::Date,
            true,
            Constraints {
                not_before: Some("soon".into()),
                ..Default::default()
            },
        );
        assert_eq!(
            one(&broken, &date("1000-01-01")),
            None,
            "a broken bound is ignored"
        );
    }

    #[test]
    fn choices() {
        let opts = vec![
            ChoiceOption {
                value: "owner".into(),
                label: lt("Chủ nhà", "Owner"),
            },
            ChoiceOption {
                value: "tenant".into(),
                label: lt("Người thuê", "Tenant"),
            },
        ];
        let single = field(
            "c",
            FieldType::Choice,
            true,
            Constraints {
                options: opts.clone(),
                ..Default::default()
            },
        );
        let multi = field(
            "c",
            FieldType::Choice,
            true,
            Constraints {
                options: opts,
                multiple: Some(true),
                ..Default::default()
            },
        );
        let ch = |v: &[&str]| FieldValue::Choice(v.iter().map(|s| s.to_string()).collect());
        assert_eq!(one(&single, &ch(&["owner"])), None);
        assert_eq!(
            one(&single, &ch(&["owner", "tenant"])),
            Some(IssueCode::OneChoiceOnly)
        );
        assert_eq!(
            one(&single, &ch(&["landlord"])),
            Some(IssueCode::NotAnOption)
        );
        assert_eq!(one(&single, &ch(&["Owner"])), Some(IssueCode::NotAnOption));
        assert_eq!(one(&multi, &ch(&["owner", "tenant"])), None);
        assert_eq!(
            one(&multi, &ch(&["owner", "x"])),
            Some(IssueCode::NotAnOption)
        );
    }

    #[test]
    fn national_id_numbers() {
        let f = field("id", FieldType::NationalId, true, Constraints::default());
        assert_eq!(one(&f, &text("079165012345")), None);
        assert_eq!(one(&f, &text(" 079 165 012 345 ")), None);
        assert_eq!(
            one(&f, &text("07916501234")),
            Some(IssueCode::InvalidNationalId)
        );
        assert_eq!(
            one(&f, &text("003165012345")),
            Some(IssueCode::InvalidNationalId)
        );
        // Born 2027 is in the future on 2026-03-15, but fine a year later: the year comes from `today`.
        assert_eq!(
            one(&f, &text("079227012345")),
            Some(IssueCode::InvalidNationalId)
        );
        let later = CalendarDate {
            year: 2027,
            month: 1,
            day: 1,
        };
        assert!(validate_field(&f, Some(&text("079227012345")), later).is_empty());
    }

    #[test]
    fn locations_anywhere_on_earth() {
        let f = field("loc", FieldType::Location, true, Constraints::default());
        let loc = |lat, lon| FieldValue::Location { lat, lon };
        assert_eq!(one(&f, &loc(10.7769, 106.7009)), None);
        assert_eq!(
            one(&f, &loc(48.85, 2.35)),
            None,
            "not restricted to Vietnam"
        );
        assert_eq!(one(&f, &loc(-90.0, 180.0)), None);
        for (lat, lon) in [
            (90.1, 0.0),
            (0.0, -180.5),
            (f64::NAN, 106.0),
            (10.0, f64::INFINITY),
        ] {
            assert_eq!(
                one(&f, &loc(lat, lon)),
                Some(IssueCode::InvalidLocation),
                "{lat} {lon}"
            );
        }
    }

    fn procedure() -> Procedure {
        Procedure {
            code: "CT-TAM-TRU".into(),
            kind: ProcedureKind::Procedure,
            name: lt("Đăng ký tạm trú", "Temporary residence registration"),
            description: lt("Mô tả", "Description"),
            agency: Agency {
                code: "CA".into(),
                name: lt("Công an", "Police"),
            },
            fee_vnd: 0,
            processing_days: 3,
            fields: vec![
                FormField {
                    label: lt("Số định danh", "ID number"),
                    ..field(
                        "national_id",
                        FieldType::NationalId,
                        true,
                        Constraints::default(),
                    )
                },
                FormField {
                    label: lt("Họ và tên", "Full name"),
                    ..field(
                        "full_name",
                        FieldType::Text,
                        true,
                        Constraints {
                            min_length: Some(2),
                            ..Default::default()
                        },
                    )
                },
                FormField {
                    label: lt("Điện thoại", "Phone"),
                    ..field("phone", FieldType::Phone, false, Constraints::default())
                },
            ],
            attachments: vec![
                AttachmentRule {
                    id: "id_card".into(),
                    label: lt("Ảnh thẻ căn cước", "Photo of the ID card"),
                    required: true,
                    accept: vec!["image/jpeg".into()],
                    max_bytes: 1 << 20,
                },
                AttachmentRule {
                    id: "lease".into(),
                    label: lt("Hợp đồng thuê", "Lease"),
                    required: false,
                    accept: vec!["application/pdf".into()],
                    max_bytes: 1 << 20,
                },
            ],
        }
    }

    #[test]
    fn whole_form_in_order() {
        let p = procedure();
        let mut values = BTreeMap::new();
        values.insert("zzz_extra".to_string(), text("x"));
        values.insert("phone".to_string(), text("12345"));
        values.insert("aaa_extra".to_string(), FieldValue::Number(1.0));
        values.insert("full_name".to_string(), text("A"));
        let mut attachments = BTreeMap::new();
        attachments.insert("lease".to_string(), MAX_FILES_PER_ATTACHMENT + 1);
        attachments.insert("selfie".to_string(), 1);
        attachments.insert("empty_unknown".to_string(), 0);
        let issues = validate(&p, &values, &attachments, today());
        let got: Vec<(&str, IssueCode)> = issues
            .iter()
            .map(|i| (i.field_id.as_str(), i.code))
            .collect();
        assert_eq!(
            got,
            vec![
                ("national_id", IssueCode::Required),
                ("full_name", IssueCode::TooShort),
                ("phone", IssueCode::InvalidPhone),
                ("aaa_extra", IssueCode::UnknownField),
                ("zzz_extra", IssueCode::UnknownField),
                ("id_card", IssueCode::AttachmentMissing),
                ("lease", IssueCode::TooManyAttachments),
                ("selfie", IssueCode::UnknownField),
            ]
        );
        assert_eq!(
            issues[5].message.vi,
            "Ảnh thẻ căn cước: vui lòng đính kèm giấy tờ này."
        );
        assert_eq!(issues[6].message.en, "Lease: at most 10 files.");

        let mut values = BTreeMap::new();
        values.insert("national_id".to_string(), text("079165012345"));
        values.insert("full_name".to_string(), text("Nguyễn Thị Lan"));
        let attachments = BTreeMap::from([("id_card".to_string(), 2)]);
        assert_eq!(validate(&p, &values, &attachments, today()), vec![]);
    }

    #[test]
    fn messages_never_contain_the_typed_value() {
        let secret = "SECRET-4242-xyz";
        let procs = [
            field(
                "t",
                FieldType::Text,
                true,
                Constraints {
                    max_length: Some(3),
                    ..Default::default()
                },
            ),
            field("p", FieldType::Phone, true, Constraints::default()),
            field("n", FieldType::NationalId, true, Constraints::default()),
            field("d", FieldType::Date, true, Constraints::default()),
            field(
                "c",
                FieldType::Choice,
                true,
                Constraints {
                    options: vec![ChoiceOption {
                        value: "a".into(),
                        label: lt("A", "A"),
                    }],
                    ..Default::default()
                },
            ),
            field("x", FieldType::Number, true, Constraints::default()),
        ];
        for f in &procs {
            for v in [
                text(secret),
                FieldValue::Date(secret.into()),
                FieldValue::Choice(vec![secret.into()]),
            ] {
                for i in validate_field(f, Some(&v), today()) {
                    assert!(
                        !i.message.vi.contains(secret) && !i.message.en.contains(secret),
                        "{i:?}"
                    );
                    assert!(
                        !i.message.vi.contains("4242") && !i.message.en.contains("4242"),
                        "{i:?}"
                    );
                }
            }
        }
        let id = field("n", FieldType::NationalId, true, Constraints::default());
        for i in validate_field(&id, Some(&text("003165012345")), today()) {
            assert!(
                !i.message.vi.contains("003165012345") && !i.message.en.contains("165012"),
                "{i:?}"
            );
        }
    }

    #[test]
    fn serde_shapes_are_snake_case() {
        let v = FieldValue::Location {
            lat: 10.5,
            lon: 106.25,
        };
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"type":"location","value":{"lat":10.5,"lon":106.25}}"#
        );
        assert_eq!(
            serde_json::to_string(&text("a")).unwrap(),
            r#"{"type":"text","value":"a"}"#
        );
        let c = FieldValue::Choice(vec!["a".into()]);
        assert_eq!(
            serde_json::from_str::<FieldValue>(r#"{"type":"choice","value":["a"]}"#).unwrap(),
            c
        );
        assert_eq!(
            serde_json::to_string(&IssueCode::InvalidNationalId).unwrap(),
            r#""invalid_national_id""#
        );
        let issue = FieldIssue {
            field_id: "a".into(),
            code: IssueCode::TooManyAttachments,
            message: lt("x", "y"),
        };
        let back: FieldIssue =
            serde_json::from_str(&serde_json::to_string(&issue).unwrap()).unwrap();
        assert_eq!(back, issue);
    }

    #[test]
    fn random_input_never_panics() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(99);
        let alphabet: Vec<char> = "0123456789+-. /84٣０é\u{a0}\u{301}abcT".chars().collect();
        let all_types = [
            FieldType::Text,
            FieldType::Number,
            FieldType::Date,
            FieldType::Choice,
            FieldType::Phone,
            FieldType::NationalId,
            FieldType::Address,
            FieldType::Location,
        ];
        for _ in 0..20_000 {
            let len = rng.gen_range(0..24);
            let s: String = (0..len)
                .map(|_| alphabet[rng.gen_range(0..alphabet.len())])
                .collect();
            if let Some(p) = normalize_phone(&s) {
                assert!(
                    p.starts_with('0') && p.bytes().all(|b| b.is_ascii_digit()),
                    "{s:?} -> {p}"
                );
                assert_eq!(
                    normalize_phone(&p).as_deref(),
                    Some(p.as_str()),
                    "normal form is stable"
                );
            }
            if let Some(d) = CalendarDate::parse(&s) {
                assert!(d.is_valid());
            }
            let bytes: Vec<u8> = (0..rng.gen_range(0..12)).map(|_| rng.gen()).collect();
            let _ = CalendarDate::parse(&String::from_utf8_lossy(&bytes));
            let t = all_types[rng.gen_range(0..all_types.len())];
            let f = field(
                "f",
                t,
                rng.gen(),
                Constraints {
                    min_length: Some(rng.gen_range(0..4)),
                    min: Some(rng.gen_range(-5.0..5.0)),
                    not_before: Some("today-3d".into()),
                    ..Default::default()
                },
            );
            for v in [
                text(&s),
                FieldValue::Date(s.clone()),
                FieldValue::Number(f64::from_bits(rng.gen())),
                FieldValue::Location {
                    lat: f64::from_bits(rng.gen()),
                    lon: rng.gen_range(-200.0..200.0),
                },
            ] {
                let issues = validate_field(&f, Some(&v), today());
                assert!(issues.len() <= 1);
            }
        }
    }
}
