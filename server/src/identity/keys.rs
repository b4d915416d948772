//! The server's own keys, kept in the database (`signing_keys`) so every instance signs and
//! verifies with the same ones: the Ed25519 access token keys (one per rotation generation), the
//! DPoP nonce secret, and the long-lived Ed25519 keys of other purposes (`load_or_create_ed25519`:
//! the device key attestation, the city's credential key).
//!
//! Rotation needs no coordination: the key of generation `g = now / rotation` is created by
//! whichever instance first needs it, with `INSERT … ON CONFLICT DO NOTHING`, and every instance
//! then reads back the same row. The next generation's key is created at the same time and
//! verifies at once, so every instance knows it (the 60 s reload; rotation is at least 60 s) well
//! before any instance signs with it: at the boundary no instance refuses another's fresh token.
//! A key signs during its generation and verifies for a day after.
//! Each instance reloads the ring every 60 s and, rate-limited, when a token names a key it does
//! not know, so verification itself never touches the database.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use congdan_core::crypto::{Algorithm, Ed25519Signer, KeySet, PublicKey};
use ring::rand::{SecureRandom, SystemRandom};

use crate::db::{now_millis, postgres, sqlite, Db, DbError, DbResult};

pub const ACCESS_TOKEN_PURPOSE: &str = "access_token";
pub const NONCE_SECRET_PURPOSE: &str = "dpop_nonce";
/// How long a retired key still verifies (far longer than any access token lives).
pub const RETIRED_KEY_GRACE_SECS: u64 = 86_400;
/// A reload triggered by an unknown key id happens at most this often.
const FORCED_RELOAD_INTERVAL: Duration = Duration::from_secs(5);

pub(crate) struct StoredKey {
    pub(crate) generation: i64,
    pub(crate) secret: Vec<u8>,
    pub(crate) public_key: Vec<u8>,
}

/// One loaded state of the ring: what verifies, and what signs now.
pub struct Ring {
    verification: Vec<(Vec<u8>, PublicKey)>,
    signer: Arc<Ed25519Signer>,
    signer_generation: i64,
}

impl KeySet for Ring {
    fn key(&self, algorithm: Algorithm, key_id: &[u8]) -> Option<PublicKey> {
        self.verification.key(algorithm, key_id)
    }
}

impl Ring {
    pub fn signer(&self) -> &Arc<Ed25519Signer> {
        &self.signer
    }
}

pub struct KeyRing {
    db: Db,
    rotation_secs: u64,
    ring: RwLock<Arc<Ring>>,
    last_forced_reload: Mutex<Option<Instant>>,
}

fn now_secs() -> u64 {
    (now_millis() / 1000).max(0) as u64
}

fn generation_at(now_secs: u64, rotation_secs: u64) -> i64 {
    (now_secs / rotation_secs.max(1)) as i64
}

fn corrupt(e: impl std::fmt::Display) -> DbError {
    DbError::Corrupt(format!("signing key: {e}"))
}

impl KeyRing {
    /// Loads the ring, creating the current generation's key when no instance has yet.
    pub async fn load(db: Db, rotation_secs: u64) -> DbResult<Arc<KeyRing>> {
        let ring = build_ring(&db, rotation_secs).await?;
        Ok(Arc::new(KeyRing {
            db,
            rotation_secs,
            ring: RwLock::new(Arc::new(ring)),
            last_forced_reload: Mutex::new(None),
        }))
    }

    /// The current state, for verification (no database access).
    pub fn current(&self) -> Arc<Ring> {
        self.ring.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub async fn reload(&self) -> DbResult<()> {
        let ring = build_ring(&self.db, self.rotation_secs).await?;
        *self.ring.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(ring);
        Ok(())
    }

    /// Reloads after a token named an unknown key (another instance may have rotated), at most
    /// once per few seconds so forged key ids cannot hammer the database. True if it reloaded.
    pub async fn reload_for_unknown_key(&self) -> bool {
        {
            let mut last = self.last_forced_reload.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| t.elapsed() < FORCED_RELOAD_INTERVAL) {
                return false;
            }
            *last = Some(Instant::now());
        }
        match self.reload().await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!("reloading the token keys failed: {e}");
                false
            }
        }
    }

    /// The ring to sign with: rotated first when its generation has passed.
    pub async fn for_signing(&self) -> DbResult<Arc<Ring>> {
        let ring = self.current();
        if ring.signer_generation < generation_at(now_secs(), self.rotation_secs) {
            self.reload().await?;
            return Ok(self.current());
        }
        Ok(ring)
    }
}

