//! What kind of file an attachment is, decided by its content (magic bytes), never by its name.
//!
//! A file name is whatever the sender wants it to be: an `.exe` renamed `giay-to.jpg` must not
//! reach an agency officer's computer as a "photo". The phone checks before it stores an
//! attachment and the server checks again before it keeps the blob, with this same code.
//!
//! Only the types in [`ACCEPTED_MEDIA_TYPES`](crate::catalog::model::ACCEPTED_MEDIA_TYPES) are
//! recognised; anything else is unknown, which is refused.

use crate::catalog::model::{AttachmentRule, LocalizedText};

pub const JPEG: &str = "image/jpeg";
pub const PNG: &str = "image/png";
pub const PDF: &str = "application/pdf";
pub const HEIC: &str = "image/heic";

/// How many leading bytes [`sniff`] needs at most; read this much of a file and pass it in.
pub const HEAD_LEN: usize = 512;

const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1A, b'\n'];
/// A PNG's first chunk is always IHDR with a 13-byte body.
const PNG_IHDR: [u8; 8] = [0, 0, 0, 13, b'I', b'H', b'D', b'R'];

/// Brands that mean HEVC-coded HEIF, which is what phones write as `.heic`.
const HEVC_BRANDS: [&[u8; 4]; 7] = [
    b"heic", b"heix", b"hevc", b"heim", b"heis", b"hevm", b"hevs",
];
/// Generic HEIF brands: HEIC unless the file also says it is AVIF (which uses them too).
const HEIF_BRANDS: [&[u8; 4]; 2] = [b"mif1", b"msf1"];
const AVIF_BRANDS: [&[u8; 4]; 2] = [b"avif", b"avis"];
/// An `ftyp` box is a few dozen bytes; a larger declared size means this is not one.
const MAX_FTYP_SIZE: usize = 4096;

/// The media type of a file from its first bytes, or `None` when it is not one of the accepted
/// types or is too short to tell. Never panics, whatever the input.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Some(JPEG);
    }
    if bytes.starts_with(&PNG_SIGNATURE) && bytes.get(8..16) == Some(&PNG_IHDR[..]) {
        return Some(PNG);
    }
    // `%PDF-` and the major version digit.
    if bytes.starts_with(b"%PDF-") && bytes.get(5).is_some_and(u8::is_ascii_digit) {
        return Some(PDF);
    }
    if is_heic(bytes) {
        return Some(HEIC);
    }
    None
}

/// An ISO base media file whose first box is a sane `ftyp` naming a HEIC brand. MP4 and
/// QuickTime videos and AVIF images share the box format but not the brands.
fn is_heic(bytes: &[u8]) -> bool {
    if bytes.get(4..8) != Some(&b"ftyp"[..]) {
        return false;
    }
    let Some(size) = bytes.get(0..4).and_then(|s| <[u8; 4]>::try_from(s).ok()) else {
        return false;
    };
    // Header (8) + major brand (4) + minor version (4), then whole 4-byte compatible brands,
    // so the size is a multiple of 4.
    // Size 0 ("to the end of the file") and 1 (64-bit size) are not used for `ftyp`.
    let size = u32::from_be_bytes(size) as usize;
    if !(16..=MAX_FTYP_SIZE).contains(&size) || size & 3 != 0 {
        return false;
    }
    let Some(major) = bytes.get(8..12) else {
        return false;
    };
    // Brands past the bytes we were given are simply not seen.
    let compatible = bytes.get(16..size.min(bytes.len())).unwrap_or(&[]);
    let brands = || std::iter::once(major).chain(compatible.chunks_exact(4));
    let any = |set: &[&[u8; 4]]| brands().any(|b| set.iter().any(|s| &s[..] == b));
    any(&HEVC_BRANDS) || (any(&HEIF_BRANDS) && !any(&AVIF_BRANDS))
}

/// Why a file cannot be attached under a rule. Carries no file name or content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AttachmentProblem {
    #[error("the file is not a JPEG, PNG, HEIC or PDF file")]
    UnknownType,
    #[error("a file of type {found} is not accepted here")]
    NotAccepted { found: &'static str },
    #[error("the file is larger than {max_bytes} bytes")]
    TooLarge { max_bytes: u64 },
    #[error("the file is empty")]
    Empty,
}

/// Checks a file against an attachment rule: not empty, a recognised type the rule accepts, no
/// larger than the rule allows. `bytes_head` is the file's first bytes ([`HEAD_LEN`] is enough),
/// `size` its full length. The type is checked before the size: a wrong file stays wrong
/// however small it is made. Returns the media type to store with the file.
pub fn check(
    bytes_head: &[u8],
    size: u64,
    rule: &AttachmentRule,
) -> Result<&'static str, AttachmentProblem> {
    if size == 0 {
        return Err(AttachmentProblem::Empty);
    }
    let found = sniff(bytes_head).ok_or(AttachmentProblem::UnknownType)?;
    if !rule.accept.iter().any(|a| a == found) {
        return Err(AttachmentProblem::NotAccepted { found });
    }
    if size > rule.max_bytes {
        return Err(AttachmentProblem::TooLarge {
            max_bytes: rule.max_bytes,
        });
    }
    Ok(found)
}

