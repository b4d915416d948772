//! Gate benchmark (issue 5): prints a table. `cargo bench -p congdan-core --bench gate`
//! measures; under `cargo test` (no `--bench` argument) it runs a few iterations as a smoke test.
//!
//! One thread, one core: the full validation of one code (parse, both signatures, rules,
//! revocation among 100,000 ids, pass-back), next to the bare signature checks alone (Ed25519
//! verify, P-256 verify, P-256 point decompression) in the same run; the same ticket as a JWT
//! (ES256, `jsonwebtoken`): its size and verify time; the durable tap (validation plus the
//! SQLite log); and rendering one code as a QR matrix and PNG.

use std::time::{Duration, Instant};

use congdan_core::crypto::{Algorithm, Ed25519Signer, P256Signer, PublicKey};
use congdan_core::platform::Platform;
use congdan_core::tickets::gate::{Direction, Gate, GateConfig, GateValidator, OperatorKey, OperatorKeys, RevocationList};
use congdan_core::tickets::{self, base45, compress_device_key, decompress_device_key, make_code, qr, Product, Ticket};
use congdan_core::{Core, CoreConfig};

const REVOKED: usize = 100_000;

/// Per sample: the CPU time of this thread (what one core spent, whoever else shares the
/// machine) and the wall-clock time.
struct Row {
    name: String,
    samples: Vec<Duration>,
    wall: Vec<Duration>,
}

fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime only writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec.max(0) as u64, ts.tv_nsec.clamp(0, 999_999_999) as u32)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Calls `f(0)` once to warm up, then times `f(1)` … `f(iterations)`.
fn measure(name: &str, iterations: usize, mut f: impl FnMut(usize)) -> Row {
    f(0); // warm-up
    let (mut samples, mut wall) = (Vec::with_capacity(iterations), Vec::with_capacity(iterations));
    for i in 1..=iterations {
        let (t, cpu) = (Instant::now(), thread_cpu_time());
        f(i);
        samples.push(thread_cpu_time().saturating_sub(cpu));
        wall.push(t.elapsed());
    }
    Row { name: name.to_string(), samples, wall }
}

fn mean(samples: &[Duration]) -> Duration {
    samples.iter().sum::<Duration>() / samples.len().max(1) as u32
}

struct Rider {
    device: P256Signer,
    ticket: Vec<u8>,
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let riders_n = if full { 2_000 } else { 20 };
    let rounds = if full { 5 } else { 1 };
    let now = 1_795_500_000 - 1_795_500_000 % 60;

