use std::collections::BTreeMap;

use p256::elliptic_curve::sec1::ToEncodedPoint;

use super::api::Refusal;
use super::wire::*;
use crate::crypto::{from_hex, hex, Algorithm, Ed25519Signer, P256Signer, PublicKey, Signer, StatementError};
use crate::drafts::validation::FieldValue as FormValue;

/// A P-256 key from a fixed scalar, wrapped in the PKCS#8 form ring reads (test vectors).
fn p256_signer_from_scalar(scalar: [u8; 32]) -> P256Signer {
    let secret = p256::SecretKey::from_slice(&scalar).unwrap();
    let point = secret.public_key().to_encoded_point(false);
    let mut pkcs8 = hex_bytes("308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b0201010420");
    pkcs8.extend_from_slice(&scalar);
    pkcs8.extend_from_slice(&hex_bytes("a144034200"));
    pkcs8.extend_from_slice(point.as_bytes());
    P256Signer::from_pkcs8(&pkcs8, None).unwrap()
}

fn hex_bytes(s: &str) -> Vec<u8> {
    from_hex(s).unwrap()
}

/// The documented device key: scalar `01 02 … 20`.
fn device_signer() -> P256Signer {
    p256_signer_from_scalar(std::array::from_fn(|i| i as u8 + 1))
}

fn other_device_signer() -> P256Signer {
    p256_signer_from_scalar(std::array::from_fn(|i| 0x40 + i as u8))
}

/// The documented server key: Ed25519 seed `00 01 … 1f`, key id its default key id.
fn server_signer() -> Ed25519Signer {
    let seed: [u8; 32] = std::array::from_fn(|i| i as u8);
    let public = Ed25519Signer::from_seed(&seed, vec![1]).unwrap().public_key();
    Ed25519Signer::from_seed(&seed, public.default_key_id()).unwrap()
}

fn keys_of(public: PublicKey) -> Vec<(Vec<u8>, PublicKey)> {
    vec![(public.default_key_id(), public)]
}

const SUMMARY: &str = "Ủy quyền cho ông Trần Văn Minh nhận hộ kết quả hồ sơ HCM-2026-000123.";
const DOCUMENT: &[u8] = b"%PDF-1.4 giay uy quyen";

fn sample_decision() -> Decision {
    Decision {
        request_id: "sr-0001".into(),
        agency_code: "HCM-Q1".into(),
        document_sha256: sha256(DOCUMENT),
        summary_sha256: summary_hash(SUMMARY),
        intent: Intent::Approve,
        purpose: "Ủy quyền nhận kết quả".into(),
        decline_reason: None,
        account_id: "acc-lan".into(),
        device_key_id: device_signer().key_id().to_vec(),
        signed_at: 1_790_000_000,
        expires_at: 1_790_600_000,
    }
}

fn sample_attestation() -> KeyAttestation {
    let device = device_signer().public_key();
    KeyAttestation {
        account_id: "acc-lan".into(),
        device_key_id: device.default_key_id(),
        device_public_key: device.bytes,
        registered_at: 1_780_000_000,
        revoked_at: None,
        issued_at: 1_790_000_100,
    }
}

fn sample_values() -> BTreeMap<String, FormValue> {
    BTreeMap::from([
        ("full_name".to_string(), FormValue::Text("Nguyễn Thị Lan".into())),
        ("household_size".to_string(), FormValue::Number(4.0)),
        ("move_in_date".to_string(), FormValue::Date("2026-11-01".into())),
        ("reason".to_string(), FormValue::Choice(vec!["work".into()])),
        ("where".to_string(), FormValue::Location { lat: 10.7769, lon: 106.7009 }),
    ])
}

fn sample_attachments() -> BTreeMap<String, Vec<String>> {
    BTreeMap::from([(
        "id_card".to_string(),
        vec![hex(&sha256(b"back")), hex(&sha256(b"front"))],
    )])
}

fn sample_dossier() -> DossierSignature {
    DossierSignature {
        account_id: "acc-lan".into(),
        procedure_code: "tam-tru".into(),
        draft_id: "draft-42".into(),
        content_sha256: dossier_content_hash(&sample_values(), &sample_attachments()),
        signed_at: 1_790_000_200,
    }
}

