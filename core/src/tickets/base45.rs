//! Base45 (RFC 9285): the text form of a ticket code. Its 45 characters are exactly QR's
//! alphanumeric set, so a 200-byte code becomes 300 characters that fit a version 10-M symbol
//! (311 alphanumeric characters), where base64 would need byte mode and a larger symbol.

/// The RFC 9285 alphabet, in value order.
pub const ALPHABET: &[u8; 45] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Base45Error {
    #[error("character {0:#04x} is not base45")]
    InvalidCharacter(u8),
    /// A trailing single character (length ≡ 1 mod 3) cannot come from any byte string.
    #[error("base45 text has an impossible length")]
    InvalidLength,
    /// A group encoding a value above what its byte count can hold: refused so that every byte
    /// string has exactly one text form.
    #[error("base45 group out of range")]
    OutOfRange,
}

/// Each pair of bytes becomes three characters, a trailing single byte two (least significant first).
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(2) * 3);
    let mut push = |v: u32| out.push(ALPHABET[v as usize] as char);
    for pair in bytes.chunks(2) {
        match *pair {
            [a, b] => {
                let n = (a as u32) * 256 + b as u32;
                push(n % 45);
                push((n / 45) % 45);
                push(n / (45 * 45));
            }
            [a] => {
                let n = a as u32;
                push(n % 45);
                push(n / 45);
            }
            _ => unreachable!("chunks(2) yields one or two bytes"),
        }
    }
    out
}

fn value(c: u8) -> Result<u32, Base45Error> {
    ALPHABET.iter().position(|&a| a == c).map(|p| p as u32).ok_or(Base45Error::InvalidCharacter(c))
}

/// Reverses [`encode`]; refuses characters outside the alphabet, impossible lengths and
/// out-of-range groups.
pub fn decode(text: &str) -> Result<Vec<u8>, Base45Error> {
    let chars = text.as_bytes();
    if chars.len() % 3 == 1 {
        return Err(Base45Error::InvalidLength);
    }
    let mut out = Vec::with_capacity(chars.len() / 3 * 2 + 1);
    for group in chars.chunks(3) {
        match *group {
            [c, d, e] => {
                let n = value(c)? + value(d)? * 45 + value(e)? * 45 * 45;
                if n > 0xffff {
                    return Err(Base45Error::OutOfRange);
                }
                out.push((n >> 8) as u8);
                out.push(n as u8);
            }
            [c, d] => {
                let n = value(c)? + value(d)? * 45;
                if n > 0xff {
                    return Err(Base45Error::OutOfRange);
                }
                out.push(n as u8);
            }
            _ => return Err(Base45Error::InvalidLength),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The examples of RFC 9285 section 4.
    #[test]
    fn rfc_9285_examples() {
        assert_eq!(encode(b"AB"), "BB8");
        assert_eq!(encode(b"Hello!!"), "%69 VD92EX0");
        assert_eq!(encode(b"base-45"), "UJCLQE7W581");
        assert_eq!(decode("QED8WEX0").unwrap(), b"ietf!");
        assert_eq!(decode("BB8").unwrap(), b"AB");
    }

    #[test]
    fn round_trips_every_length_and_extreme_bytes() {
        for len in 0..64usize {
            for fill in [0x00u8, 0x01, 0x7f, 0x80, 0xfe, 0xff] {
                let bytes: Vec<u8> = (0..len).map(|i| fill ^ (i as u8).wrapping_mul(37)).collect();
                let text = encode(&bytes);
                assert_eq!(text.len(), len / 2 * 3 + len % 2 * 2);
                assert_eq!(decode(&text).unwrap(), bytes);
            }
        }
    }

    #[test]
    fn refuses_bad_text() {
        assert_eq!(decode("GGW"), Err(Base45Error::OutOfRange)); // 65536 and above
        assert_eq!(decode("ZZZ"), Err(Base45Error::OutOfRange));
        assert_eq!(decode("Z6"), Err(Base45Error::OutOfRange)); // 35 + 6*45 = 305 > 255
        assert_eq!(decode("A"), Err(Base45Error::InvalidLength));
        assert_eq!(decode("BB8A"), Err(Base45Error::InvalidLength));
        assert_eq!(decode("bb8"), Err(Base45Error::InvalidCharacter(b'b')));
        assert_eq!(decode("B\u{e9}"), Err(Base45Error::InvalidCharacter(0xc3)));
        assert_eq!(decode("").unwrap(), Vec::<u8>::new());
    }
}
