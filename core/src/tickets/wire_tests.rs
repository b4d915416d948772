use super::*;
use crate::crypto::{Ed25519Signer, P256Signer};
use crate::tickets::base45;

fn operator(key_id: &[u8]) -> Ed25519Signer {
    let seed: [u8; 32] = std::array::from_fn(|i| 0x40 + i as u8);
    Ed25519Signer::from_seed(&seed, key_id.to_vec()).unwrap()
}

fn operator_keys(op: &Ed25519Signer) -> Vec<(Vec<u8>, PublicKey)> {
    vec![(op.key_id().to_vec(), op.public_key())]
}

fn device() -> P256Signer {
    P256Signer::from_pkcs8(&P256Signer::generate_pkcs8().unwrap(), None).unwrap()
}

fn compressed(device: &P256Signer) -> Vec<u8> {
    compress_device_key(&device.public_key().bytes).unwrap()
}

fn day_pass(device: &P256Signer) -> Ticket {
    Ticket {
        product: Product::DayPass,
        concession: None,
        origin: None,
        destination: None,
        fare_vnd: 40_000,
        valid_from: 1_795_000_020,
        valid_until: 1_795_000_020 + 86_400,
        device_key: compressed(device),
    }
}

/// The largest ticket the format allows: every optional field present, every value at its cap.
fn worst_case(product: Product, device: &P256Signer) -> Ticket {
    let single = product == Product::SingleJourney;
    Ticket {
        product,
        concession: Some(Concession::ChildUnder6),
        origin: single.then_some(MAX_STATION_ID),
        destination: single.then_some(MAX_STATION_ID - 1),
        fare_vnd: MAX_FARE_VND,
        valid_from: MAX_TIME - 60,
        valid_until: MAX_TIME,
        device_key: compressed(device),
    }
}

#[test]
fn every_field_round_trips_for_every_product_and_concession() {
    let op = operator(b"1");
    let dev = device();
    let keys = operator_keys(&op);
    for product in Product::ALL {
        for concession in [None].into_iter().chain(Concession::ALL.map(Some)) {
            let single = product == Product::SingleJourney;
            let ticket = Ticket {
                product,
                concession,
                origin: single.then_some(3),
                destination: single.then_some(12),
                fare_vnd: 12_345,
                valid_from: 1_795_000_020,
                valid_until: 1_795_000_020 + product.validity_seconds(),
                device_key: compressed(&dev),
            };
            let bytes = ticket.sign(&op).unwrap();
            let verified = verify_ticket(&bytes, &keys).unwrap();
            assert_eq!(verified.ticket, ticket);
            assert_eq!(verified.key_id, b"1");
            assert_eq!(verified.id, ticket_id(&bytes));
            assert_eq!(verified.bytes, bytes);
            assert_eq!(read_ticket_unverified(&bytes).unwrap(), ticket);

            let code = make_code(&bytes, 1_795_000_040, &dev).unwrap();
            let parsed = parse_code(&code).unwrap();
            assert_eq!(parsed.ticket_bytes, bytes);
            assert_eq!(parsed.slot_start, 1_795_000_040);
            assert_eq!(parsed.ticket_id(), verified.id);
            let checked = verify_code(&code, &keys).unwrap();
            assert_eq!(checked.ticket, verified);
            assert_eq!(checked.slot_start, 1_795_000_040);
            assert_eq!(parse_code_text(&code_text(&code)).unwrap(), parsed);
        }
    }
}

#[test]
fn the_ticket_id_is_the_hash_of_the_signed_bytes_only() {
    let op = operator(b"1");
    let dev = device();
    let bytes = day_pass(&dev).sign(&op).unwrap();
    let signed = &bytes[..bytes.len() - 64];
    assert_eq!(ticket_id(&bytes)[..], ring::digest::digest(&SHA256, signed).as_ref()[..16]);
    let mut other_signature = bytes.clone();
    *other_signature.last_mut().unwrap() ^= 1;
    assert_eq!(ticket_id(&other_signature), ticket_id(&bytes));
}