#[test]
fn decision_round_trip() {
    let signer = device_signer();
    let decision = sample_decision();
    let statement = decision.sign(&signer).unwrap();
    let verified = verify_decision(&statement, &keys_of(signer.public_key())).unwrap();
    assert_eq!(verified.decision, decision);
    assert_eq!(verified.bytes, statement);
    assert_eq!(&statement[..statement.len() - 64], decision.signed_bytes().unwrap().as_slice());
    assert_eq!(verified.signed_bytes_sha256, sha256(&decision.signed_bytes().unwrap()));
    assert_eq!(statement[3], DECISION_TYPE);
    assert_eq!(statement[4], Algorithm::EcdsaP256Sha256 as u8);
}

#[test]
fn decline_with_and_without_reason_round_trips() {
    let signer = device_signer();
    let keys = keys_of(signer.public_key());
    for reason in [None, Some("Tôi không ủy quyền việc này".to_string())] {
        let decision = Decision { intent: Intent::Decline, decline_reason: reason, ..sample_decision() };
        let statement = decision.sign(&signer).unwrap();
        assert_eq!(verify_decision(&statement, &keys).unwrap().decision, decision);
    }
    let approve_with_reason = Decision { decline_reason: Some("no".into()), ..sample_decision() };
    assert_eq!(approve_with_reason.sign(&signer), Err(SigningError::InvalidField("decline_reason")));
}

#[test]
fn every_decision_field_is_signed_and_read_back() {
    let signer = device_signer();
    let keys = keys_of(signer.public_key());
    let base = sample_decision();
    let base_bytes = base.signed_bytes().unwrap();
    let variants: Vec<Decision> = vec![
        Decision { request_id: "sr-0002".into(), ..base.clone() },
        Decision { agency_code: "HCM-Q3".into(), ..base.clone() },
        Decision { document_sha256: sha256(b"another document"), ..base.clone() },
        Decision { summary_sha256: summary_hash("another summary"), ..base.clone() },
        Decision { intent: Intent::Decline, ..base.clone() },
        Decision { purpose: "Khác".into(), ..base.clone() },
        Decision { intent: Intent::Decline, decline_reason: Some("x".into()), ..base.clone() },
        Decision { account_id: "acc-minh".into(), ..base.clone() },
        Decision { signed_at: base.signed_at + 1, ..base.clone() },
        Decision { expires_at: base.expires_at + 1, ..base.clone() },
    ];
    let mut seen = std::collections::HashSet::from([base_bytes]);
    for variant in variants {
        let bytes = variant.signed_bytes().unwrap();
        assert!(seen.insert(bytes), "{variant:?} encodes like another decision");
        let statement = variant.sign(&signer).unwrap();
        assert_eq!(verify_decision(&statement, &keys).unwrap().decision, variant);
    }
}

#[test]
fn tampered_decision_fails() {
    let signer = device_signer();
    let keys = keys_of(signer.public_key());
    let statement = sample_decision().sign(&signer).unwrap();
    for i in 0..statement.len() {
        for bit in 0..8 {
            let mut tampered = statement.clone();
            tampered[i] ^= 1 << bit;
            assert!(verify_decision(&tampered, &keys).is_err(), "byte {i} bit {bit}");
        }
    }
    for len in 0..statement.len() {
        assert!(verify_decision(&statement[..len], &keys).is_err());
    }
    let mut longer = statement.clone();
    longer.push(0);
    assert!(verify_decision(&longer, &keys).is_err());
}

#[test]
fn decision_with_the_wrong_key_fails() {
    let signer = device_signer();
    let other = other_device_signer();
    let statement = sample_decision().sign(&signer).unwrap();
    // Another key under the same id: the signature does not verify.
    let impostor = vec![(signer.key_id().to_vec(), other.public_key())];
    assert_eq!(
        verify_decision(&statement, &impostor),
        Err(SigningError::Statement(StatementError::BadSignature))
    );
    // The resident's other keys only: the key is unknown.
    assert_eq!(
        verify_decision(&statement, &keys_of(other.public_key())),
        Err(SigningError::Statement(StatementError::UnknownKey))
    );
    // A decision claiming one device key signed by another.
    assert_eq!(sample_decision().sign(&other), Err(SigningError::KeyIdMismatch));
    // The server's Ed25519 key does not sign decisions.
    assert!(matches!(sample_decision().sign(&server_signer()), Err(SigningError::WrongKey(_))));
}

