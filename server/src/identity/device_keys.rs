//! The registry of residents' device keys. The DPoP key a phone proves at login is its device
//! key (P-256, in the platform keystore); the login stores it in `devices` (first seen = the
//! registration time). This module reads it as a signing key (key id = first 8 bytes of SHA-256
//! over the 65-byte point, as `PublicKey::default_key_id`) and lets a resident revoke one: a
//! lost phone's key stops signing from that moment and its sessions end. Logout does not revoke
//! the key (the phone keeps it for the next login).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use congdan_core::crypto::jws::{b64url, Jwk, JwsPublicKey};
use congdan_core::crypto::{hex, Algorithm, KeySet, PublicKey};
use serde::Serialize;

use super::auth::Authenticated;
use crate::app::AppState;
use crate::db::{now_millis, postgres, sqlite, Db, DbError, DbResult};
use crate::error::ApiError;

/// One device key of a resident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceKey {
    pub account_id: String,
    /// The DPoP JWK thumbprint (base64url), as sessions name the key.
    pub jkt: String,
    /// The 65-byte uncompressed P-256 point.
    pub public_key: Vec<u8>,
    pub key_id: Vec<u8>,
    pub registered_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
}

impl DeviceKey {
    pub fn public(&self) -> PublicKey {
        PublicKey { algorithm: Algorithm::EcdsaP256Sha256, bytes: self.public_key.clone() }
    }
}

/// A resident's device keys, as a key set for statement verification (revoked ones included:
/// whether a key was active at the signing time is the caller's check, after the signature).
pub struct DeviceKeys(pub Vec<DeviceKey>);

impl DeviceKeys {
    pub fn find(&self, key_id: &[u8]) -> Option<&DeviceKey> {
        self.0.iter().find(|k| k.key_id == key_id)
    }
}

impl KeySet for DeviceKeys {
    fn key(&self, algorithm: Algorithm, key_id: &[u8]) -> Option<PublicKey> {
        (algorithm == Algorithm::EcdsaP256Sha256).then(|| self.find(key_id).map(DeviceKey::public)).flatten()
    }
}

fn from_row(account_id: String, jkt: String, jwk: &str, first_seen: i64, revoked_at: Option<i64>) -> DbResult<DeviceKey> {
    let jwk: Jwk = serde_json::from_str(jwk).map_err(|e| DbError::Corrupt(format!("device jwk: {e}")))?;
    let JwsPublicKey::P256(point) = jwk.public_key().map_err(|e| DbError::Corrupt(format!("device jwk: {e}")))? else {
        return Err(DbError::Corrupt("device key is not P-256".into()));
    };
    let key_id = PublicKey { algorithm: Algorithm::EcdsaP256Sha256, bytes: point.clone() }.default_key_id();
    Ok(DeviceKey { account_id, jkt, public_key: point, key_id, registered_at_ms: first_seen, revoked_at_ms: revoked_at })
}

/// Every device key registered to `account`, oldest first.
pub async fn for_account(db: &Db, account: &str) -> DbResult<DeviceKeys> {
    let ctx = "reading device keys";
    let rows: Vec<(String, String, String, i64, Option<i64>)> = match db {
        Db::Sqlite(pool) => {
            let account = account.to_string();
            pool.read(ctx, move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT account_id, jkt, public_jwk, first_seen, revoked_at FROM devices WHERE account_id = ?1 ORDER BY first_seen",
                )?;
                let rows = stmt.query_map([account], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?;
                rows.collect()
            })
            .await?
        }
        Db::Postgres(pool) => {
            let client = pool.client().await?;
            let stmt = client
                .prepare_cached(
                    "SELECT account_id, jkt, public_jwk, first_seen, revoked_at FROM devices WHERE account_id = $1 ORDER BY first_seen",
                )
                .await
                .map_err(postgres::q(ctx))?;
            client
                .query(&stmt, &[&account])
                .await
                .map_err(postgres::q(ctx))?
                .into_iter()
                .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
                .collect()
        }
    };
    let keys = rows.into_iter().map(|(a, j, w, f, r)| from_row(a, j, &w, f, r)).collect::<DbResult<Vec<_>>>()?;
    Ok(DeviceKeys(keys))
}

/// A device key by its key id, whoever it belongs to (the verification bundle's attestation).
pub async fn by_key_id(db: &Db, account: &str, key_id: &[u8]) -> DbResult<Option<DeviceKey>> {
    Ok(for_account(db, account).await?.0.into_iter().find(|k| k.key_id == key_id))
}