async fn build_ring(db: &Db, rotation_secs: u64) -> DbResult<Ring> {
    build_ring_at(db, rotation_secs, now_secs()).await
}

async fn build_ring_at(db: &Db, rotation_secs: u64, now: u64) -> DbResult<Ring> {
    let current = generation_at(now, rotation_secs);
    for generation in [current, current + 1] {
        let pkcs8 = Ed25519Signer::generate_pkcs8().map_err(corrupt)?;
        let public = Ed25519Signer::from_pkcs8(&pkcs8, vec![0]).map_err(corrupt)?.public_key().bytes;
        insert_if_absent(db, ACCESS_TOKEN_PURPOSE, generation, pkcs8, public).await?;
    }
    // Generations whose key still verifies: (g + 1) * rotation + grace > now.
    let oldest = ((now.saturating_sub(RETIRED_KEY_GRACE_SECS)) / rotation_secs.max(1)) as i64 - 1;
    let stored = load_keys(db, ACCESS_TOKEN_PURPOSE, oldest).await?;
    let mut verification = Vec::new();
    let mut signer: Option<(i64, Arc<Ed25519Signer>)> = None;
    for key in stored {
        let verifies_until = (key.generation as u64 + 1) * rotation_secs + RETIRED_KEY_GRACE_SECS;
        if verifies_until <= now {
            continue;
        }
        let public = PublicKey { algorithm: Algorithm::Ed25519, bytes: key.public_key };
        let key_id = public.default_key_id();
        verification.push((key_id.clone(), public));
        if key.generation <= current && signer.as_ref().is_none_or(|(g, _)| *g < key.generation) {
            let s = Ed25519Signer::from_pkcs8(&key.secret, key_id).map_err(corrupt)?;
            signer = Some((key.generation, Arc::new(s)));
        }
    }
    let (signer_generation, signer) = signer.ok_or_else(|| corrupt("the current key is missing"))?;
    Ok(Ring { verification, signer, signer_generation })
}

/// The DPoP nonce secret (32 bytes), created by the first instance that needs it.
pub async fn nonce_secret(db: &Db) -> DbResult<Vec<u8>> {
    let mut secret = vec![0u8; 32];
    SystemRandom::new().fill(&mut secret).map_err(|_| corrupt("random generator failed"))?;
    insert_if_absent(db, NONCE_SECRET_PURPOSE, 0, secret, Vec::new()).await?;
    let key = load_keys(db, NONCE_SECRET_PURPOSE, 0).await?.into_iter().next().ok_or_else(|| corrupt("nonce secret missing"))?;
    if key.secret.len() != 32 {
        return Err(corrupt("nonce secret of the wrong length"));
    }
    Ok(key.secret)
}

/// The Ed25519 keys of a `purpose` served by one long-lived key (the device key attestation, the
/// city's credential key), oldest first; generation 0 is created when there is none yet, by
/// whichever instance asks first.
pub(crate) async fn load_or_create_ed25519(db: &Db, purpose: &'static str) -> DbResult<Vec<StoredKey>> {
    let stored = load_keys(db, purpose, 0).await?;
    if !stored.is_empty() {
        return Ok(stored);
    }
    let pkcs8 = Ed25519Signer::generate_pkcs8().map_err(corrupt)?;
    let public = Ed25519Signer::from_pkcs8(&pkcs8, vec![0]).map_err(corrupt)?.public_key().bytes;
    insert_if_absent(db, purpose, 0, pkcs8, public).await?;
    let stored = load_keys(db, purpose, 0).await?;
    if stored.is_empty() {
        return Err(corrupt(format!("{purpose} key missing after creation")));
    }
    Ok(stored)
}