#[test]
fn decision_signed_elsewhere_verifies() {
    // What a phone keystore does: sign the signed bytes behind a user-presence prompt.
    let signer = device_signer();
    let decision = sample_decision();
    let signed_bytes = decision.signed_bytes().unwrap();
    let signature = signer.sign(&signed_bytes).unwrap();
    let statement = attach_signature(&signed_bytes, &signature);
    assert_eq!(verify_decision(&statement, &keys_of(signer.public_key())).unwrap().decision, decision);
    assert_eq!(statement_key_id(&statement), Some(signer.key_id()));
    assert_eq!(decode_statement(&encode_statement(&statement)).unwrap(), statement);
    assert_eq!(decode_statement("not base64!"), Err(SigningError::BadEncoding));
}

#[test]
fn decision_fields_out_of_range_are_refused() {
    let signer = device_signer();
    for bad in [
        Decision { request_id: String::new(), ..sample_decision() },
        Decision { agency_code: "x".repeat(MAX_ID_LEN + 1), ..sample_decision() },
        Decision { account_id: "a\nb".into(), ..sample_decision() },
        Decision { purpose: "p".repeat(MAX_TEXT_LEN + 1), ..sample_decision() },
    ] {
        assert!(matches!(bad.sign(&signer), Err(SigningError::InvalidField(_))), "{bad:?}");
    }
}

#[test]
fn attestation_round_trip_and_validity() {
    let server = server_signer();
    let keys = keys_of(server.public_key());
    let attestation = sample_attestation();
    let statement = attestation.sign(&server).unwrap();
    let verified = verify_key_attestation(&statement, &keys).unwrap();
    assert_eq!(verified.attestation, attestation);
    assert_eq!(verified.server_key_id, server.key_id());
    assert!(attestation.valid_at(attestation.registered_at));
    assert!(!attestation.valid_at(attestation.registered_at - 1));

    let revoked = KeyAttestation { revoked_at: Some(1_785_000_000), ..attestation.clone() };
    let statement = revoked.sign(&server).unwrap();
    assert_eq!(verify_key_attestation(&statement, &keys).unwrap().attestation, revoked);
    assert!(revoked.valid_at(1_784_999_999));
    assert!(!revoked.valid_at(1_785_000_000));
    for i in 0..statement.len() {
        let mut tampered = statement.clone();
        tampered[i] ^= 0x01;
        assert!(verify_key_attestation(&tampered, &keys).is_err(), "byte {i}");
    }
}

#[test]
fn attestation_refuses_wrong_keys_and_inconsistent_fields() {
    let server = server_signer();
    let statement = sample_attestation().sign(&server).unwrap();
    let other = Ed25519Signer::from_seed(&[9; 32], server.key_id().to_vec()).unwrap();
    assert!(verify_key_attestation(&statement, &vec![(server.key_id().to_vec(), other.public_key())]).is_err());
    assert!(matches!(sample_attestation().sign(&device_signer()), Err(SigningError::WrongKey(_))));
    let wrong_id = KeyAttestation { device_key_id: vec![1, 2, 3], ..sample_attestation() };
    assert_eq!(wrong_id.sign(&server), Err(SigningError::InvalidField("device_key_id")));
    let compressed = KeyAttestation { device_public_key: vec![2; 33], ..sample_attestation() };
    assert_eq!(compressed.sign(&server), Err(SigningError::InvalidField("device_public_key")));
    let revoked_before = KeyAttestation { revoked_at: Some(1), ..sample_attestation() };
    assert_eq!(revoked_before.sign(&server), Err(SigningError::InvalidField("revoked_at")));
    // A decision is not an attestation.
    let decision = sample_decision().sign(&device_signer()).unwrap();
    assert!(verify_key_attestation(&decision, &keys_of(server.public_key())).is_err());
}