#[test]
fn worst_case_code_fits_200_bytes_and_300_characters_for_every_product() {
    let op = operator(b"99");
    let dev = device();
    let keys = operator_keys(&op);
    let mut largest = 0;
    for product in Product::ALL {
        let ticket = worst_case(product, &dev);
        let bytes = ticket.sign(&op).unwrap();
        let code = make_code(&bytes, MAX_SLOT_START, &dev).unwrap();
        assert!(code.len() <= MAX_CODE_LEN, "{product:?}: {} bytes", code.len());
        assert!(code_text(&code).len() <= 300);
        assert_eq!(verify_code(&code, &keys).unwrap().ticket.ticket, ticket);
        largest = largest.max(code.len());
    }
    assert_eq!(largest, MAX_CODE_LEN, "the caps are exactly what fits");
}

#[test]
fn a_day_pass_code_is_193_bytes() {
    let op = operator(b"1");
    let dev = device();
    let code = make_code(&day_pass(&dev).sign(&op).unwrap(), 1_795_000_040, &dev).unwrap();
    // 1 version + 123 ticket (8 envelope, 51 fields, 64 signature) + 5 slot + 64 proof signature.
    assert_eq!(code.len(), 193);
}

#[test]
fn changing_any_bit_of_a_code_fails() {
    let op = operator(b"1");
    let dev = device();
    let keys = operator_keys(&op);
    let code = make_code(&worst_case(Product::SingleJourney, &dev).sign(&op).unwrap(), 1_795_000_040, &dev).unwrap();
    verify_code(&code, &keys).unwrap();
    for i in 0..code.len() {
        for bit in 0..8 {
            let mut tampered = code.clone();
            tampered[i] ^= 1 << bit;
            assert!(verify_code(&tampered, &keys).is_err(), "byte {i} bit {bit}");
        }
    }
}

#[test]
fn truncated_or_extended_codes_fail() {
    let op = operator(b"1");
    let dev = device();
    let keys = operator_keys(&op);
    let code = make_code(&day_pass(&dev).sign(&op).unwrap(), 1_795_000_040, &dev).unwrap();
    for len in 0..code.len() {
        assert!(parse_code(&code[..len]).is_err(), "truncated to {len}");
        assert!(verify_code(&code[..len], &keys).is_err());
    }
    let mut longer = code.clone();
    longer.push(0);
    assert!(parse_code(&longer).is_err());
    assert_eq!(parse_code(&[0x02]), Err(TicketError::UnsupportedCodeVersion(2)));
    assert!(parse_code(&[0u8; 201]).is_err());
}

#[test]
fn a_proof_from_another_device_or_for_another_ticket_fails() {
    let op = operator(b"1");
    let keys = operator_keys(&op);
    let (mine, thief) = (device(), device());
    let ticket = day_pass(&mine).sign(&op).unwrap();
    // A copied ticket on another phone: the proof is made with the wrong key.
    let copied = make_code(&ticket, 1_795_000_040, &thief).unwrap();
    assert_eq!(verify_code(&copied, &keys), Err(TicketError::BadProof));
    // A proof lifted from another ticket of the same phone.
    let mut other = day_pass(&mine);
    other.valid_until += 60;
    let other = other.sign(&op).unwrap();
    let donor = parse_code(&make_code(&other, 1_795_000_040, &mine).unwrap()).unwrap();
    let mut spliced = make_code(&ticket, 1_795_000_040, &mine).unwrap();
    let len = spliced.len();
    spliced[len - 64..].copy_from_slice(&donor.proof_signature);
    assert_eq!(verify_code(&spliced, &keys), Err(TicketError::BadProof));
    // A proof for another slot, relabelled: the slot is signed.
    let code = make_code(&ticket, 1_795_000_040, &mine).unwrap();
    let mut relabelled = code.clone();
    let slot_at = 1 + ticket.len();
    let mut later = Vec::new();
    write_varint(&mut later, 1_795_000_060);
    relabelled.splice(slot_at..slot_at + later.len(), later);
    assert_eq!(verify_code(&relabelled, &keys), Err(TicketError::BadProof));
}

