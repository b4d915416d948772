//! The ticket code as a QR symbol: the module matrix the phone shells draw, an SVG and a PNG.
//! The base45 text is encoded in alphanumeric mode at error correction level M, in the smallest
//! version that holds it (at most 10, which holds 311 characters: every code fits). The QR
//! encoding itself is the `qrcode` crate's; this module only picks the mode and draws.

use qrcode::bits::Bits;
use qrcode::{Color, EcLevel, QrCode, Version};

/// The largest symbol a ticket may need (57 × 57 modules): gates' cameras are set up for it.
pub const MAX_VERSION: u8 = 10;
/// Light modules around the symbol that every reader needs (ISO/IEC 18004).
pub const QUIET_ZONE: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QrError {
    #[error("text does not fit a QR version {max_version} symbol at level M in alphanumeric mode")]
    TooLong { max_version: u8 },
    #[error("text has characters outside QR's alphanumeric set")]
    NotAlphanumeric,
    #[error("PNG encoding failed: {0}")]
    Png(String),
}

/// A QR symbol: `rows[y][x]` is true for a dark module. No quiet zone: drawers add
/// [`QUIET_ZONE`] light modules on every side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrMatrix {
    pub version: u8,
    /// Modules per side.
    pub size: usize,
    pub rows: Vec<Vec<bool>>,
}

/// Encodes `text` (QR alphanumeric characters, such as a base45 ticket code) as the smallest
/// symbol of version at most [`MAX_VERSION`], level M, alphanumeric mode.
pub fn encode(text: &str) -> Result<QrMatrix, QrError> {
    encode_up_to(text, MAX_VERSION)
}

/// [`encode`] with another largest version (identity codes, read at a desk, may be larger).
pub fn encode_up_to(text: &str, max_version: u8) -> Result<QrMatrix, QrError> {
    if !text.bytes().all(|c| super::base45::ALPHABET.contains(&c)) {
        return Err(QrError::NotAlphanumeric);
    }
    for version in 1..=max_version.min(40) {
        let mut bits = Bits::new(Version::Normal(version as i16));
        if bits.push_alphanumeric_data(text.as_bytes()).is_err() || bits.push_terminator(EcLevel::M).is_err() {
            continue; // does not fit this version: try the next
        }
        let code = QrCode::with_bits(bits, EcLevel::M).map_err(|_| QrError::TooLong { max_version })?;
        let size = code.width();
        let colors = code.to_colors();
        let rows = colors.chunks(size).map(|row| row.iter().map(|c| *c == Color::Dark).collect()).collect();
        return Ok(QrMatrix { version, size, rows });
    }
    Err(QrError::TooLong { max_version })
}

impl QrMatrix {
    fn dark(&self, x: usize, y: usize) -> bool {
        self.rows.get(y).and_then(|r| r.get(x)).copied().unwrap_or(false)
    }

    /// Side of the drawn symbol in modules, quiet zone included.
    pub fn side_with_quiet_zone(&self) -> usize {
        self.size + 2 * QUIET_ZONE
    }

    /// An SVG document, one module per user unit, quiet zone included; scales to any size.
    pub fn to_svg(&self) -> String {
        let side = self.side_with_quiet_zone();
        let mut path = String::with_capacity(self.size * self.size * 6);
        for (y, row) in self.rows.iter().enumerate() {
            for (x, _) in row.iter().enumerate().filter(|(_, dark)| **dark) {
                path.push_str(&format!("M{},{}h1v1h-1z", x + QUIET_ZONE, y + QUIET_ZONE));
            }
        }
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {side} {side}\" \
             shape-rendering=\"crispEdges\"><rect width=\"{side}\" height=\"{side}\" fill=\"#fff\"/>\
             <path fill=\"#000\" d=\"{path}\"/></svg>"
        )
    }

    /// A greyscale PNG, `scale` pixels per module (1 to 32), quiet zone included.
    pub fn to_png(&self, scale: u32) -> Result<Vec<u8>, QrError> {
        let scale = scale.clamp(1, 32) as usize;
        let side = self.side_with_quiet_zone() * scale;
        let mut pixels = Vec::with_capacity(side * side);
        for py in 0..side {
            for px in 0..side {
                let (x, y) = ((px / scale).wrapping_sub(QUIET_ZONE), (py / scale).wrapping_sub(QUIET_ZONE));
                pixels.push(if self.dark(x, y) { 0u8 } else { 255u8 });
            }
        }
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, side as u32, side as u32);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(|e| QrError::Png(e.to_string()))?;
        writer.write_image_data(&pixels).map_err(|e| QrError::Png(e.to_string()))?;
        writer.finish().map_err(|e| QrError::Png(e.to_string()))?;
        Ok(out)
    }

    /// The symbol as text for a terminal, two modules per character cell (upper and lower half
    /// blocks). Like `qrencode -t UTF8`, light modules are drawn (`█`) and dark ones left blank,
    /// so it reads on the usual dark terminal background.
    pub fn to_text_blocks(&self) -> String {
        let side = self.side_with_quiet_zone() as isize;
        let light = |x: isize, y: isize| -> bool {
            let (mx, my) = (x - QUIET_ZONE as isize, y - QUIET_ZONE as isize);
            mx < 0 || my < 0 || !self.dark(mx as usize, my as usize)
        };
        let mut out = String::new();
        for y in (0..side).step_by(2) {
            for x in 0..side {
                let top = light(x, y);
                let bottom = y + 1 >= side || light(x, y + 1);
                out.push(match (top, bottom) {
                    (true, true) => '█',
                    (true, false) => '▀',
                    (false, true) => '▄',
                    (false, false) => ' ',
                });
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
#[path = "qr_tests.rs"]
mod tests;
