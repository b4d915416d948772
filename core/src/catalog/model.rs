//! Catalog model, shared by the phone and the server (the server validates definitions with
//! [`Procedure::check_definition`] before publishing them).
//!
//! Parsing is lenient about unknown keys so an older app keeps reading a newer server's catalog;
//! the server's import is strict (see `congdan-server`).

use serde::{Deserialize, Serialize};

/// A text in Vietnamese (first) and English.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalizedText {
    pub vi: String,
    pub en: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcedureKind {
    /// An administrative procedure that ends in a decision or a document.
    Procedure,
    /// A report or complaint to the city hotline (a flooded street, a broken light).
    Report,
}

impl ProcedureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProcedureKind::Procedure => "procedure",
            ProcedureKind::Report => "report",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "procedure" => Some(ProcedureKind::Procedure),
            "report" => Some(ProcedureKind::Report),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agency {
    pub code: String,
    pub name: LocalizedText,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Procedure {
    pub code: String,
    pub kind: ProcedureKind,
    pub name: LocalizedText,
    pub description: LocalizedText,
    pub agency: Agency,
    pub fee_vnd: u64,
    /// Legal processing time in working days.
    pub processing_days: u32,
    pub fields: Vec<FormField>,
    #[serde(default)]
    pub attachments: Vec<AttachmentRule>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    Text,
    Number,
    Date,
    Choice,
    /// A Vietnamese phone number.
    Phone,
    /// A 12-digit national ID (citizen identity card) number.
    NationalId,
    Address,
    /// A point: latitude and longitude.
    Location,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FormField {
    pub id: String,
    pub label: LocalizedText,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<LocalizedText>,
    #[serde(rename = "type")]
    pub field_type: FieldType,
    pub required: bool,
    #[serde(default, skip_serializing_if = "Constraints::is_empty")]
    pub constraints: Constraints,
}

/// Constraints on a field's value; which keys apply depends on the field type.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Constraints {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_length: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integer: Option<bool>,
    /// `YYYY-MM-DD`, `today`, or `today+Nd` / `today-Nd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<ChoiceOption>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiple: Option<bool>,
}

impl Constraints {
    pub fn is_empty(&self) -> bool {
        *self == Constraints::default()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChoiceOption {
    pub value: String,
    pub label: LocalizedText,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentRule {
    pub id: String,
    pub label: LocalizedText,
    pub required: bool,
    /// Accepted media types, checked against the file's content, not its name.
    pub accept: Vec<String>,
    pub max_bytes: u64,
}

pub const ACCEPTED_MEDIA_TYPES: &[&str] =
    &["image/jpeg", "image/png", "image/heic", "application/pdf"];

/// A relative or absolute date bound as written in a constraint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DateBound {
    /// Days relative to the day of validation.
    RelativeDays(i32),
    /// A calendar date.
    Date { year: i32, month: u32, day: u32 },
}

impl DateBound {
    pub fn parse(s: &str) -> Option<DateBound> {
        if s == "today" {
            return Some(DateBound::RelativeDays(0));
        }
        if let Some(rest) = s.strip_prefix("today") {
            let (sign, digits) = match rest.as_bytes().first()? {
                b'+' => (1, &rest[1..]),
                b'-' => (-1, &rest[1..]),
                _ => return None,
            };
            let digits = digits.strip_suffix('d')?;
            if digits.is_empty() || digits.len() > 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let n: i32 = digits.parse().ok()?;
            return Some(DateBound::RelativeDays(sign * n));
        }
        let mut parts = s.splitn(3, '-');
        let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
        if y.len() != 4 || m.len() != 2 || d.len() != 2 || !s.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
            return None;
        }
        let (year, month, day) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
        if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
            return None;
        }
        Some(DateBound::Date { year, month, day })
    }
}

pub(crate) fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

fn is_code(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl Procedure {
    /// Checks that a definition is complete and consistent before it is published. Returns every
    /// problem found, each naming its place (`fields[2].constraints.options`).
    pub fn check_definition(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        let text = |place: &str, t: &LocalizedText, problems: &mut Vec<String>| {
            if t.vi.trim().is_empty() || t.en.trim().is_empty() {
                problems.push(format!("{place}: needs Vietnamese and English text"));
            }
        };
        if !is_code(&self.code) {
            problems.push("code: 1-32 characters of A-Z, 0-9 and '-'".into());
        }
        if !is_code(&self.agency.code) {
            problems.push("agency.code: 1-32 characters of A-Z, 0-9 and '-'".into());
        }
        text("name", &self.name, &mut problems);
        text("description", &self.description, &mut problems);
        text("agency.name", &self.agency.name, &mut problems);
        if self.fields.is_empty() {
            problems.push("fields: a form needs at least one field".into());
        }
        let mut seen = std::collections::HashSet::new();
        for (i, f) in self.fields.iter().enumerate() {
            let place = format!("fields[{i}]");
            if !is_identifier(&f.id) {
                problems.push(format!("{place}.id: snake_case ASCII"));
            }
            if !seen.insert(f.id.as_str()) {
                problems.push(format!("{place}.id: duplicate id {}", f.id));
            }
            text(&format!("{place}.label"), &f.label, &mut problems);
            let c = &f.constraints;
            let allowed: &[&str] = match f.field_type {
                FieldType::Text | FieldType::Address => &["min_length", "max_length"],
                FieldType::Number => &["min", "max", "integer"],
                FieldType::Date => &["not_before", "not_after"],
                FieldType::Choice => &["options", "multiple"],
                FieldType::Phone | FieldType::NationalId | FieldType::Location => &[],
            };
            let present = [
                ("min_length", c.min_length.is_some()),
                ("max_length", c.max_length.is_some()),
                ("min", c.min.is_some()),
                ("max", c.max.is_some()),
                ("integer", c.integer.is_some()),
                ("not_before", c.not_before.is_some()),
                ("not_after", c.not_after.is_some()),
                ("options", !c.options.is_empty()),
                ("multiple", c.multiple.is_some()),
            ];
            for (key, is_set) in present {
                if is_set && !allowed.contains(&key) {
                    problems.push(format!("{place}.constraints.{key}: not allowed for this type"));
                }
            }
            if let (Some(a), Some(b)) = (c.min_length, c.max_length) {
                if a > b {
                    problems.push(format!("{place}.constraints: min_length > max_length"));
                }
            }
            if let (Some(a), Some(b)) = (c.min, c.max) {
                if a > b {
                    problems.push(format!("{place}.constraints: min > max"));
                }
            }
            for (key, v) in [("not_before", &c.not_before), ("not_after", &c.not_after)] {
                if let Some(v) = v {
                    if DateBound::parse(v).is_none() {
                        problems.push(format!("{place}.constraints.{key}: not a date bound"));
                    }
                }
            }
            if f.field_type == FieldType::Choice {
                if c.options.is_empty() {
                    problems.push(format!("{place}.constraints.options: a choice needs options"));
                }
                let mut values = std::collections::HashSet::new();
                for (j, o) in c.options.iter().enumerate() {
                    if !is_identifier(&o.value) || !values.insert(o.value.as_str()) {
                        problems.push(format!(
                            "{place}.constraints.options[{j}]: unique snake_case value"
                        ));
                    }
                    text(&format!("{place}.constraints.options[{j}].label"), &o.label, &mut problems);
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, a) in self.attachments.iter().enumerate() {
            let place = format!("attachments[{i}]");
            if !is_identifier(&a.id) || !seen.insert(a.id.as_str()) {
                problems.push(format!("{place}.id: unique snake_case ASCII"));
            }
            text(&format!("{place}.label"), &a.label, &mut problems);
            if a.accept.is_empty()
                || a.accept.iter().any(|m| !ACCEPTED_MEDIA_TYPES.contains(&m.as_str()))
            {
                problems.push(format!("{place}.accept: from {ACCEPTED_MEDIA_TYPES:?}"));
            }
            if a.max_bytes == 0 || a.max_bytes > 50 * 1024 * 1024 {
                problems.push(format!("{place}.max_bytes: 1 byte to 50 MiB"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_bounds_parse() {
        assert_eq!(DateBound::parse("today"), Some(DateBound::RelativeDays(0)));
        assert_eq!(DateBound::parse("today+30d"), Some(DateBound::RelativeDays(30)));
        assert_eq!(DateBound::parse("today-36500d"), Some(DateBound::RelativeDays(-36500)));
        assert_eq!(
            DateBound::parse("2024-02-29"),
            Some(DateBound::Date { year: 2024, month: 2, day: 29 })
        );
        for bad in [
            "2023-02-29", "today+", "today+3", "yesterday", "2024-13-01", "24-01-01", "",
            "today--5d", "today++5d", "today--2147483648d", "today+9999999d", "+202-01-01", "2024-+1-01",
        ] {
            assert_eq!(DateBound::parse(bad), None, "{bad}");
        }
    }

    fn text(s: &str) -> LocalizedText {
        LocalizedText { vi: s.into(), en: s.into() }
    }

    #[test]
    fn definition_problems_are_all_reported_with_their_place() {
        let p = Procedure {
            code: "bad code".into(),
            kind: ProcedureKind::Procedure,
            name: text("Tên"),
            description: LocalizedText { vi: "".into(), en: "x".into() },
            agency: Agency { code: "UBND-P1".into(), name: text("UBND") },
            fee_vnd: 0,
            processing_days: 3,
            fields: vec![
                FormField {
                    id: "ho_ten".into(),
                    label: text("Họ tên"),
                    help: None,
                    field_type: FieldType::Text,
                    required: true,
                    constraints: Constraints { min: Some(1.0), ..Default::default() },
                },
                FormField {
                    id: "ho_ten".into(),
                    label: text("Loại"),
                    help: None,
                    field_type: FieldType::Choice,
                    required: true,
                    constraints: Constraints::default(),
                },
            ],
            attachments: vec![],
        };
        let problems = p.check_definition().unwrap_err();
        let joined = problems.join("\n");
        assert!(joined.contains("code:"), "{joined}");
        assert!(joined.contains("description"), "{joined}");
        assert!(joined.contains("fields[0].constraints.min: not allowed"), "{joined}");
        assert!(joined.contains("fields[1].id: duplicate"), "{joined}");
        assert!(joined.contains("fields[1].constraints.options"), "{joined}");
    }
}