#[test]
fn unknown_or_wrong_operator_keys_fail() {
    let op = operator(b"1");
    let dev = device();
    let ticket = day_pass(&dev).sign(&op).unwrap();
    let code = make_code(&ticket, 1_795_000_040, &dev).unwrap();
    let impostor = Ed25519Signer::from_seed(&[7; 32], b"1".to_vec()).unwrap();
    assert!(matches!(
        verify_code(&code, &operator_keys(&impostor)),
        Err(TicketError::Statement(StatementError::BadSignature))
    ));
    assert!(matches!(
        verify_code(&code, &operator_keys(&operator(b"2"))),
        Err(TicketError::Statement(StatementError::UnknownKey))
    ));
    // A ticket signed by a device key listed as trusted is still not a ticket.
    let p256_op = P256Signer::from_pkcs8(&P256Signer::generate_pkcs8().unwrap(), Some(b"1".to_vec())).unwrap();
    let fields = day_pass(&dev).to_fields();
    let forged = crypto::sign(&TICKET_SCHEMA, &fields, &p256_op).unwrap();
    let keys = vec![(b"1".to_vec(), p256_op.public_key())];
    assert!(matches!(verify_ticket(&forged, &keys), Err(TicketError::WrongKey(_))));
}

#[test]
fn signing_refuses_inconsistent_tickets_and_wrong_keys() {
    let op = operator(b"1");
    let dev = device();
    let base = day_pass(&dev);
    let cases: Vec<(Ticket, TicketError)> = vec![
        (Ticket { origin: Some(1), destination: Some(2), ..base.clone() }, TicketError::StationsNotAllowed),
        (Ticket { product: Product::SingleJourney, ..base.clone() }, TicketError::StationsRequired),
        (
            Ticket { product: Product::SingleJourney, origin: Some(4), destination: Some(4), ..base.clone() },
            TicketError::SameStation,
        ),
        (
            Ticket { product: Product::SingleJourney, origin: Some(0), destination: Some(4), ..base.clone() },
            TicketError::UnknownStation(0),
        ),
        (
            Ticket { product: Product::SingleJourney, origin: Some(1), destination: Some(128), ..base.clone() },
            TicketError::UnknownStation(128),
        ),
        (Ticket { fare_vnd: MAX_FARE_VND + 1, ..base.clone() }, TicketError::InvalidField("fare_vnd")),
        (Ticket { valid_from: base.valid_from + 1, ..base.clone() }, TicketError::InvalidField("valid_from")),
        (Ticket { valid_until: base.valid_from, ..base.clone() }, TicketError::InvalidField("valid_until")),
        (Ticket { valid_until: MAX_TIME + 60, ..base.clone() }, TicketError::InvalidField("valid_until")),
        (Ticket { device_key: vec![2; 32], ..base.clone() }, TicketError::BadDeviceKey),
        (Ticket { device_key: dev.public_key().bytes, ..base.clone() }, TicketError::BadDeviceKey),
    ];
    for (ticket, expected) in cases {
        assert_eq!(ticket.sign(&op), Err(expected));
    }
    assert!(matches!(base.sign(&operator(b"abc")), Err(TicketError::WrongKey(_))));
    assert!(matches!(base.sign(&dev), Err(TicketError::WrongKey(_))));
    let ticket = base.sign(&op).unwrap();
    assert!(matches!(make_code(&ticket, 1_795_000_040, &op), Err(TicketError::WrongKey(_))));
    assert_eq!(make_code(&ticket, MAX_SLOT_START + 1, &dev), Err(TicketError::InvalidField("slot_start")));
    assert_eq!(make_code(&ticket[..ticket.len() - 1], 1_795_000_040, &dev), Err(TicketError::MalformedCode));
}