    let operator = Ed25519Signer::from_seed(&[42; 32], b"1".to_vec()).unwrap();
    let keys = OperatorKeys::new(vec![OperatorKey {
        key_id: "1".into(),
        public_key: operator.public_key().bytes,
        valid_from: 0,
        valid_until: None,
    }])
    .unwrap();
    let riders: Vec<Rider> = (0..riders_n)
        .map(|_| {
            let device = P256Signer::from_pkcs8(&P256Signer::generate_pkcs8().unwrap(), None).unwrap();
            let ticket = Ticket {
                product: Product::DayPass,
                concession: None,
                origin: None,
                destination: None,
                fare_vnd: 40_000,
                valid_from: now - 3600,
                valid_until: now + 23 * 3600,
                device_key: compress_device_key(&device.public_key().bytes).unwrap(),
            }
            .sign(&operator)
            .unwrap();
            Rider { device, ticket }
        })
        .collect();
    let codes: Vec<Vec<u8>> = riders.iter().map(|r| make_code(&r.ticket, now - 3, &r.device).unwrap()).collect();
    let revoked: Vec<[u8; 16]> = (0..REVOKED as u64)
        .map(|i| {
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes());
            id
        })
        .collect();
    let revocations = RevocationList::from_ids(1, now, revoked);
    let config = GateConfig::new(4, "S4-E1", Direction::Entry);

    let mut rows = Vec::new();

    // Full validation: every code once per round (each accepted: no pass-back hit), a fresh
    // gate per round so pass-back state starts empty.
    let (mut full_samples, mut full_wall) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let gate = GateValidator::new(config.clone(), keys.clone(), revocations.clone());
        let row = measure("", riders_n - 1, |i| {
            let decision = gate.validate(&codes[i], now);
            assert!(decision.is_accept(), "{decision:?}");
        });
        full_samples.extend(row.samples);
        full_wall.extend(row.wall);
    }
    rows.push(Row {
        name: format!("full validation (parse, 2 signatures, rules, {REVOKED} revoked, pass-back)"),
        samples: full_samples,
        wall: full_wall,
    });

    // The same codes as QR text (base45 decode on top).
    let texts: Vec<String> = codes.iter().map(|c| base45::encode(c)).collect();
    let gate = GateValidator::new(config.clone(), keys.clone(), revocations.clone());
    rows.push(measure("full validation from QR text (base45)", riders_n - 1, |i| {
        assert!(gate.validate_text(&texts[i], now).is_accept());
    }));

    // The bare signature checks, on the same bytes.
    let ed_key = PublicKey { algorithm: Algorithm::Ed25519, bytes: operator.public_key().bytes };
    let parsed: Vec<_> = codes.iter().map(|c| tickets::parse_code(c).unwrap()).collect();
    let device_keys: Vec<PublicKey> = riders.iter().map(|r| r.device.public_key()).collect();
    let proofs: Vec<Vec<u8>> = parsed
        .iter()
        .map(|p| tickets::wire::proof_statement(&p.ticket_id(), p.slot_start, &p.proof_signature))
        .collect();
    let compressed: Vec<Vec<u8>> = riders.iter().map(|r| compress_device_key(&r.device.public_key().bytes).unwrap()).collect();
    let n = riders_n * rounds;
    rows.push(measure("bare Ed25519 verify (ticket)", n, |i| {
        let t = &parsed[i % riders_n].ticket_bytes;
        ed_key.verify(&t[..t.len() - 64], &t[t.len() - 64..]).unwrap();
    }));
    rows.push(measure("bare P-256 verify (proof, uncompressed key)", n, |i| {
        let p = &proofs[i % riders_n];
        device_keys[i % riders_n].verify(&p[..p.len() - 64], &p[p.len() - 64..]).unwrap();
    }));
    rows.push(measure("bare P-256 point decompression (33 -> 65 bytes)", n, |i| {
        decompress_device_key(&compressed[i % riders_n]).unwrap();
    }));
    rows.push(measure("bare checks together (Ed25519 + decompress + P-256)", n, |i| {
        let k = i % riders_n;
        let t = &parsed[k].ticket_bytes;
        ed_key.verify(&t[..t.len() - 64], &t[t.len() - 64..]).unwrap();
        let key = decompress_device_key(&compressed[k]).unwrap();
        let p = &proofs[k];
        key.verify(&p[..p.len() - 64], &p[p.len() - 64..]).unwrap();
    }));
    rows.push(measure(&format!("revocation lookup alone ({REVOKED} ids)"), n, |i| {
        std::hint::black_box(revocations.contains(&parsed[i % riders_n].ticket_id()));
    }));

    // The same ticket as a JWT: ES256 by an operator P-256 key, the device key as a claim.
    let jwt_rows = jwt(&riders, riders_n, n, now);
    let jwt_size = jwt_rows.0;
    rows.push(jwt_rows.1);

    // The durable tap: validation plus the SQLite log (WAL, synchronous=NORMAL).
    let tmp = tempfile::tempdir().unwrap();
    let core = Core::open(CoreConfig::new(tmp.path(), "http://127.0.0.1:9"), Platform::software(tmp.path()).unwrap()).unwrap();
    let device = Gate::open(core, config.clone(), now).unwrap();
    device.set_keys(keys.clone()).unwrap();
    device.validator().set_revocations(revocations.clone()).unwrap();
    rows.push(measure("durable tap (validation + SQLite tap log)", riders_n - 1, |i| {
        assert!(device.tap(&codes[i], now).unwrap().is_accept());
    }));

    // QR rendering of one code (the phone's side).
    let text = &texts[0];
    rows.push(measure("QR render: matrix (version <= 10, level M)", 200.min(n), |_| {
        qr::encode(text).unwrap();
    }));
    let matrix = qr::encode(text).unwrap();
    rows.push(measure("QR render: PNG (scale 4) from the matrix", 200.min(n), |_| {
        matrix.to_png(4).unwrap();
    }));

    identity_rows(&mut rows, n, now);

    println!("\nGate benchmark, one thread ({} codes, {} rounds); CPU time of the thread, wall time after\n", riders_n, rounds);
    println!(
        "{:<72} {:>9} {:>9} {:>9} {:>10} {:>10} {:>10}",
        "what", "mean µs", "p50 µs", "p99 µs", "per s", "wall p50", "wall p99"
    );
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    for row in &mut rows {
        row.samples.sort();
        row.wall.sort();
        let m = mean(&row.samples);
        println!(
            "{:<72} {:>9.1} {:>9.1} {:>9.1} {:>10.0} {:>10.1} {:>10.1}",
            row.name,
            us(m),
            us(percentile(&row.samples, 0.5)),
            us(percentile(&row.samples, 0.99)),
            1.0 / m.as_secs_f64().max(1e-12),
            us(percentile(&row.wall, 0.5)),
            us(percentile(&row.wall, 0.99)),
        );
    }
    let full_mean = mean(&rows[0].samples).as_secs_f64();
    let bare = rows.iter().find(|r| r.name.starts_with("bare checks together")).map(|r| mean(&r.samples).as_secs_f64()).unwrap();
    println!("\nfull validation / bare signature checks: {:.2}x (target <= 1.2x)", full_mean / bare);
    println!(
        "full validation p99: {:.1} µs CPU (target < 250 µs); {:.0} validations/s on one core (target >= 5,000)",
        us(percentile(&rows[0].samples, 0.99)),
        1.0 / full_mean
    );
    println!(
        "code: {} bytes, {} base45 characters; the same ticket as a JWT (ES256): {} characters, no rotating proof",
        codes[0].len(),
        texts[0].len(),
        jwt_size
    );
}