/// A stored Ed25519 key as a signer, named by its default key id.
pub(crate) fn ed25519_signer(key: &StoredKey) -> DbResult<Arc<Ed25519Signer>> {
    let public = Ed25519Signer::from_pkcs8(&key.secret, vec![0]).map_err(corrupt)?.public_key();
    Ok(Arc::new(Ed25519Signer::from_pkcs8(&key.secret, public.default_key_id()).map_err(corrupt)?))
}

/// Stores a key of `purpose` for `generation` unless one exists (the first instance wins).
pub(crate) async fn insert_if_absent(db: &Db, purpose: &'static str, generation: i64, secret: Vec<u8>, public: Vec<u8>) -> DbResult<()> {
    let ctx = "creating a signing key";
    match db {
        Db::Sqlite(pool) => {
            pool.write(ctx, move |tx| {
                tx.execute(
                    "INSERT INTO signing_keys(purpose, generation, secret, public_key, created_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
                    rusqlite::params![purpose, generation, secret, public, now_millis()],
                )
                .map_err(sqlite::q(ctx))?;
                Ok(())
            })
            .await
        }
        Db::Postgres(pool) => {
            pool.client()
                .await?
                .execute(
                    "INSERT INTO signing_keys(purpose, generation, secret, public_key, created_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                    &[&purpose, &generation, &secret, &public, &now_millis()],
                )
                .await
                .map_err(postgres::q(ctx))?;
            Ok(())
        }
    }
}

/// The keys of `purpose` from `min_generation` on, oldest first.
pub(crate) async fn load_keys(db: &Db, purpose: &'static str, min_generation: i64) -> DbResult<Vec<StoredKey>> {
    let ctx = "loading signing keys";
    let sql_sqlite = "SELECT generation, secret, public_key FROM signing_keys \
                      WHERE purpose = ?1 AND generation >= ?2 ORDER BY generation";
    match db {
        Db::Sqlite(pool) => {
            pool.read(ctx, move |c| {
                let mut stmt = c.prepare_cached(sql_sqlite)?;
                let rows = stmt.query_map(rusqlite::params![purpose, min_generation], |r| {
                    Ok(StoredKey { generation: r.get(0)?, secret: r.get(1)?, public_key: r.get(2)? })
                })?;
                rows.collect()
            })
            .await
        }
        Db::Postgres(pool) => Ok(pool
            .client()
            .await?
            .query(
                "SELECT generation, secret, public_key FROM signing_keys \
                 WHERE purpose = $1 AND generation >= $2 ORDER BY generation",
                &[&purpose, &min_generation],
            )
            .await
            .map_err(postgres::q(ctx))?
            .into_iter()
            .map(|r| StoredKey { generation: r.get(0), secret: r.get(1), public_key: r.get(2) })
            .collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use congdan_core::crypto::Signer;

    #[tokio::test]
    async fn the_next_generations_key_verifies_before_it_signs() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}", dir.path().join("keys.db").display())).await.unwrap();
        let rotation = 3_600;
        let last_second_of_10 = 11 * rotation - 1;
        // Instance A loaded its ring just before the boundary, instance B just after.
        let a = build_ring_at(&db, rotation, last_second_of_10).await.unwrap();
        let b = build_ring_at(&db, rotation, last_second_of_10 + 2).await.unwrap();
        assert_eq!((a.signer_generation, b.signer_generation), (10, 11));
        assert_ne!(a.signer.key_id(), b.signer.key_id(), "rotated");
        // A token B signs now verifies at A without a reload; A's own still verify at B.
        assert!(a.key(Algorithm::Ed25519, b.signer.key_id()).is_some());
        assert!(b.key(Algorithm::Ed25519, a.signer.key_id()).is_some());
        // A day after generation 10 ended, its key no longer verifies; 11's still does.
        let later = build_ring_at(&db, rotation, 11 * rotation + RETIRED_KEY_GRACE_SECS).await.unwrap();
        assert!(later.key(Algorithm::Ed25519, a.signer.key_id()).is_none());
        assert!(later.key(Algorithm::Ed25519, b.signer.key_id()).is_some(), "11 ended less than a day ago");
    }
}
