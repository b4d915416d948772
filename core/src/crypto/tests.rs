use super::*;

const EXAMPLE: Schema = Schema {
    statement_type: 0xF0,
    name: "example",
    fields: &[
        FieldSpec { tag: 1, name: "serial", kind: FieldKind::U64, required: true },
        FieldSpec { tag: 2, name: "title", kind: FieldKind::Text, required: true },
        FieldSpec { tag: 3, name: "digest", kind: FieldKind::Bytes, required: false },
        FieldSpec { tag: 4, name: "offset", kind: FieldKind::I64, required: false },
        FieldSpec { tag: 5, name: "final", kind: FieldKind::Bool, required: false },
    ],
};

fn example_fields() -> Fields {
    Fields::from([
        (1, FieldValue::U64(300)),
        (2, FieldValue::Text("Tạm trú".into())),
        (3, FieldValue::Bytes(vec![0xde, 0xad, 0xbe, 0xef])),
        (4, FieldValue::I64(-5)),
        (5, FieldValue::Bool(true)),
    ])
}

fn vector_signer() -> Ed25519Signer {
    let seed: [u8; 32] = std::array::from_fn(|i| i as u8);
    Ed25519Signer::from_seed(&seed, b"op-1".to_vec()).unwrap()
}

fn trusted(signer_key: PublicKey, id: &[u8]) -> Vec<(Vec<u8>, PublicKey)> {
    vec![(id.to_vec(), signer_key)]
}


fn unhex(s: &str) -> Vec<u8> {
    from_hex(s).unwrap()
}

/// The test vector published in docs/signed-statements.md (Ed25519 is deterministic).
const VECTOR_PUBLIC_KEY: &str = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8";
const VECTOR: &str = "434401f001046f702d311901ac02020a54e1baa16d207472c3ba0304deadbeef04090501ad7a9cf9ba563d4129360dddb92075768170d8aa131d47ea0a556ae5bd4d5492c178f969d3e50e073ce411e8de97e01518c2d4580c40b4ed30b60bcda1801c04";

#[test]
fn ed25519_test_vector_is_stable_and_verifies() {
    let signer = vector_signer();
    assert_eq!(hex(&signer.public_key().bytes), VECTOR_PUBLIC_KEY);
    let bytes = sign(&EXAMPLE, &example_fields(), &signer).unwrap();
    assert_eq!(hex(&bytes), VECTOR, "the published vector changed");
    let key = PublicKey { algorithm: Algorithm::Ed25519, bytes: unhex(VECTOR_PUBLIC_KEY) };
    let v = verify(&EXAMPLE, &unhex(VECTOR), &trusted(key, b"op-1")).unwrap();
    assert_eq!(v.fields, example_fields());
    assert_eq!(v.key_id, b"op-1");
}

#[test]
fn p256_device_statements_round_trip() {
    let signer = P256Signer::from_pkcs8(&P256Signer::generate_pkcs8().unwrap(), None).unwrap();
    let keys = trusted(signer.public_key(), signer.key_id());
    let bytes = sign(&EXAMPLE, &example_fields(), &signer).unwrap();
    let v = verify(&EXAMPLE, &bytes, &keys).unwrap();
    assert_eq!(v.algorithm, Algorithm::EcdsaP256Sha256);
    assert_eq!(v.fields, example_fields());
    // Another device's key with the same id does not verify it.
    let other = P256Signer::from_pkcs8(&P256Signer::generate_pkcs8().unwrap(), None).unwrap();
    let impostor = trusted(other.public_key(), signer.key_id());
    assert_eq!(verify(&EXAMPLE, &bytes, &impostor), Err(StatementError::BadSignature));
}

