//! Checks the test vectors published in docs/ticket-format.md, so the document cannot drift from
//! the code: the ticket statements are rebuilt (Ed25519 is deterministic) and compared byte for
//! byte, the code (its P-256 proof is randomised) is verified as published.

use crate::crypto::doc_vectors::DocVectors;
use crate::crypto::{hex, Ed25519Signer, P256Signer, Signer};
use crate::tickets::{base45, wire::*};

const DOC: DocVectors = DocVectors::new("docs/ticket-format.md", include_str!("../../../docs/ticket-format.md"));

fn operator() -> Ed25519Signer {
    let seed: [u8; 32] = std::array::from_fn(|i| i as u8);
    Ed25519Signer::from_seed(&seed, b"1".to_vec()).unwrap()
}

fn device() -> P256Signer {
    P256Signer::from_pkcs8(&DOC.hex("device-pkcs8"), None).unwrap()
}

/// The two example tickets of the document.
fn examples(device_key: Vec<u8>) -> [Ticket; 2] {
    [
        Ticket {
            product: Product::SingleJourney,
            concession: Some(Concession::Student),
            origin: Some(1),
            destination: Some(14),
            fare_vnd: 10_000,
            valid_from: 1_795_503_600,
            valid_until: 1_795_503_600 + 86_400,
            device_key: device_key.clone(),
        },
        Ticket {
            product: Product::MonthlyPass,
            concession: None,
            origin: None,
            destination: None,
            fare_vnd: 300_000,
            valid_from: 1_795_503_600,
            valid_until: 1_795_503_600 + 30 * 86_400,
            device_key,
        },
    ]
}

const SLOT_START: u64 = 1_795_503_620;

#[test]
fn published_keys_match() {
    assert_eq!(hex(&operator().public_key().bytes), DOC.value("operator-public"));
    let dev = device();
    assert_eq!(hex(&dev.public_key().bytes), DOC.value("device-public"));
    assert_eq!(hex(&compress_device_key(&dev.public_key().bytes).unwrap()), DOC.value("device-compressed"));
}

#[test]
fn published_tickets_are_rebuilt_byte_for_byte() {
    let op = operator();
    let keys = vec![(b"1".to_vec(), op.public_key())];
    let [single, monthly] = examples(DOC.hex("device-compressed"));
    for (ticket, label, id_label) in
        [(single, "single-ticket", "single-ticket-id"), (monthly, "monthly-ticket", "monthly-ticket-id")]
    {
        let bytes = ticket.sign(&op).unwrap();
        assert_eq!(hex(&bytes), DOC.value(label), "{label}");
        let verified = verify_ticket(&bytes, &keys).unwrap();
        assert_eq!(verified.ticket, ticket);
        assert_eq!(hex(&verified.id), DOC.value(id_label));
    }
}

#[test]
fn published_code_verifies_and_its_text_matches() {
    let op = operator();
    let keys = vec![(b"1".to_vec(), op.public_key())];
    let code = DOC.hex("single-code");
    let verified = verify_code(&code, &keys).unwrap();
    assert_eq!(verified.slot_start, SLOT_START);
    assert_eq!(hex(&verified.ticket.bytes), DOC.value("single-ticket"));
    assert_eq!(base45::encode(&code), DOC.value("single-code-text"));
    let parsed = parse_code(&code).unwrap();
    let proof = proof_statement(&parsed.ticket_id(), parsed.slot_start, &parsed.proof_signature);
    assert_eq!(hex(&proof), DOC.value("single-proof"));
    assert_eq!(hex(&proof[..proof.len() - 64]), DOC.value("single-proof-signed"));
}

/// Prints fresh vectors for the document: `cargo test -p congdan-core --lib print_vectors -- --ignored --nocapture`.
#[test]
#[ignore]
fn print_vectors() {
    let op = operator();
    let pkcs8 = P256Signer::generate_pkcs8().unwrap();
    let dev = P256Signer::from_pkcs8(&pkcs8, None).unwrap();
    let compressed = compress_device_key(&dev.public_key().bytes).unwrap();
    println!("device-pkcs8 {}", hex(&pkcs8));
    println!("operator-public {}", hex(&op.public_key().bytes));
    println!("device-public {}", hex(&dev.public_key().bytes));
    println!("device-compressed {}", hex(&compressed));
    let [single, monthly] = examples(compressed);
    let single = single.sign(&op).unwrap();
    println!("single-ticket {}", hex(&single));
    println!("single-ticket-id {}", hex(&ticket_id(&single)));
    let monthly = monthly.sign(&op).unwrap();
    println!("monthly-ticket {}", hex(&monthly));
    println!("monthly-ticket-id {}", hex(&ticket_id(&monthly)));
    let code = make_code(&single, SLOT_START, &dev).unwrap();
    println!("single-code {}", hex(&code));
    println!("single-code-text {}", base45::encode(&code));
    let parsed = parse_code(&code).unwrap();
    let proof = proof_statement(&parsed.ticket_id(), parsed.slot_start, &parsed.proof_signature);
    println!("single-proof-signed {}", hex(&proof[..proof.len() - 64]));
    println!("single-proof {}", hex(&proof));
    let _ = dev.key_id();
}
