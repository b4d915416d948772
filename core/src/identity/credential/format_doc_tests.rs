//! Checks the test vectors published in docs/identity-credential.md, so the document cannot drift
//! from the code: the credential (Ed25519 is deterministic) is rebuilt and compared byte for
//! byte; the presentation (its P-256 signature is randomised) is verified as published.

use super::*;
use crate::crypto::doc_vectors::DocVectors;
use crate::crypto::{hex, Ed25519Signer, P256Signer};

const DOC: DocVectors = DocVectors::new("docs/identity-credential.md", include_str!("../../../../docs/identity-credential.md"));

/// The example city key: the published test seed `00 01 … 1f`, its default key id.
fn city() -> Ed25519Signer {
    let seed: [u8; 32] = std::array::from_fn(|i| i as u8);
    let id = Ed25519Signer::from_seed(&seed, vec![0]).unwrap().public_key().default_key_id();
    Ed25519Signer::from_seed(&seed, id).unwrap()
}

/// The published test device key of docs/ticket-format.md.
fn device() -> P256Signer {
    const TICKET_DOC: DocVectors = DocVectors::new("docs/ticket-format.md", include_str!("../../../../docs/ticket-format.md"));
    P256Signer::from_pkcs8(&TICKET_DOC.hex("device-pkcs8"), Some(PRESENTATION_KEY_ID.to_vec())).unwrap()
}

const ISSUED_AT: u64 = 1_795_503_600;
const PRESENTED_AT: u64 = 1_795_503_630;

fn example_disclosures() -> Vec<Disclosure> {
    let salt = |b: u8| [b; SALT_LEN];
    vec![
        Disclosure { attribute: Attribute::FullName, salt: salt(0x11), value: "Nguyễn Thị Lan".into() },
        Disclosure { attribute: Attribute::NationalId, salt: salt(0x22), value: "079165012345".into() },
        Disclosure { attribute: Attribute::BirthDate, salt: salt(0x33), value: "1965-03-02".into() },
        Disclosure { attribute: Attribute::AgeOver18, salt: salt(0x44), value: "true".into() },
        Disclosure { attribute: Attribute::AgeOver60, salt: salt(0x55), value: "true".into() },
    ]
}

fn example_credential() -> Vec<u8> {
    let device_key = crate::tickets::wire::compress_device_key(&device().public_key().bytes).unwrap();
    let id: [u8; CREDENTIAL_ID_LEN] = std::array::from_fn(|i| 0xc0 + i as u8);
    issue(id, &device_key, ISSUED_AT, ISSUED_AT + 30 * 86_400, &mut example_disclosures(), &city()).unwrap()
}

fn keys() -> Vec<(Vec<u8>, PublicKey)> {
    let public = city().public_key();
    vec![(public.default_key_id(), public)]
}

#[test]
fn published_keys_and_digests_match() {
    assert_eq!(hex(&city().public_key().bytes), DOC.value("city-public"));
    assert_eq!(hex(&city().public_key().default_key_id()), DOC.value("city-key-id"));
    let full_name = &example_disclosures()[0];
    assert_eq!(hex(&full_name.digest()), DOC.value("full-name-digest"));
}

#[test]
fn published_credential_is_rebuilt_byte_for_byte() {
    assert_eq!(hex(&example_credential()), DOC.value("credential"));
    let c = verify_credential(&DOC.hex("credential"), &keys()).unwrap();
    assert_eq!(c.digests.len(), 5);
    assert_eq!(c.expires_at, ISSUED_AT + 30 * 86_400);
}

#[test]
fn published_presentation_verifies_and_shows_two_attributes() {
    let payload = DOC.hex("presentation");
    let v = verify_presentation(&payload, &keys(), PRESENTED_AT + 10, Freshness::default()).unwrap();
    let shown: Vec<(Attribute, &str)> = v.shown.iter().map(|s| (s.attribute, s.value.as_str())).collect();
    assert_eq!(shown, vec![(Attribute::FullName, "Nguyễn Thị Lan"), (Attribute::AgeOver60, "true")]);
    assert_eq!(v.presented_at, PRESENTED_AT);
    assert_eq!(to_qr_text(&payload), DOC.value("presentation-text"));
    assert_eq!(qr_symbol(&DOC.value("presentation-text")).unwrap().version.to_string(), DOC.value("presentation-qr-version"));
}

/// Prints the vectors for the document: `cargo test -p congdan-core --lib print_credential_vectors -- --ignored --nocapture`.
#[test]
#[ignore]
fn print_credential_vectors() {
    let credential = example_credential();
    let payload = present(&credential, &example_disclosures(), &[Attribute::FullName, Attribute::AgeOver60], PRESENTED_AT, &device()).unwrap();
    println!("city-public {}", hex(&city().public_key().bytes));
    println!("city-key-id {}", hex(&city().public_key().default_key_id()));
    println!("full-name-digest {}", hex(&example_disclosures()[0].digest()));
    println!("credential {}", hex(&credential));
    println!("credential-len {}", credential.len());
    println!("presentation {}", hex(&payload));
    println!("presentation-len {}", payload.len());
    println!("presentation-text {}", to_qr_text(&payload));
    println!("presentation-qr-version {}", qr_symbol(&to_qr_text(&payload)).unwrap().version);
}