/// The other offline check: an identity code at a front desk (docs/identity-credential.md).
fn identity_rows(rows: &mut Vec<Row>, n: usize, now: u64) {
    use congdan_core::identity::credential::{self as id, Attribute, Disclosure, Freshness};
    let city = Ed25519Signer::from_seed(&[43; 32], b"c".to_vec()).unwrap();
    let city_keys = vec![(b"c".to_vec(), city.public_key())];
    let phone = P256Signer::from_pkcs8(&P256Signer::generate_pkcs8().unwrap(), Some(id::PRESENTATION_KEY_ID.to_vec())).unwrap();
    let mut held: Vec<Disclosure> = [
        (Attribute::FullName, "Nguyễn Thị Lan"),
        (Attribute::NationalId, "079165012345"),
        (Attribute::BirthDate, "1965-03-02"),
        (Attribute::AgeOver18, "true"),
        (Attribute::AgeOver60, "true"),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (attribute, value))| Disclosure { attribute, salt: [i as u8; 16], value: value.into() })
    .collect();
    let device_key = compress_device_key(&phone.public_key().bytes).unwrap();
    let credential = id::issue([7; 16], &device_key, now - 86_400, now + 29 * 86_400, &mut held, &city).unwrap();
    let shown = [Attribute::FullName, Attribute::AgeOver60];
    let text = id::to_qr_text(&id::present(&credential, &held, &shown, now, &phone).unwrap());
    rows.push(measure("identity code: desk verify from QR text (2 of 5 attributes)", n, |_| {
        let payload = id::from_qr_text(&text).unwrap();
        id::verify_presentation(&payload, &city_keys, now + 5, Freshness::default()).unwrap();
    }));
    rows.push(measure("identity code: phone presents (P-256 sign, software key)", 200.min(n), |_| {
        id::to_qr_text(&id::present(&credential, &held, &shown, now, &phone).unwrap());
    }));
    rows.push(measure("identity code: QR matrix (version <= 17, level M)", 200.min(n), |_| {
        id::qr_symbol(&text).unwrap();
    }));
    println!("identity code (name + over 60): {} base45 characters, QR version {}", text.len(), id::qr_symbol(&text).unwrap().version);
}

#[derive(serde::Serialize, serde::Deserialize)]
struct JwtTicket {
    product: u64,
    fare_vnd: u64,
    nbf: u64,
    exp: u64,
    /// The device key, compressed SEC1, base64url.
    cnf: String,
}

fn jwt(riders: &[Rider], riders_n: usize, n: usize, now: u64) -> (usize, Row) {
    use base64::Engine;
    use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
    let operator_p256 = P256Signer::generate_pkcs8().unwrap();
    let public = P256Signer::from_pkcs8(&operator_p256, None).unwrap().public_key().bytes;
    let encoding = EncodingKey::from_ec_der(&operator_p256);
    let decoding = DecodingKey::from_ec_der(&public);
    let tokens: Vec<String> = riders
        .iter()
        .map(|r| {
            let claims = JwtTicket {
                product: 2,
                fare_vnd: 40_000,
                nbf: now - 3600,
                exp: now + 23 * 3600,
                cnf: base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(compress_device_key(&r.device.public_key().bytes).unwrap()),
            };
            encode(&Header::new(Algorithm::ES256), &claims, &encoding).unwrap()
        })
        .collect();
    let mut validation = Validation::new(Algorithm::ES256);
    validation.validate_exp = false; // the fixed benchmark clock is not the wall clock
    validation.validate_nbf = false;
    validation.required_spec_claims.clear();
    let row = measure("same ticket as JWT (ES256): jsonwebtoken decode + verify", n, |i| {
        decode::<JwtTicket>(&tokens[i % riders_n], &decoding, &validation).unwrap();
    });
    (tokens[0].len(), row)
}
