//! Verified identity attributes: what the identity provider vouches for about a resident beyond
//! their name and number, kept with the account so that benefits (transit concessions) come from
//! verified facts, never from what a phone declares.
//!
//! Read from the ID token at every login (so a lapsed student card or a corrected birth date is
//! picked up the next time the resident logs in):
//! - `birthdate` (OpenID Connect Core §5.1, `YYYY-MM-DD`; a year-only or `0000-` value carries no
//!   usable age and is ignored);
//! - `congdan:student_until` (`YYYY-MM-DD`): the last day of a verified student status;
//! - `congdan:disability` (`true`): a verified disability certificate.
//!
//! Anything malformed is dropped, never guessed: a missing attribute only means no concession.

use congdan_core::drafts::validation::CalendarDate;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const BIRTHDATE_CLAIM: &str = "birthdate";
pub const STUDENT_UNTIL_CLAIM: &str = "congdan:student_until";
pub const DISABILITY_CLAIM: &str = "congdan:disability";

/// The verified attributes of one resident, as stored with the account (JSON).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedAttributes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birthdate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub student_until: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disability: bool,
}

fn full_date(value: Option<&Value>) -> Option<String> {
    let text = value?.as_str()?;
    let date = CalendarDate::parse(text)?;
    (date.year >= 1850).then(|| text.to_string())
}

impl VerifiedAttributes {
    /// The attributes carried by verified ID token claims.
    pub fn from_claims(claims: &serde_json::Map<String, Value>) -> VerifiedAttributes {
        VerifiedAttributes {
            birthdate: full_date(claims.get(BIRTHDATE_CLAIM)),
            student_until: full_date(claims.get(STUDENT_UNTIL_CLAIM)),
            disability: claims.get(DISABILITY_CLAIM).and_then(Value::as_bool).unwrap_or(false),
        }
    }

    /// Parses the stored JSON; unreadable storage counts as no attributes (no concession).
    pub fn from_stored(json: &str) -> VerifiedAttributes {
        serde_json::from_str(json).unwrap_or_default()
    }

    pub fn to_stored(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    /// Age in whole years on `today`, when the birth date is known.
    pub fn age_on(&self, today: CalendarDate) -> Option<u32> {
        let born = CalendarDate::parse(self.birthdate.as_deref()?)?;
        let mut age = today.year - born.year;
        if (today.month, today.day) < (born.month, born.day) {
            age -= 1;
        }
        u32::try_from(age).ok()
    }

    /// A verified student status still running on `today`.
    pub fn is_student_on(&self, today: CalendarDate) -> bool {
        self.student_until
            .as_deref()
            .and_then(CalendarDate::parse)
            .is_some_and(|until| until >= today)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> serde_json::Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn claims_are_read_strictly() {
        let a = VerifiedAttributes::from_claims(&claims(json!({
            "birthdate": "1950-03-15", "congdan:student_until": "2027-06-30", "congdan:disability": true
        })));
        assert_eq!(a.birthdate.as_deref(), Some("1950-03-15"));
        assert_eq!(a.student_until.as_deref(), Some("2027-06-30"));
        assert!(a.disability);
        for bad in [json!("1950"), json!("0000-03-15"), json!("1950-02-30"), json!(1950), json!("15/03/1950")] {
            assert_eq!(VerifiedAttributes::from_claims(&claims(json!({ "birthdate": bad }))).birthdate, None, "{bad}");
        }
        assert!(!VerifiedAttributes::from_claims(&claims(json!({"congdan:disability": "yes"}))).disability);
        assert_eq!(VerifiedAttributes::from_stored("not json"), VerifiedAttributes::default());
        assert_eq!(VerifiedAttributes::from_stored(&a.to_stored()), a);
        assert_eq!(VerifiedAttributes::default().to_stored(), "{}");
    }

    #[test]
    fn age_counts_whole_years() {
        let a = VerifiedAttributes { birthdate: Some("1966-11-24".into()), ..Default::default() };
        assert_eq!(a.age_on(CalendarDate::parse("2026-11-23").unwrap()), Some(59));
        assert_eq!(a.age_on(CalendarDate::parse("2026-11-24").unwrap()), Some(60));
        assert_eq!(VerifiedAttributes::default().age_on(CalendarDate::parse("2026-11-24").unwrap()), None);
        let s = VerifiedAttributes { student_until: Some("2026-11-24".into()), ..Default::default() };
        assert!(s.is_student_on(CalendarDate::parse("2026-11-24").unwrap()));
        assert!(!s.is_student_on(CalendarDate::parse("2026-11-25").unwrap()));
    }
}
