//! Test vectors published in the format documents (docs/*.md), read back by the tests so that a
//! document cannot drift from the code. A vector is a line `label value` inside the document.

use super::from_hex;

pub(crate) struct DocVectors {
    path: &'static str,
    text: &'static str,
}

impl DocVectors {
    pub(crate) const fn new(path: &'static str, text: &'static str) -> DocVectors {
        DocVectors { path, text }
    }

    /// The value after `label` on the line that starts with it.
    pub(crate) fn value(&self, label: &str) -> String {
        self.text
            .lines()
            .find_map(|l| l.strip_prefix(label).filter(|rest| rest.starts_with(' ')).map(|v| v.trim().to_string()))
            .unwrap_or_else(|| panic!("{} has no line starting with {label:?}", self.path))
    }

    pub(crate) fn hex(&self, label: &str) -> Vec<u8> {
        from_hex(&self.value(label)).unwrap_or_else(|| panic!("{label} in {} is not hex", self.path))
    }
}
