//! Public holidays, for due dates counted in working days ("ngày làm việc": Monday to Friday,
//! not a public holiday), as the legal processing times of procedures are.
//!
//! Vietnam's public holidays (Labour Code 2019, art. 112) are partly fixed by law and partly
//! decided every year by the government:
//! - fixed: 1 January, 30 April, 1 May, 2 September;
//! - decided yearly: the 5 days of Tết (lunar new year), the 10th day of the 3rd lunar month
//!   (Hùng Kings), and one day next to 2 September;
//! - a holiday that falls on a weekend is made up on the next working day (art. 112(3)).
//!
//! The built-in calendar applies these rules with the lunar dates it knows ([`LUNAR`]); the
//! government's decision for a year can differ (it may move days to make longer breaks), so an
//! operator loads the published schedule with `--holidays FILE`, which replaces the built-in one.

use std::collections::BTreeSet;

use congdan_core::drafts::validation::CalendarDate;

/// Lunar new year's day and the Hùng Kings' day (10/3 lunar), in the Vietnamese calendar (UTC+7).
const LUNAR: &[(i32, (u32, u32), (u32, u32))] = &[
    // year, Tết (month, day), Hùng Kings (month, day)
    (2026, (2, 17), (4, 26)),
    (2027, (2, 6), (4, 16)),
];

/// The days no agency works besides weekends.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Holidays {
    days: BTreeSet<CalendarDate>,
    /// Years the calendar was given for (or knows the lunar dates of), to warn about the others.
    years: BTreeSet<i32>,
}

#[derive(Debug, PartialEq, thiserror::Error)]
pub enum HolidaysError {
    #[error("line {line}: {text:?} is not a date (YYYY-MM-DD)")]
    BadDate { line: usize, text: String },
}

fn is_weekend(date: CalendarDate) -> bool {
    matches!(date.weekday(), 5 | 6)
}

fn date(year: i32, month: u32, day: u32) -> CalendarDate {
    CalendarDate { year, month, day }
}

impl Holidays {
    /// The built-in Vietnamese calendar for `years` (see the module documentation).
    pub fn vietnam(years: impl IntoIterator<Item = i32>) -> Holidays {
        let mut holidays = Holidays::default();
        for year in years {
            let mut statutory = vec![date(year, 1, 1), date(year, 4, 30), date(year, 5, 1), date(year, 9, 2)];
            // The day next to 2 September: the one that joins the break to a weekend when it can.
            let national_day = date(year, 9, 2);
            statutory.push(match national_day.weekday() {
                1 | 2 => national_day.add_days(-1), // Tue, Wed: Monday or Tuesday before
                _ => national_day.add_days(1),
            });
            if let Some((_, (tet_month, tet_day), (hung_month, hung_day))) = LUNAR.iter().find(|(y, ..)| *y == year) {
                let new_year = date(year, *tet_month, *tet_day);
                // The last day of the old year and the first four of the new one.
                statutory.extend((-1..4).map(|d| new_year.add_days(d)));
                statutory.push(date(year, *hung_month, *hung_day));
                holidays.years.insert(year);
            }
            for day in statutory {
                holidays.add_made_up(day);
            }
        }
        holidays
    }

    /// A holiday on a weekend (or on another holiday) is taken on the next working day.
    fn add_made_up(&mut self, day: CalendarDate) {
        let mut taken = day;
        while is_weekend(taken) || self.days.contains(&taken) {
            taken = taken.add_days(1);
        }
        self.days.insert(taken);
    }

    /// A published schedule: one `YYYY-MM-DD` per line (the days off, already made up); blank
    /// lines and `#` comments ignored. Replaces the built-in calendar.
    pub fn parse(text: &str) -> Result<Holidays, HolidaysError> {
        let mut holidays = Holidays::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let day = CalendarDate::parse(line).ok_or_else(|| HolidaysError::BadDate { line: i + 1, text: line.into() })?;
            holidays.years.insert(day.year);
            holidays.days.insert(day);
        }
        Ok(holidays)
    }

    pub fn is_working_day(&self, date: CalendarDate) -> bool {
        !is_weekend(date) && !self.days.contains(&date)
    }

    /// Whether the calendar was given for `year` (due dates in other years skip weekends and the
    /// fixed-date holidays only).
    pub fn covers(&self, year: i32) -> bool {
        self.years.contains(&year)
    }

    /// `received + working_days` working days; the day of receipt does not count.
    pub fn due_date(&self, received: CalendarDate, working_days: u32) -> CalendarDate {
        let mut date = received;
        let mut left = working_days;
        while left > 0 {
            date = date.add_days(1);
            if self.is_working_day(date) {
                left -= 1;
            }
        }
        date
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> CalendarDate {
        CalendarDate::parse(s).unwrap()
    }

    #[test]
    fn the_2026_calendar() {
        let h = Holidays::vietnam([2026]);
        let days: Vec<String> = h.days.iter().map(|d| d.to_string()).collect();
        assert_eq!(
            days,
            [
                "2026-01-01", // Thursday
                "2026-02-16", "2026-02-17", "2026-02-18", "2026-02-19", "2026-02-20", // Tết, Mon-Fri
                "2026-04-27", // Hùng Kings fell on Sunday 26 April: made up on Monday
                "2026-04-30", "2026-05-01", // Thursday, Friday
                "2026-09-01", "2026-09-02", // Tuesday and the National Day (Wednesday)
            ]
        );
        assert!(h.covers(2026) && !h.covers(2028));
    }

    #[test]
    fn tet_days_on_a_weekend_are_made_up() {
        // Lunar new year 2027 is Saturday 6 February: Fri 5, Sat 6, Sun 7, Mon 8, Tue 9 become
        // Fri 5, Mon 8, Tue 9 and the two weekend days made up on Wed 10 and Thu 11.
        let h = Holidays::vietnam([2027]);
        for day in ["2027-02-05", "2027-02-08", "2027-02-09", "2027-02-10", "2027-02-11"] {
            assert!(!h.is_working_day(d(day)), "{day}");
        }
        assert!(h.is_working_day(d("2027-02-12")));
    }

    #[test]
    fn due_dates_skip_weekends_and_holidays() {
        let h = Holidays::vietnam([2026]);
        // Friday 2026-11-20 + 1 working day = Monday 2026-11-23; + 5 = Friday 2026-11-27.
        assert_eq!(h.due_date(d("2026-11-20"), 1).to_string(), "2026-11-23");
        assert_eq!(h.due_date(d("2026-11-20"), 5).to_string(), "2026-11-27");
        assert_eq!(h.due_date(d("2026-11-20"), 0).to_string(), "2026-11-20");
        // Received Friday 13 February 2026 with 3 working days: Tết takes the next week.
        assert_eq!(h.due_date(d("2026-02-13"), 3).to_string(), "2026-02-25");
        // Received Wednesday 29 April: 30 April and 1 May are off.
        assert_eq!(h.due_date(d("2026-04-29"), 1).to_string(), "2026-05-04");
    }

    #[test]
    fn a_published_schedule_replaces_the_rules() {
        let h = Holidays::parse("# 2028, as decided\n2028-01-01\n\n2028-01-24 # Tết\n").unwrap();
        assert!(!h.is_working_day(d("2028-01-24")));
        assert!(h.is_working_day(d("2028-04-28")), "only the listed days");
        assert!(h.covers(2028));
        assert_eq!(
            Holidays::parse("2028-01-01\n2028-13-01\n"),
            Err(HolidaysError::BadDate { line: 2, text: "2028-13-01".into() })
        );
    }
}