#[test]
fn a_validly_signed_ticket_with_meaningless_fields_is_refused() {
    let op = operator(b"1");
    let keys = operator_keys(&op);
    let dev = device();
    let good = day_pass(&dev).to_fields();
    let mut cases = Vec::new();
    let mut f = good.clone();
    f.insert(tag::PRODUCT, FieldValue::U64(9));
    cases.push((f, TicketError::UnknownProduct(9)));
    let mut f = good.clone();
    f.insert(tag::CONCESSION, FieldValue::U64(0));
    cases.push((f, TicketError::UnknownConcession(0)));
    let mut f = good.clone();
    f.insert(tag::VALID_UNTIL_MINUTE, FieldValue::U64(1 << 28));
    cases.push((f, TicketError::InvalidField("valid_until")));
    let mut f = good.clone();
    f.insert(tag::DEVICE_KEY, FieldValue::Bytes(vec![4; 33]));
    cases.push((f, TicketError::BadDeviceKey));
    for (fields, expected) in cases {
        let bytes = crypto::sign(&TICKET_SCHEMA, &fields, &op).unwrap();
        assert_eq!(verify_ticket(&bytes, &keys), Err(expected.clone()));
        assert_eq!(read_ticket_unverified(&bytes), Err(expected));
    }
}

#[test]
fn a_device_key_off_the_curve_is_refused_when_the_code_is_checked() {
    let op = operator(b"1");
    let keys = operator_keys(&op);
    let dev = device();
    // x = 5 is not the x-coordinate of any P-256 point (x³ − 3x + b is not a square mod p).
    let off_curve = (0u8..=255)
        .map(|last| {
            let mut k = vec![2u8; 33];
            k[1..].fill(0);
            k[32] = last;
            k
        })
        .find(|k| decompress_device_key(k).is_err())
        .expect("about half of all x values are off the curve");
    let ticket = Ticket { device_key: off_curve, ..day_pass(&dev) }.sign(&op).unwrap();
    let code = make_code(&ticket, 1_795_000_040, &dev).unwrap();
    assert_eq!(verify_code(&code, &keys), Err(TicketError::BadDeviceKey));
}

#[test]
fn device_keys_compress_and_decompress() {
    let dev = device();
    let full = dev.public_key();
    let short = compress_device_key(&full.bytes).unwrap();
    assert_eq!(short.len(), 33);
    assert_eq!(short[1..], full.bytes[1..33]);
    assert_eq!(decompress_device_key(&short).unwrap(), full);
    assert_eq!(compress_device_key(&short), Err(TicketError::BadDeviceKey));
    assert_eq!(decompress_device_key(&full.bytes), Err(TicketError::BadDeviceKey));
}

#[test]
fn the_rebuilt_proof_is_a_signed_statement_of_type_0x21() {
    let dev = device();
    let id = [0xab; 16];
    let signature = ProofSigner(&dev).sign(&proof_signed_bytes(&id, 1_795_000_040)).unwrap();
    let statement = proof_statement(&id, 1_795_000_040, &signature);
    let keys = vec![(PROOF_KEY_ID.to_vec(), dev.public_key())];
    let verified = crypto::verify(&PROOF_SCHEMA, &statement, &keys).unwrap();
    assert_eq!(verified.statement_type, PROOF_TYPE);
    assert_eq!(verified.fields[&tag::PROOF_TICKET_ID], FieldValue::Bytes(id.to_vec()));
    assert_eq!(verified.fields[&tag::PROOF_SLOT_START], FieldValue::U64(1_795_000_040));
}

#[test]
fn qr_text_is_base45_and_bad_text_is_refused() {
    let op = operator(b"1");
    let dev = device();
    let code = make_code(&day_pass(&dev).sign(&op).unwrap(), 1_795_000_040, &dev).unwrap();
    let text = code_text(&code);
    assert!(text.bytes().all(|c| base45::ALPHABET.contains(&c)));
    assert!(matches!(parse_code_text(&text.to_lowercase()), Err(TicketError::BadText(_))));
    assert_eq!(parse_code_text(&"0".repeat(303)), Err(TicketError::MalformedCode));
}
