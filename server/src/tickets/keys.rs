//! The operator's ticket keys: Ed25519, in the database (`signing_keys`, purpose
//! [`OPERATOR_KEY_PURPOSE`]) like the access token keys of `identity::keys`, so every instance
//! signs with the same key and no coordination is needed to rotate: the key of generation
//! `g = now / ROTATION_SECS` is created by whichever instance first needs it.
//!
//! A key signs tickets during its generation and stays trusted by gates until the last ticket
//! it can have signed has expired (the longest product, a monthly pass, plus a day). The next
//! generation's key is created ahead and published with the current one, so a gate that syncs
//! rarely already trusts the key that will sign tomorrow's tickets.
//!
//! Key ids are short because they travel in every QR code: the generation modulo 100 in decimal
//! (one or two bytes). At most three generations are ever trusted at once, so ids never collide.

use congdan_core::crypto::{Algorithm, Ed25519Signer, PublicKey};

use crate::db::{now_millis, Db, DbError, DbResult};
use crate::identity::keys::{insert_if_absent, load_keys, StoredKey};

pub const OPERATOR_KEY_PURPOSE: &str = "ticket_operator";
/// A new operator key signs every 30 days.
pub const ROTATION_SECS: u64 = 30 * 86_400;
/// How long a key is trusted after it stopped signing: the longest ticket (30 days) plus a day.
pub const TRUSTED_AFTER_SIGNING_SECS: u64 = 31 * 86_400;

/// One operator key as gates see it (and, inside the server, its secret).
#[derive(Clone)]
pub struct OperatorKey {
    pub generation: i64,
    pub key_id: String,
    /// Raw 32-byte Ed25519 public key.
    pub public_key: Vec<u8>,
    /// Unix seconds: signs from here (and gates trust it from here).
    pub valid_from: u64,
    /// Unix seconds: the last moment it signs.
    pub signs_until: u64,
    /// Unix seconds: gates trust it until here.
    pub valid_until: u64,
    secret: Vec<u8>,
}

impl std::fmt::Debug for OperatorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OperatorKey({}, generation {})", self.key_id, self.generation)
    }
}

impl OperatorKey {
    pub fn signer(&self) -> DbResult<Ed25519Signer> {
        Ed25519Signer::from_pkcs8(&self.secret, self.key_id.as_bytes().to_vec()).map_err(corrupt)
    }

    pub fn public(&self) -> PublicKey {
        PublicKey { algorithm: Algorithm::Ed25519, bytes: self.public_key.clone() }
    }
}

/// The key id of a generation: one or two ASCII digits.
pub fn key_id(generation: i64) -> String {
    generation.rem_euclid(100).to_string()
}

fn now_secs() -> u64 {
    (now_millis() / 1000).max(0) as u64
}

fn generation_at(now: u64) -> i64 {
    (now / ROTATION_SECS) as i64
}

fn corrupt(e: impl std::fmt::Display) -> DbError {
    DbError::Corrupt(format!("operator key: {e}"))
}

async fn ensure(db: &Db, generation: i64) -> DbResult<()> {
    let pkcs8 = Ed25519Signer::generate_pkcs8().map_err(corrupt)?;
    let public = Ed25519Signer::from_pkcs8(&pkcs8, vec![0]).map_err(corrupt)?.public_key().bytes;
    insert_if_absent(db, OPERATOR_KEY_PURPOSE, generation, pkcs8, public).await
}

/// A generation's key: trusted from, signs until, trusted until (unix seconds).
fn periods(generation: i64) -> (u64, u64, u64) {
    let valid_from = generation.max(0) as u64 * ROTATION_SECS;
    let signs_until = valid_from + ROTATION_SECS - 1;
    (valid_from, signs_until, signs_until + TRUSTED_AFTER_SIGNING_SECS)
}

/// Every key gates should trust now: the still-trusted older ones, the current one and the next
/// (created ahead), oldest first.
pub async fn trusted(db: &Db) -> DbResult<Vec<OperatorKey>> {
    let now = now_secs();
    let current = generation_at(now);
    let oldest = generation_at(now.saturating_sub(TRUSTED_AFTER_SIGNING_SECS)) - 1;
    let mut stored = load_keys(db, OPERATOR_KEY_PURPOSE, oldest).await?;
    // Written only when missing (once a month), so reading the keys stays a read.
    let has = |keys: &[StoredKey], g: i64| keys.iter().any(|k| k.generation == g);
    if !has(&stored, current) || !has(&stored, current + 1) {
        ensure(db, current).await?;
        ensure(db, current + 1).await?;
        stored = load_keys(db, OPERATOR_KEY_PURPOSE, oldest).await?;
    }
    Ok(stored
        .into_iter()
        .filter(|k| k.generation <= current + 1)
        .map(|k| {
            let (valid_from, signs_until, valid_until) = periods(k.generation);
            OperatorKey {
                generation: k.generation,
                key_id: key_id(k.generation),
                public_key: k.public_key,
                valid_from,
                signs_until,
                valid_until,
                secret: k.secret,
            }
        })
        .filter(|k| k.valid_until >= now)
        .collect())
}

/// The key that signs now.
pub async fn current(db: &Db) -> DbResult<OperatorKey> {
    let current = generation_at(now_secs());
    trusted(db)
        .await?
        .into_iter()
        .find(|k| k.generation == current)
        .ok_or_else(|| corrupt("the current key is missing"))
}

/// The trusted keys as a key set for `crypto::verify`.
pub fn key_set(keys: &[OperatorKey]) -> Vec<(Vec<u8>, PublicKey)> {
    keys.iter().map(|k| (k.key_id.as_bytes().to_vec(), k.public())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ticket_a_key_signs_expires_before_the_key_does() {
        use congdan_core::tickets::wire::Product;
        let longest = Product::ALL.iter().map(|p| p.validity_seconds()).max().unwrap();
        for g in [0, 1, 684] {
            let (from, signs_until, until) = periods(g);
            assert!(signs_until + longest < until, "a ticket signed at the last moment outlives its key");
            // The next key takes over the moment this one stops signing.
            assert_eq!(periods(g + 1).0, signs_until + 1);
            assert_eq!(generation_at(from), g);
            assert_eq!(generation_at(signs_until), g);
        }
    }

    #[test]
    fn key_ids_are_one_or_two_bytes_and_distinct_for_neighbours() {
        for g in [0i64, 9, 10, 99, 100, 684, 12_345] {
            let id = key_id(g);
            assert!((1..=2).contains(&id.len()), "{g}: {id}");
            assert_ne!(key_id(g), key_id(g + 1));
            assert_ne!(key_id(g), key_id(g + 2));
        }
    }
}