impl AttachmentProblem {
    /// A short message for the resident, Vietnamese first, saying what to do next.
    pub fn user_message(&self) -> LocalizedText {
        let (vi, en) = match *self {
            AttachmentProblem::UnknownType => (
                "Không nhận ra loại tệp này. Vui lòng gửi ảnh chụp (JPG, PNG, HEIC) hoặc tệp PDF.".to_string(),
                "This kind of file is not recognised. Please send a photo (JPG, PNG, HEIC) or a PDF file.".to_string(),
            ),
            AttachmentProblem::NotAccepted { found } => {
                let (kind_vi, kind_en) = kind_names(found);
                (
                    format!("Mục này không nhận {kind_vi}. Vui lòng chọn loại tệp khác."),
                    format!("This item does not take {kind_en}. Please choose another kind of file."),
                )
            }
            AttachmentProblem::TooLarge { max_bytes } => (
                format!(
                    "Tệp quá lớn, tối đa {}. Vui lòng chụp lại với chất lượng thấp hơn hoặc chọn tệp nhỏ hơn.",
                    human_size(max_bytes, true)
                ),
                format!(
                    "This file is too large, at most {}. Please take the photo again at a lower quality or choose a smaller file.",
                    human_size(max_bytes, false)
                ),
            ),
            AttachmentProblem::Empty => (
                "Tệp này trống. Vui lòng chọn tệp khác.".to_string(),
                "This file is empty. Please choose another file.".to_string(),
            ),
        };
        LocalizedText { vi, en }
    }
}

fn kind_names(media_type: &str) -> (&'static str, &'static str) {
    match media_type {
        JPEG => ("ảnh JPG", "JPG photos"),
        PNG => ("ảnh PNG", "PNG images"),
        HEIC => ("ảnh HEIC", "HEIC photos"),
        PDF => ("tệp PDF", "PDF files"),
        _ => ("loại tệp này", "this kind of file"),
    }
}

