//! Property test of the code parser and verifier: random and mutated codes, hundreds of
//! thousands per run, must never panic and never be accepted. Each run uses a fixed seed (the
//! same cases every time) and a seed that varies from run to run (new cases); both are printed,
//! so a failure can be replayed with `TICKET_FUZZ_SEED=<seed>`.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::crypto::{Ed25519Signer, P256Signer, PublicKey};
use crate::tickets::base45;
use crate::tickets::wire::*;

struct Fixture {
    keys: Vec<(Vec<u8>, PublicKey)>,
    codes: Vec<Vec<u8>>,
}

fn fixture() -> Fixture {
    let op = Ed25519Signer::from_seed(&[9; 32], b"1".to_vec()).unwrap();
    let dev = P256Signer::from_pkcs8(&P256Signer::generate_pkcs8().unwrap(), None).unwrap();
    let device_key = compress_device_key(&dev.public_key().bytes).unwrap();
    let mut codes = Vec::new();
    for product in Product::ALL {
        let single = product == Product::SingleJourney;
        let ticket = Ticket {
            product,
            concession: single.then_some(Concession::Student),
            origin: single.then_some(2),
            destination: single.then_some(13),
            fare_vnd: 20_000,
            valid_from: 1_795_503_600,
            valid_until: 1_795_503_600 + product.validity_seconds(),
            device_key: device_key.clone(),
        };
        codes.push(make_code(&ticket.sign(&op).unwrap(), 1_795_503_620, &dev).unwrap());
    }
    Fixture { keys: vec![(b"1".to_vec(), op.public_key())], codes }
}

/// The same cases every run.
const FIXED_SEED: u64 = 20_261_124;

/// The fixed seed and one that changes every run (or `TICKET_FUZZ_SEED` to replay a failure).
fn seeds() -> [u64; 2] {
    let varying = std::env::var("TICKET_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    [FIXED_SEED, varying]
}

/// One change of the kinds a damaged, truncated or forged code shows.
fn mutate(rng: &mut StdRng, code: &[u8], others: &[Vec<u8>]) -> Vec<u8> {
    let mut out = code.to_vec();
    let edits = rng.gen_range(1..=3);
    for _ in 0..edits {
        if out.is_empty() {
            out.push(rng.gen());
            continue;
        }
        let at = rng.gen_range(0..out.len());
        match rng.gen_range(0..9) {
            0 => out[at] ^= 1 << rng.gen_range(0..8),
            1 => out[at] = rng.gen(),
            2 => out.insert(at, rng.gen()),
            3 => {
                out.remove(at);
            }
            4 => out.truncate(at),
            5 => out.extend((0..rng.gen_range(1..8)).map(|_| rng.gen::<u8>())),
            // A length or count byte: the varints of the envelope and the slot.
            6 => out[at] = [0x00, 0x01, 0x7f, 0x80, 0xff][rng.gen_range(0..5)],
            // Part of another valid code (another ticket of the same phone) spliced in.
            7 => {
                let other = &others[rng.gen_range(0..others.len())];
                let from = rng.gen_range(0..other.len());
                let len = rng.gen_range(1..=other.len() - from);
                let end = (at + len).min(out.len());
                out.splice(at..end, other[from..from + len].iter().copied());
            }
            // A segment repeated.
            _ => {
                let len = rng.gen_range(1..=(out.len() - at).min(16));
                let segment = out[at..at + len].to_vec();
                out.splice(at..at, segment);
            }
        }
    }
    out
}

const RANDOM_CASES: usize = 200_000;
const MUTATED_CASES: usize = 60_000;
const TEXT_CASES: usize = 200_000;

#[test]
fn random_and_mutated_codes_never_panic_and_are_never_accepted() {
    let fixture = fixture();
    for code in &fixture.codes {
        verify_code(code, &fixture.keys).expect("the unmutated codes verify");
    }
    for seed in seeds() {
        println!("ticket fuzz seed {seed} (replay: TICKET_FUZZ_SEED={seed})");
        let mut rng = StdRng::seed_from_u64(seed);
        for case in 0..RANDOM_CASES {
            // Random bytes, half of them starting like a code so the parser goes deeper.
            let len = rng.gen_range(0..=MAX_CODE_LEN + 8);
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            if case % 2 == 0 && len >= 7 {
                bytes[..5].copy_from_slice(&[CODE_VERSION, b'C', b'D', 1, TICKET_TYPE]);
                bytes[5] = 1;
            }
            let _ = parse_code(&bytes);
            assert!(verify_code(&bytes, &fixture.keys).is_err(), "seed {seed}, random case {case} accepted");
        }
        for case in 0..MUTATED_CASES {
            let original = &fixture.codes[case % fixture.codes.len()];
            let mutated = mutate(&mut rng, original, &fixture.codes);
            if fixture.codes.contains(&mutated) {
                continue; // an edit that changed nothing
            }
            if let Ok(parsed) = parse_code(&mutated) {
                let _ = parsed.ticket_id();
            }
            assert!(verify_code(&mutated, &fixture.keys).is_err(), "seed {seed}, mutated case {case} accepted");
        }
    }
}

#[test]
fn random_text_never_panics_the_base45_decoder_or_the_text_parser() {
    let fixture = fixture();
    let texts: Vec<String> = fixture.codes.iter().map(|c| code_text(c)).collect();
    for seed in seeds() {
        println!("ticket fuzz seed {seed} (replay: TICKET_FUZZ_SEED={seed})");
        let mut rng = StdRng::seed_from_u64(seed);
        for case in 0..TEXT_CASES {
            let text: String = if case % 2 == 0 {
                // Any characters, alphabet-heavy, some multi-byte.
                let len = rng.gen_range(0..=320);
                (0..len)
                    .map(|_| match rng.gen_range(0..10) {
                        0 => char::from_u32(rng.gen_range(0..0x3000)).unwrap_or('?'),
                        _ => base45::ALPHABET[rng.gen_range(0..45)] as char,
                    })
                    .collect()
            } else {
                // A real code's text with a few characters replaced, inserted or removed.
                let mut chars: Vec<u8> = texts[case % texts.len()].bytes().collect();
                for _ in 0..rng.gen_range(1..=3) {
                    let at = rng.gen_range(0..chars.len());
                    match rng.gen_range(0..3) {
                        0 => chars[at] = base45::ALPHABET[rng.gen_range(0..45)],
                        1 => chars.insert(at, base45::ALPHABET[rng.gen_range(0..45)]),
                        _ => {
                            chars.remove(at);
                        }
                    }
                }
                String::from_utf8(chars).unwrap()
            };
            if let Ok(bytes) = base45::decode(&text) {
                assert_eq!(base45::encode(&bytes), text, "seed {seed}, case {case}: one text per byte string");
                if texts.contains(&text) {
                    continue;
                }
                assert!(verify_code(&bytes, &fixture.keys).is_err(), "seed {seed}, text case {case} accepted");
            }
            let _ = parse_code_text(&text);
        }
    }
}