/// Revokes `account`'s key `jkt` (if not yet) and ends every session bound to it, in one
/// transaction. The time of the first revocation stays.
async fn revoke(db: &Db, account: &str, jkt: &str) -> DbResult<()> {
    let ctx = "revoking a device key";
    let now = now_millis();
    let (account, jkt) = (account.to_string(), jkt.to_string());
    match db {
        Db::Sqlite(pool) => {
            pool.write(ctx, move |tx| {
                let s = |e| sqlite::q(ctx)(e);
                tx.execute(
                    "UPDATE devices SET revoked_at = ?3 WHERE account_id = ?1 AND jkt = ?2 AND revoked_at IS NULL",
                    rusqlite::params![account, jkt, now],
                )
                .map_err(s)?;
                tx.execute(
                    "UPDATE refresh_tokens SET revoked_at = ?3 WHERE revoked_at IS NULL AND family_id IN \
                     (SELECT id FROM token_families WHERE account_id = ?1 AND jkt = ?2)",
                    rusqlite::params![account, jkt, now],
                )
                .map_err(s)?;
                tx.execute(
                    "UPDATE token_families SET revoked_at = ?3, revoked_reason = 'device_key_revoked' \
                     WHERE account_id = ?1 AND jkt = ?2 AND revoked_at IS NULL",
                    rusqlite::params![account, jkt, now],
                )
                .map_err(s)?;
                Ok(())
            })
            .await
        }
        Db::Postgres(pool) => {
            let mut client = pool.client().await?;
            let tx = client.transaction().await.map_err(postgres::q(ctx))?;
            let p = |e| postgres::q(ctx)(e);
            tx.execute(
                "UPDATE devices SET revoked_at = $3 WHERE account_id = $1 AND jkt = $2 AND revoked_at IS NULL",
                &[&account, &jkt, &now],
            )
            .await
            .map_err(p)?;
            tx.execute(
                "UPDATE refresh_tokens SET revoked_at = $3 WHERE revoked_at IS NULL AND family_id IN \
                 (SELECT id FROM token_families WHERE account_id = $1 AND jkt = $2)",
                &[&account, &jkt, &now],
            )
            .await
            .map_err(p)?;
            tx.execute(
                "UPDATE token_families SET revoked_at = $3, revoked_reason = 'device_key_revoked' \
                 WHERE account_id = $1 AND jkt = $2 AND revoked_at IS NULL",
                &[&account, &jkt, &now],
            )
            .await
            .map_err(p)?;
            tx.commit().await.map_err(p)
        }
    }
}

/// What a resident sees of one of their device keys.
#[derive(Debug, Serialize)]
pub struct DeviceKeyView {
    /// Hex of the 8-byte key id, as decisions name the key.
    pub key_id: String,
    pub jkt: String,
    /// Unix seconds.
    pub registered_at: i64,
    pub revoked_at: Option<i64>,
    /// The key of the phone making this request.
    pub current: bool,
}

#[derive(Debug, Serialize)]
pub struct DeviceKeyList {
    pub keys: Vec<DeviceKeyView>,
}

fn view(key: &DeviceKey, caller: &Authenticated) -> DeviceKeyView {
    DeviceKeyView {
        key_id: hex(&key.key_id),
        jkt: key.jkt.clone(),
        registered_at: key.registered_at_ms / 1000,
        revoked_at: key.revoked_at_ms.map(|t| t / 1000),
        current: key.jkt == b64url(&caller.jkt),
    }
}

/// `GET /v1/me/device-keys`: the caller's device keys.
pub async fn list(State(state): State<AppState>, caller: Authenticated) -> Result<Json<DeviceKeyList>, ApiError> {
    let keys = for_account(&state.db, &caller.account_id).await?;
    Ok(Json(DeviceKeyList { keys: keys.0.iter().map(|k| view(k, &caller)).collect() }))
}

/// `POST /v1/me/device-keys/{key_id}/revoke`: a resident revokes one of their own device keys
/// (a lost phone). Signatures made with it from now on are refused and its sessions end; this
/// phone's own key may be revoked too (its session ends with the answer). Another resident's
/// key answers 404, like a key that does not exist.
pub async fn revoke_route(
    State(state): State<AppState>,
    caller: Authenticated,
    Path(key_id): Path<String>,
) -> Result<Json<DeviceKeyView>, ApiError> {
    let not_found =
        || ApiError::new(StatusCode::NOT_FOUND, "device_key_not_found", "no such device key", "Không tìm thấy khoá thiết bị.");
    let wanted = congdan_core::crypto::from_hex(&key_id).filter(|k| k.len() == 8).ok_or_else(not_found)?;
    let keys = for_account(&state.db, &caller.account_id).await?;
    let key = keys.find(&wanted).ok_or_else(not_found)?;
    revoke(&state.db, &caller.account_id, &key.jkt).await?;
    tracing::info!("device key revoked by its resident");
    let after = by_key_id(&state.db, &caller.account_id, &wanted).await?.ok_or_else(not_found)?;
    Ok(Json(view(&after, &caller)))
}