#[test]
fn every_flipped_bit_and_every_truncation_is_refused() {
    let signer = vector_signer();
    let keys = trusted(signer.public_key(), b"op-1");
    let bytes = sign(&EXAMPLE, &example_fields(), &signer).unwrap();
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut t = bytes.clone();
            t[i] ^= 1 << bit;
            assert!(verify(&EXAMPLE, &t, &keys).is_err(), "byte {i} bit {bit}");
        }
    }
    for len in 0..bytes.len() {
        assert!(verify(&EXAMPLE, &bytes[..len], &keys).is_err(), "truncated to {len}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(verify(&EXAMPLE, &longer, &keys), Err(StatementError::Malformed));
}

#[test]
fn envelope_errors_are_specific() {
    let signer = vector_signer();
    let keys = trusted(signer.public_key(), b"op-1");
    let bytes = sign(&EXAMPLE, &example_fields(), &signer).unwrap();
    let other_type = Schema { statement_type: 0xF1, ..EXAMPLE };
    assert_eq!(
        verify(&other_type, &bytes, &keys),
        Err(StatementError::WrongType { expected: 0xF1, found: 0xF0 })
    );
    assert_eq!(verify(&EXAMPLE, &bytes, &trusted(signer.public_key(), b"op-2")), Err(StatementError::UnknownKey));
    let mut v2 = bytes.clone();
    v2[2] = 2;
    assert_eq!(verify(&EXAMPLE, &v2, &keys), Err(StatementError::UnsupportedVersion(2)));
    let mut alg = bytes.clone();
    alg[4] = 9;
    assert_eq!(verify(&EXAMPLE, &alg, &keys), Err(StatementError::UnknownAlgorithm(9)));
}

/// Signs arbitrary body bytes, as a key holder crafting a malicious statement could.
fn sign_raw_body(body: &[u8], signer: &dyn Signer) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&[VERSION, EXAMPLE.statement_type, signer.algorithm() as u8, signer.key_id().len() as u8]);
    out.extend_from_slice(signer.key_id());
    write_varint(&mut out, body.len() as u64);
    out.extend_from_slice(body);
    let sig = signer.sign(&out).unwrap();
    out.extend_from_slice(&sig);
    out
}

#[test]
fn signed_but_non_canonical_or_incomplete_fields_are_refused() {
    let signer = vector_signer();
    let keys = trusted(signer.public_key(), b"op-1");
    let title = [2u8, 1, b'x'];
    let cases: Vec<(Vec<u8>, StatementError)> = vec![
        // serial 300 as a padded varint (0xac 0x82 0x00).
        ([vec![1, 0xac, 0x82, 0x00], title.to_vec()].concat(), StatementError::NonCanonical("varint with a trailing zero byte")),
        // tags out of order.
        ([title.to_vec(), vec![1, 5]].concat(), StatementError::NonCanonical("tags out of order or repeated")),
        // a tag the schema does not know.
        ([vec![1, 5], title.to_vec(), vec![9, 0]].concat(), StatementError::UnknownField(9)),
        // the required title missing.
        (vec![1, 5], StatementError::MissingField("title")),
        // a bool that is neither 0 nor 1.
        ([vec![1, 5], title.to_vec(), vec![5, 2]].concat(), StatementError::NonCanonical("bool other than 0 or 1")),
        // a text that is not UTF-8.
        (vec![1, 5, 2, 1, 0xff], StatementError::Malformed),
    ];
    for (body, want) in cases {
        assert_eq!(verify(&EXAMPLE, &sign_raw_body(&body, &signer), &keys), Err(want));
    }
}

#[test]
fn signing_checks_the_schema_too() {
    let mut fields = example_fields();
    fields.remove(&2);
    assert_eq!(sign(&EXAMPLE, &fields, &vector_signer()), Err(StatementError::MissingField("title")));
    let mut fields = example_fields();
    fields.insert(1, FieldValue::Text("300".into()));
    assert!(matches!(sign(&EXAMPLE, &fields, &vector_signer()), Err(StatementError::NonCanonical(_))));
}

#[test]
fn random_and_mutated_input_never_panics_and_never_verifies() {
    use rand::{Rng, SeedableRng};
    let signer = vector_signer();
    let keys = trusted(signer.public_key(), b"op-1");
    let valid = sign(&EXAMPLE, &example_fields(), &signer).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for _ in 0..20_000 {
        let mut candidate = if rng.gen_bool(0.5) {
            let len = rng.gen_range(0..200);
            (0..len).map(|_| rng.gen()).collect::<Vec<u8>>()
        } else {
            valid.clone()
        };
        if !candidate.is_empty() {
            for _ in 0..rng.gen_range(1..4) {
                let i = rng.gen_range(0..candidate.len());
                candidate[i] = rng.gen();
            }
        }
        if candidate == valid {
            continue;
        }
        assert!(verify(&EXAMPLE, &candidate, &keys).is_err());
    }
}
