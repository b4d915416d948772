//! Text folding for offline search: Vietnamese users type with and without diacritics
//! ("tam tru" must find "Tạm trú"), so both the indexed text and the query are folded the same way.

use unicode_normalization::UnicodeNormalization;

/// Lower-cases, strips combining marks and maps đ/Đ to d (đ has no decomposition, so NFD alone
/// would keep it). Runs of non-alphanumeric characters become one space.
pub fn fold(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    let mut pending_space = false;
    for c in input.nfd() {
        if unicode_normalization::char::is_combining_mark(c) {
            continue;
        }
        let c = match c {
            'đ' | 'Đ' => 'd',
            other => other,
        };
        if c.is_alphanumeric() {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            out.extend(c.to_lowercase());
        } else {
            pending_space = true;
        }
    }
    out
}

/// The folded words of a search query, without duplicates.
pub fn query_tokens(query: &str) -> Vec<String> {
    let mut tokens: Vec<String> = Vec::new();
    for t in fold(query).split(' ').filter(|t| !t.is_empty()) {
        if !tokens.iter().any(|x| x == t) {
            tokens.push(t.to_string());
        }
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_vietnamese_diacritics_and_d_with_stroke() {
        assert_eq!(fold("Đăng ký tạm trú"), "dang ky tam tru");
        assert_eq!(fold("Giấy phép xây dựng"), "giay phep xay dung");
        assert_eq!(fold("ĐỒNG-Khởi, Q.1"), "dong khoi q 1");
        // Precomposed and decomposed input fold to the same text.
        assert_eq!(fold("Tr\u{1B0}\u{1EDD}ng"), fold("Tru\u{31B}o\u{31B}\u{300}ng"));
    }

    #[test]
    fn query_tokens_are_folded_and_unique() {
        assert_eq!(query_tokens("  Tạm   trú tam "), vec!["tam", "tru"]);
        assert!(query_tokens(" ,. ").is_empty());
    }
}