/// A size limit as people read it, rounded down so a file that fits the shown limit fits the
/// real one: `10 MB`, `1,5 MB` (Vietnamese decimal comma), `500 KB`.
fn human_size(bytes: u64, vietnamese: bool) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * 1024;
    if bytes >= MIB {
        let tenths = bytes / (MIB / 10);
        let (whole, tenth) = (tenths / 10, tenths % 10);
        if tenth == 0 {
            format!("{whole} MB")
        } else {
            format!("{whole}{}{tenth} MB", if vietnamese { ',' } else { '.' })
        }
    } else if bytes >= KIB {
        format!("{} KB", bytes / KIB)
    } else {
        format!(
            "{bytes} {}",
            if !vietnamese && bytes != 1 {
                "bytes"
            } else {
                "byte"
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// A complete 1x1 transparent PNG (67 bytes).
    const PNG_1X1: &[u8] = &[
        0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44,
        0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F,
        0x15, 0xC4, 0x89, 0x00, 0x00, 0x00, 0x0A, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0x00,
        0x01, 0x00, 0x00, 0x05, 0x00, 0x01, 0x0D, 0x0A, 0x2D, 0xB4, 0x00, 0x00, 0x00, 0x00, 0x49,
        0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
    ];
    /// JPEG start of image and a JFIF APP0 segment.
    const JPEG_JFIF: &[u8] = &[
        0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0x00, 0x01, 0x01, 0x00, 0x00,
        0x01, 0x00, 0x01, 0x00, 0x00,
    ];
    /// A phone camera's JPEG starts with an EXIF APP1 segment instead.
    const JPEG_EXIF: &[u8] = &[
        0xFF, 0xD8, 0xFF, 0xE1, 0x1C, 0x45, b'E', b'x', b'i', b'f', 0, 0,
    ];
    const PDF_17: &[u8] = b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n1 0 obj\n";
    /// The `ftyp` box of an iPhone photo: major brand heic, compatible mif1, miaf, MiHB, heic.
    const HEIC_IPHONE: &[u8] = &[
        0x00, 0x00, 0x00, 0x24, b'f', b't', b'y', b'p', b'h', b'e', b'i', b'c', 0x00, 0x00, 0x00,
        0x00, b'm', b'i', b'f', b'1', b'm', b'i', b'a', b'f', b'M', b'i', b'H', b'B', b'h', b'e',
        b'i', b'c', 0x00, 0x00, 0x00, 0x00,
    ];
    /// A Windows executable's DOS header.
    const EXE: &[u8] = &[
        b'M', b'Z', 0x90, 0x00, 0x03, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0x00,
        0x00,
    ];

    fn ftyp(major: &[u8; 4], compatible: &[&[u8; 4]]) -> Vec<u8> {
        let size = 16 + 4 * compatible.len() as u32;
        let mut v = size.to_be_bytes().to_vec();
        v.extend_from_slice(b"ftyp");
        v.extend_from_slice(major);
        v.extend_from_slice(&[0, 0, 0, 0]);
        for b in compatible {
            v.extend_from_slice(&b[..]);
        }
        v
    }

    fn rule(accept: &[&str], max_bytes: u64) -> AttachmentRule {
        AttachmentRule {
            id: "photo".into(),
            label: LocalizedText {
                vi: "Ảnh".into(),
                en: "Photo".into(),
            },
            required: true,
            accept: accept.iter().map(|s| s.to_string()).collect(),
            max_bytes,
        }
    }

    #[test]
    fn real_headers_are_recognised() {
        assert_eq!(sniff(PNG_1X1), Some(PNG));
        assert_eq!(sniff(JPEG_JFIF), Some(JPEG));
        assert_eq!(sniff(JPEG_EXIF), Some(JPEG));
        assert_eq!(sniff(PDF_17), Some(PDF));
        assert_eq!(sniff(b"%PDF-2.0"), Some(PDF));
        assert_eq!(sniff(HEIC_IPHONE), Some(HEIC));
        for brand in HEVC_BRANDS {
            assert_eq!(sniff(&ftyp(brand, &[])), Some(HEIC), "major {brand:?}");
            assert_eq!(
                sniff(&ftyp(b"xxxx", &[brand])),
                Some(HEIC),
                "compatible {brand:?}"
            );
        }
        assert_eq!(sniff(&ftyp(b"mif1", &[b"heic"])), Some(HEIC));
        assert_eq!(sniff(&ftyp(b"msf1", &[])), Some(HEIC));
    }

    #[test]
    fn other_content_is_unknown() {
        let zip: &[u8] = b"PK\x03\x04\x14\x00\x00\x00\x08\x00";
        let gif: &[u8] = b"GIF89a\x01\x00\x01\x00";
        let webp: &[u8] = b"RIFF\x24\x00\x00\x00WEBPVP8 ";
        let elf: &[u8] = b"\x7FELF\x02\x01\x01\x00";
        let html: &[u8] = b"<!DOCTYPE html><html>";
        for (what, bytes) in [
            ("exe", EXE),
            ("zip", zip),
            ("gif", gif),
            ("webp", webp),
            ("elf", elf),
            ("html", html),
            ("text", &b"Xin chao, day la giay to"[..]),
            ("empty", &[][..]),
            ("pdf without version", &b"%PDF-x"[..]),
            ("png without IHDR", &PNG_1X1[..8]),
        ] {
            assert_eq!(sniff(bytes), None, "{what}");
        }
        // Same box format, other brands: videos and AVIF images.
        assert_eq!(
            sniff(&ftyp(b"isom", &[b"iso2", b"avc1", b"mp41"])),
            None,
            "mp4"
        );
        assert_eq!(sniff(&ftyp(b"qt  ", &[b"qt  "])), None, "mov");
        assert_eq!(
            sniff(&ftyp(b"avif", &[b"avif", b"mif1", b"miaf"])),
            None,
            "avif"
        );
        assert_eq!(
            sniff(&ftyp(b"mif1", &[b"avif"])),
            None,
            "avif with a generic major brand"
        );
        // A PNG signature whose first chunk is not IHDR.
        let mut bad_png = PNG_1X1.to_vec();
        bad_png[12] = b'X';
        assert_eq!(sniff(&bad_png), None);
    }

    #[test]
    fn ftyp_box_sizes_must_be_sane() {
        let good = ftyp(b"heic", &[b"mif1"]);
        for size in [
            0u32,
            1,
            8,
            12,
            15,
            17,
            22,
            MAX_FTYP_SIZE as u32 + 4,
            u32::MAX,
        ] {
            let mut v = good.clone();
            v[..4].copy_from_slice(&size.to_be_bytes());
            assert_eq!(sniff(&v), None, "size {size}");
        }
        // A declared size longer than what we were given reads the brands that are there.
        let mut v = good.clone();
        v[..4].copy_from_slice(&64u32.to_be_bytes());
        assert_eq!(sniff(&v), Some(HEIC));
        // `ftyp` not at offset 4 is not an ISO media file.
        let mut shifted = vec![0u8];
        shifted.extend_from_slice(&good);
        assert_eq!(sniff(&shifted), None);
    }

    #[test]
    fn truncated_inputs_never_panic_and_never_guess() {
        for (full, kind, needs) in [
            (PNG_1X1, PNG, 16),
            (JPEG_JFIF, JPEG, 3),
            (PDF_17, PDF, 6),
            (HEIC_IPHONE, HEIC, 12),
        ] {
            for n in 0..=full.len() {
                let got = sniff(&full[..n]);
                if n < needs {
                    assert_eq!(got, None, "{kind} cut at {n}");
                } else {
                    assert_eq!(got, Some(kind), "{kind} cut at {n}");
                }
            }
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = StdRng::seed_from_u64(11);
        let r = rule(&[JPEG, PNG, PDF, HEIC], 1000);
        for i in 0..100_000 {
            let len = rng.gen_range(0..48);
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            // Every other case looks like a box, to exercise the ftyp parser.
            if i % 2 == 0 && bytes.len() >= 8 {
                bytes[4..8].copy_from_slice(b"ftyp");
                if rng.gen_bool(0.5) {
                    bytes[..4].copy_from_slice(&(rng.gen_range(0..64u32) * 4).to_be_bytes());
                }
            }
            if let Some(t) = sniff(&bytes) {
                assert!(crate::catalog::model::ACCEPTED_MEDIA_TYPES.contains(&t));
            }
            let _ = check(&bytes, rng.gen(), &r);
        }
    }

    #[test]
    fn check_against_a_rule() {
        let photos = rule(&[JPEG, PNG, HEIC], 5 * 1024 * 1024);
        assert_eq!(check(JPEG_JFIF, 2_000_000, &photos), Ok(JPEG));
        assert_eq!(check(PNG_1X1, PNG_1X1.len() as u64, &photos), Ok(PNG));
        assert_eq!(check(HEIC_IPHONE, 3_000_000, &photos), Ok(HEIC));
        assert_eq!(
            check(PDF_17, 1000, &photos),
            Err(AttachmentProblem::NotAccepted { found: PDF })
        );
        // An .exe renamed .jpg: the name is never seen, the content is not a photo.
        assert_eq!(
            check(EXE, 40_000, &photos),
            Err(AttachmentProblem::UnknownType)
        );
        assert_eq!(
            check(JPEG_JFIF, 5 * 1024 * 1024, &photos),
            Ok(JPEG),
            "exactly the limit"
        );
        assert_eq!(
            check(JPEG_JFIF, 5 * 1024 * 1024 + 1, &photos),
            Err(AttachmentProblem::TooLarge {
                max_bytes: 5 * 1024 * 1024
            })
        );
        assert_eq!(
            check(EXE, u64::MAX, &photos),
            Err(AttachmentProblem::UnknownType),
            "type before size"
        );
        assert_eq!(check(&[], 0, &photos), Err(AttachmentProblem::Empty));
        assert_eq!(check(JPEG_JFIF, 0, &photos), Err(AttachmentProblem::Empty));
        assert_eq!(check(&[], 10, &photos), Err(AttachmentProblem::UnknownType));
    }

    #[test]
    fn messages_are_plain_and_bilingual() {
        let m = AttachmentProblem::TooLarge {
            max_bytes: 10 * 1024 * 1024,
        }
        .user_message();
        assert!(m.vi.starts_with("Tệp quá lớn, tối đa 10 MB."), "{m:?}");
        assert!(
            m.en.starts_with("This file is too large, at most 10 MB."),
            "{m:?}"
        );
        let m = AttachmentProblem::TooLarge {
            max_bytes: 1024 * 1024 * 3 / 2,
        }
        .user_message();
        assert!(m.vi.contains("1,5 MB") && m.en.contains("1.5 MB"), "{m:?}");
        let m = AttachmentProblem::NotAccepted { found: PDF }.user_message();
        assert_eq!(
            m.vi,
            "Mục này không nhận tệp PDF. Vui lòng chọn loại tệp khác."
        );
        assert_eq!(
            m.en,
            "This item does not take PDF files. Please choose another kind of file."
        );
        for p in [
            AttachmentProblem::UnknownType,
            AttachmentProblem::Empty,
            AttachmentProblem::NotAccepted { found: HEIC },
        ] {
            let m = p.user_message();
            assert!(!m.vi.is_empty() && !m.en.is_empty());
        }
        assert_eq!(human_size(500 * 1024, false), "500 KB");
        assert_eq!(human_size(1, false), "1 byte");
        assert_eq!(human_size(50 * 1024 * 1024, true), "50 MB");
        assert_eq!(
            human_size(10 * 1024 * 1024 + 1, true),
            "10 MB",
            "rounded down"
        );
    }

    #[test]
    fn types_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<AttachmentProblem>();
    }
}
