//! The operator's revocation list as the gate holds it: a signed statement of type `0x22`
//! (Ed25519, an operator key), fields
//!
//! | tag | field | kind |
//! |---|---|---|
//! | 1 | `sequence`: increases with every list the operator publishes | u64 |
//! | 2 | `issued_at`: unix seconds | u64 |
//! | 3 | `ids`: the revoked ticket ids, 16 bytes each, concatenated, sorted ascending | bytes |
//!
//! The gate verifies it like every statement, refuses a list older than the one it holds
//! (a replayed old list would un-revoke tickets), and keeps the ids sorted in one flat vector:
//! a lookup among 100,000 ids is 17 comparisons of 16 bytes, with no hashing and no per-id
//! allocation.

use crate::crypto::{self, FieldKind, FieldSpec, FieldValue, Fields, KeySet, Schema, Signer, StatementError};

pub use crate::tickets::wire::REVOCATION_LIST_TYPE;

pub const REVOCATION_LIST_SCHEMA: Schema = Schema {
    statement_type: REVOCATION_LIST_TYPE,
    name: "revocation list",
    fields: &[
        FieldSpec { tag: 1, name: "sequence", kind: FieldKind::U64, required: true },
        FieldSpec { tag: 2, name: "issued_at", kind: FieldKind::U64, required: true },
        FieldSpec { tag: 3, name: "ids", kind: FieldKind::Bytes, required: true },
    ],
};

/// Why a revocation list is refused; the gate keeps the list it had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevocationError {
    #[error("revocation list signature: {0}")]
    Statement(#[from] StatementError),
    #[error("revocation list ids are not a whole number of 16-byte ids")]
    BadIds,
    #[error("revocation list {offered} is older than the one held ({held})")]
    Older { held: u64, offered: u64 },
}

/// The revoked ticket ids a gate holds, with the list's sequence and issue time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevocationList {
    pub sequence: u64,
    pub issued_at: u64,
    ids: Vec<[u8; 16]>,
}

impl RevocationList {
    /// A list made locally (tests, a gate given ids by hand); sorts and deduplicates.
    pub fn from_ids(sequence: u64, issued_at: u64, mut ids: Vec<[u8; 16]>) -> RevocationList {
        ids.sort_unstable();
        ids.dedup();
        RevocationList { sequence, issued_at, ids }
    }

    /// Verifies a signed list (operator keys) and reads its ids.
    pub fn verify(statement: &[u8], keys: &dyn KeySet) -> Result<RevocationList, RevocationError> {
        let verified = crypto::verify(&REVOCATION_LIST_SCHEMA, statement, keys)?;
        let u64_field = |tag| verified.fields.get(&tag).and_then(FieldValue::as_u64).ok_or(StatementError::MissingField("u64"));
        let sequence = u64_field(1)?;
        let issued_at = u64_field(2)?;
        let Some(FieldValue::Bytes(raw)) = verified.fields.get(&3) else {
            return Err(StatementError::MissingField("ids").into());
        };
        if raw.len() % 16 != 0 {
            return Err(RevocationError::BadIds);
        }
        let ids = raw.chunks_exact(16).map(|c| c.try_into().expect("16-byte chunk")).collect();
        Ok(RevocationList::from_ids(sequence, issued_at, ids))
    }

    /// Signs a list (the server's side, and tests).
    pub fn sign(&self, signer: &dyn Signer) -> Result<Vec<u8>, StatementError> {
        let mut fields = Fields::new();
        fields.insert(1, FieldValue::U64(self.sequence));
        fields.insert(2, FieldValue::U64(self.issued_at));
        fields.insert(3, FieldValue::Bytes(self.ids.concat()));
        crypto::sign(&REVOCATION_LIST_SCHEMA, &fields, signer)
    }

    pub fn contains(&self, ticket_id: &[u8; 16]) -> bool {
        self.ids.binary_search(ticket_id).is_ok()
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Whether `offered` may replace this list: only a newer (or the same) sequence.
    pub fn check_newer(&self, offered: &RevocationList) -> Result<(), RevocationError> {
        if offered.sequence < self.sequence {
            return Err(RevocationError::Older { held: self.sequence, offered: offered.sequence });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{Ed25519Signer, PublicKey};

    fn operator() -> (Ed25519Signer, Vec<(Vec<u8>, PublicKey)>) {
        let signer = Ed25519Signer::from_seed(&[9; 32], b"1".to_vec()).unwrap();
        let keys = vec![(b"1".to_vec(), signer.public_key())];
        (signer, keys)
    }

    #[test]
    fn signed_list_round_trips_and_finds_ids() {
        let (signer, keys) = operator();
        let ids: Vec<[u8; 16]> = (0..1000u32).map(|i| { let mut id = [0u8; 16]; id[..4].copy_from_slice(&(i * 7).to_be_bytes()); id }).collect();
        let list = RevocationList::from_ids(3, 1_700_000_000, ids.clone());
        let verified = RevocationList::verify(&list.sign(&signer).unwrap(), &keys).unwrap();
        assert_eq!(verified, list);
        assert!(ids.iter().all(|id| verified.contains(id)));
        assert!(!verified.contains(&[0xff; 16]));
    }

    #[test]
    fn a_list_signed_by_another_key_or_altered_is_refused() {
        let (_, keys) = operator();
        let stranger = Ed25519Signer::from_seed(&[8; 32], b"1".to_vec()).unwrap();
        let signed = RevocationList::from_ids(1, 1, vec![[1; 16]]).sign(&stranger).unwrap();
        assert!(matches!(RevocationList::verify(&signed, &keys), Err(RevocationError::Statement(StatementError::BadSignature))));
        let (signer, _) = operator();
        let mut signed = RevocationList::from_ids(1, 1, vec![[1; 16]]).sign(&signer).unwrap();
        let n = signed.len();
        signed[n - 70] ^= 1;
        assert!(RevocationList::verify(&signed, &keys).is_err());
    }

    #[test]
    fn ids_of_the_wrong_length_and_older_lists_are_refused() {
        let (signer, keys) = operator();
        let mut fields = Fields::new();
        fields.insert(1, FieldValue::U64(1));
        fields.insert(2, FieldValue::U64(1));
        fields.insert(3, FieldValue::Bytes(vec![0; 17]));
        let signed = crypto::sign(&REVOCATION_LIST_SCHEMA, &fields, &signer).unwrap();
        assert_eq!(RevocationList::verify(&signed, &keys), Err(RevocationError::BadIds));
        let held = RevocationList::from_ids(5, 0, vec![]);
        assert!(held.check_newer(&RevocationList::from_ids(4, 0, vec![])).is_err());
        assert!(held.check_newer(&RevocationList::from_ids(6, 0, vec![])).is_ok());
    }
}