#[test]
fn dossier_round_trip_and_tampering() {
    let signer = device_signer();
    let keys = keys_of(signer.public_key());
    let dossier = sample_dossier();
    let statement = dossier.sign(&signer).unwrap();
    let verified = verify_dossier_signature(&statement, &keys).unwrap();
    assert_eq!(verified.dossier, dossier);
    assert_eq!(verified.device_key_id, signer.key_id());
    assert_eq!(&statement[..statement.len() - 64], dossier.signed_bytes(signer.key_id()).unwrap().as_slice());
    for i in 0..statement.len() {
        let mut tampered = statement.clone();
        tampered[i] ^= 0x80;
        assert!(verify_dossier_signature(&tampered, &keys).is_err(), "byte {i}");
    }
    assert!(verify_dossier_signature(&statement, &keys_of(other_device_signer().public_key())).is_err());
    // A decision is not a dossier signature, even from the same key.
    let decision = sample_decision().sign(&signer).unwrap();
    assert!(matches!(
        verify_dossier_signature(&decision, &keys),
        Err(SigningError::Statement(StatementError::WrongType { .. }))
    ));
    for variant in [
        DossierSignature { account_id: "acc-minh".into(), ..dossier.clone() },
        DossierSignature { procedure_code: "khai-sinh".into(), ..dossier.clone() },
        DossierSignature { draft_id: "draft-43".into(), ..dossier.clone() },
        DossierSignature { content_sha256: [0; 32], ..dossier.clone() },
        DossierSignature { signed_at: 1, ..dossier.clone() },
    ] {
        assert_ne!(variant.signed_bytes(signer.key_id()).unwrap(), dossier.signed_bytes(signer.key_id()).unwrap());
        let statement = variant.sign(&signer).unwrap();
        assert_eq!(verify_dossier_signature(&statement, &keys).unwrap().dossier, variant);
    }
}

/// The canonical content is fixed by docs/signatures.md: these bytes and this hash never change.
const CONTENT_JSON: &str = r#"{"attachments":{"id_card":["2d8d693177ac44895fc02c009ec3f6af32e51eb00783c17000d7051d1662b93a","3c482346f375027677fa8a0d6830a32714d4f13f9e94c2d9e215e0ac205ad4e5"]},"values":{"full_name":{"type":"text","value":"Nguyễn Thị Lan"},"household_size":{"type":"number","value":4.0},"move_in_date":{"type":"date","value":"2026-11-01"},"reason":{"type":"choice","value":["work"]},"where":{"type":"location","value":{"lat":10.7769,"lon":106.7009}}}}"#;

#[test]
fn dossier_content_hash_is_canonical_and_stable() {
    let values = sample_values();
    let attachments = sample_attachments();
    assert_eq!(String::from_utf8(dossier_content(&values, &attachments)).unwrap(), CONTENT_JSON);
    assert!(DOC.contains(CONTENT_JSON), "docs/signatures.md shows the canonical content");
    assert_eq!(dossier_content_hash(&values, &attachments), sha256(CONTENT_JSON.as_bytes()));
    assert_eq!(hex(&dossier_content_hash(&values, &attachments)), DOC_CONTENT_HASH);

    // Attachment order and hex case do not matter; any value does.
    let reordered = BTreeMap::from([(
        "id_card".to_string(),
        attachments["id_card"].iter().rev().map(|h| h.to_uppercase()).collect::<Vec<_>>(),
    )]);
    assert_eq!(dossier_content_hash(&values, &reordered), dossier_content_hash(&values, &attachments));
    let mut changed = values.clone();
    changed.insert("household_size".into(), FormValue::Number(5.0));
    assert_ne!(dossier_content_hash(&changed, &attachments), dossier_content_hash(&values, &attachments));
    assert_ne!(dossier_content_hash(&values, &BTreeMap::new()), dossier_content_hash(&values, &attachments));
    // Through JSON and back (the server reads the case.submit body): the same hash.
    let round: BTreeMap<String, FormValue> = serde_json::from_str(&serde_json::to_string(&values).unwrap()).unwrap();
    assert_eq!(dossier_content_hash(&round, &attachments), dossier_content_hash(&values, &attachments));
}

