//! The 12-digit national ID number (số định danh cá nhân, on the chip ID card): a province code,
//! a century/sex digit, two digits of the birth year, six serial digits. Shared by the server
//! (login) and the core (form validation), so both refuse the same numbers.

/// Province and city codes of the citizen identity number (Circular 07/2016/TT-BCA, Annex).
const PROVINCE_CODES: &[u16] = &[
    1, 2, 4, 6, 8, 10, 11, 12, 14, 15, 17, 19, 20, 22, 24, 25, 26, 27, 30, 31, 33, 34, 35, 36, 37, 38,
    40, 42, 44, 45, 46, 48, 49, 51, 52, 54, 56, 58, 60, 62, 64, 66, 67, 68, 70, 72, 74, 75, 77, 79, 80,
    82, 83, 84, 86, 87, 89, 91, 92, 93, 94, 95, 96,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NationalIdError {
    #[error("a national ID number has exactly 12 digits")]
    NotTwelveDigits,
    #[error("unknown province code")]
    UnknownProvince,
    #[error("birth year out of range")]
    BirthYearOutOfRange,
}

/// Checks a national ID number's structure. The error never contains the number.
pub fn validate(number: &str, current_year: u16) -> Result<(), NationalIdError> {
    let digits = number.as_bytes();
    if digits.len() != 12 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(NationalIdError::NotTwelveDigits);
    }
    let d = |i: usize| (digits[i] - b'0') as u16;
    let province = d(0) * 100 + d(1) * 10 + d(2);
    if !PROVINCE_CODES.contains(&province) {
        return Err(NationalIdError::UnknownProvince);
    }
    // Century digit: 0/1 born 1900-1999, 2/3 born 2000-2099, 8/9 born 1800-1899; 4-7 are later
    // centuries, not yet possible.
    let century = match d(3) {
        0 | 1 => 1900,
        2 | 3 => 2000,
        8 | 9 => 1800,
        _ => return Err(NationalIdError::BirthYearOutOfRange),
    };
    let year = century + d(4) * 10 + d(5);
    if year > current_year || year + 130 < current_year {
        return Err(NationalIdError::BirthYearOutOfRange);
    }
    Ok(())
}

/// The number as screens show it: the province code and the last two digits only.
pub fn mask(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    if chars.len() < 6 {
        return "*".repeat(chars.len());
    }
    let mut out: String = chars[..3].iter().collect();
    out.push_str(&"*".repeat(chars.len() - 5));
    out.extend(&chars[chars.len() - 2..]);
    out
}

/// The current calendar year (UTC), for [`validate`].
pub fn current_year() -> u16 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let year = crate::drafts::validation::CalendarDate::from_days_since_epoch((secs / 86_400) as i64).year;
    year.clamp(0, i32::from(u16::MAX)) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_and_invalid_numbers() {
        for ok in ["079165012345", "079204001234", "001088000001", "096301123456"] {
            assert_eq!(validate(ok, 2026), Ok(()), "{ok}");
        }
        assert_eq!(validate("07916501234", 2026), Err(NationalIdError::NotTwelveDigits));
        assert_eq!(validate("0791650123456", 2026), Err(NationalIdError::NotTwelveDigits));
        assert_eq!(validate("07916501234x", 2026), Err(NationalIdError::NotTwelveDigits));
        assert_eq!(validate("０７９165012345", 2026), Err(NationalIdError::NotTwelveDigits));
        assert_eq!(validate("003165012345", 2026), Err(NationalIdError::UnknownProvince));
        assert_eq!(validate("097165012345", 2026), Err(NationalIdError::UnknownProvince));
        assert_eq!(validate("079499012345", 2026), Err(NationalIdError::BirthYearOutOfRange));
        assert_eq!(validate("079230012345", 2026), Err(NationalIdError::BirthYearOutOfRange), "born 2030");
        assert_eq!(validate("079880012345", 2026), Err(NationalIdError::BirthYearOutOfRange), "born 1880");
    }

    #[test]
    fn masking_keeps_only_province_and_last_two() {
        assert_eq!(mask("079165012345"), "079*******45");
        assert_eq!(mask("123"), "***");
    }

    #[test]
    fn current_year_is_plausible() {
        let y = current_year();
        assert!((2025..2100).contains(&y), "{y}");
    }
}