#[test]
fn summary_hash_is_sha256_of_the_exact_text() {
    assert_eq!(
        hex(&summary_hash("")),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    // No normalisation: the precomposed and decomposed forms of "ủ" differ.
    assert_ne!(summary_hash("\u{1ee7}"), summary_hash("u\u{31b}\u{309}"));
}

#[test]
fn pem_of_device_and_server_keys() {
    let device = device_signer().public_key();
    let pem = public_key_pem(&device).unwrap();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n") && pem.ends_with("-----END PUBLIC KEY-----\n"));
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(pem.lines().all(|l| l.len() <= 64));
    use base64::Engine;
    let der = base64::engine::general_purpose::STANDARD.decode(body).unwrap();
    assert_eq!(&der[..26], &P256_SPKI_PREFIX);
    assert_eq!(&der[26..], device.bytes.as_slice());
    assert_eq!(pem, DOC_DEVICE_PEM);
    let server = server_signer().public_key();
    assert!(public_key_pem(&server).unwrap().contains("MCowBQYDK2VwAyEA"));
    let bad = PublicKey { algorithm: Algorithm::EcdsaP256Sha256, bytes: vec![2; 33] };
    assert!(public_key_pem(&bad).is_err());
}

#[test]
fn refusal_codes_round_trip() {
    for refusal in Refusal::ALL {
        assert_eq!(Refusal::from_code(refusal.code()), Some(refusal));
        assert!(refusal.message().contains(" / "), "{refusal:?} needs Vietnamese and English");
    }
    assert_eq!(Refusal::from_code("teapot"), None);
}

// ---- docs/signatures.md's test vectors ----

const DOC: &str = include_str!("../../../docs/signatures.md");
const DOC_CONTENT_HASH: &str = "481adcc626aa4858eb0615c28a6b2a27ece77f615cffb9b48644d55cdf835885";
const DOC_DEVICE_PEM: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEUVw9brnjlrkE0/7Kf1T9zQzB6Ze/
N13KUVrQpsO0A19FNr46UPMY+/mlR1kCoiFQK+8NV+CMU7LMClbxfZ+TVA==
-----END PUBLIC KEY-----
";

/// The hex after `label` at the start of a line in the document's vector blocks.
fn doc_vector(label: &str) -> Vec<u8> {
    let line = DOC
        .lines()
        .find(|l| l.split_whitespace().next() == Some(label))
        .unwrap_or_else(|| panic!("docs/signatures.md has no vector {label}"));
    hex_bytes(line.split_whitespace().nth(1).unwrap())
}

#[test]
fn documented_vectors_verify() {
    let device = device_signer();
    let server = server_signer();
    assert_eq!(doc_vector("device_public_key"), device.public_key().bytes);
    assert_eq!(doc_vector("device_key_id"), device.key_id());
    assert_eq!(doc_vector("server_public_key"), server.public_key().bytes);
    assert_eq!(doc_vector("server_key_id"), server.key_id());

    // P-256 signatures are randomised: the signed bytes are fixed, the signature must verify.
    let decision = doc_vector("decision");
    let verified = verify_decision(&decision, &keys_of(device.public_key())).unwrap();
    assert_eq!(verified.decision, sample_decision());
    assert_eq!(&decision[..decision.len() - 64], sample_decision().signed_bytes().unwrap().as_slice());
    assert_eq!(doc_vector("summary_sha256"), summary_hash(SUMMARY));
    assert_eq!(doc_vector("document_sha256"), sha256(DOCUMENT));

    // Ed25519 is deterministic: the attestation is exactly this.
    assert_eq!(doc_vector("attestation"), sample_attestation().sign(&server).unwrap());

    let dossier = doc_vector("dossier");
    assert_eq!(verify_dossier_signature(&dossier, &keys_of(device.public_key())).unwrap().dossier, sample_dossier());
    assert_eq!(doc_vector("content_sha256"), hex_bytes(DOC_CONTENT_HASH));
    assert!(DOC.contains(DOC_DEVICE_PEM.trim_end()));
}

/// Prints the vectors for docs/signatures.md: `cargo test -p congdan-core --lib print_signing_vectors -- --ignored --nocapture`.
#[test]
#[ignore]
fn print_signing_vectors() {
    let device = device_signer();
    let server = server_signer();
    println!("device_public_key {}", hex(&device.public_key().bytes));
    println!("device_key_id {}", hex(device.key_id()));
    println!("server_public_key {}", hex(&server.public_key().bytes));
    println!("server_key_id {}", hex(server.key_id()));
    println!("document_sha256 {}", hex(&sha256(DOCUMENT)));
    println!("summary_sha256 {}", hex(&summary_hash(SUMMARY)));
    println!("decision {}", hex(&sample_decision().sign(&device).unwrap()));
    println!("attestation {}", hex(&sample_attestation().sign(&server).unwrap()));
    println!("content_sha256 {}", hex(&dossier_content_hash(&sample_values(), &sample_attachments())));
    println!("content {}", String::from_utf8(dossier_content(&sample_values(), &sample_attachments())).unwrap());
    println!("dossier {}", hex(&sample_dossier().sign(&device).unwrap()));
    println!("{}", public_key_pem(&device.public_key()).unwrap());
}
