//! The session on the phone: one row, tokens sealed with AES-256-GCM under a data key that is
//! stored only wrapped by the platform keystore. A copied database file holds no usable token.

use std::sync::Mutex;

use rusqlite::{params, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};

use super::wire::AccountInfo;
use crate::crypto::aead::{random_key, SealingKey};
use crate::error::{Error, LoginRequiredReason, Result};
use crate::platform::Keystore;
use crate::store::{now_millis, Store};

const DATA_KEY_META: &str = "session_data_key";
const TOKENS_AAD: &[u8] = b"congdan session tokens v1";
const VERIFIER_AAD: &[u8] = b"congdan pending login verifier v1";

/// The secrets of an active session.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct TokenSet {
    pub access_token: String,
    pub refresh_token: String,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSet(..)")
    }
}

/// What the session row says, tokens still sealed.
#[derive(Clone, Debug)]
pub(crate) struct SessionRow {
    pub account: AccountInfo,
    pub login_required: Option<LoginRequiredReason>,
    pub sealed_tokens: Option<Vec<u8>>,
    pub access_expires_at_ms: i64,
    pub refresh_due_at_ms: i64,
}

/// Holds the unwrapped data key in memory once it was needed (unwrapping may ask the keystore
/// for user presence, so it is done at most once per process).
#[derive(Default)]
pub(crate) struct Vault {
    key: Mutex<Option<std::sync::Arc<SealingKey>>>,
}

fn keystore_error(e: impl std::fmt::Display) -> Error {
    Error::Platform { service: "keystore", message: e.to_string() }
}

fn reason_name(reason: LoginRequiredReason) -> &'static str {
    match reason {
        LoginRequiredReason::NotLoggedIn => "not_logged_in",
        LoginRequiredReason::Expired => "expired",
        LoginRequiredReason::Revoked => "revoked",
    }
}

fn reason_from(name: Option<&str>) -> LoginRequiredReason {
    match name {
        Some("revoked") => LoginRequiredReason::Revoked,
        Some("not_logged_in") => LoginRequiredReason::NotLoggedIn,
        _ => LoginRequiredReason::Expired,
    }
}

impl Vault {
    /// The data key, unwrapped by the keystore; created and stored wrapped on first use.
    pub fn key(&self, store: &Store, keystore: &dyn Keystore) -> Result<std::sync::Arc<SealingKey>> {
        let mut cached = self.key.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(key) = cached.as_ref() {
            return Ok(key.clone());
        }
        let wrapped: Option<String> = store.read("reading the session key", |c| {
            c.query_row("SELECT value FROM meta WHERE key = ?1", [DATA_KEY_META], |r| r.get(0)).optional()
        })?;
        let key = match wrapped {
            Some(hex) => {
                let wrapped = crate::crypto::from_hex(&hex).ok_or_else(|| Error::BadData("session key is damaged".into()))?;
                let raw = keystore.unwrap(&wrapped).map_err(keystore_error)?;
                SealingKey::new(&raw).map_err(keystore_error)?
            }
            None => {
                let raw = random_key().map_err(keystore_error)?;
                let wrapped = keystore.wrap(&raw).map_err(keystore_error)?;
                store.write("storing the session key", |tx| {
                    tx.execute(
                        "INSERT INTO meta(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                        params![DATA_KEY_META, crate::crypto::hex(&wrapped)],
                    )
                    .map_err(Error::db("storing the session key"))
                })?;
                SealingKey::new(&raw).map_err(keystore_error)?
            }
        };
        let key = std::sync::Arc::new(key);
        *cached = Some(key.clone());
        Ok(key)
    }

    /// The data key for a new login. If the stored one cannot be unwrapped any more (the
    /// keystore was reset, the key invalidated by a new fingerprint, a restored backup from
    /// another phone), the unreadable session is dropped and a new key made, so the resident can
    /// always log in again instead of being stuck. Drafts and cached data are untouched.
    pub fn key_for_login(&self, store: &Store, keystore: &dyn Keystore) -> Result<std::sync::Arc<SealingKey>> {
        match self.key(store, keystore) {
            Err(Error::Platform { service: "keystore", .. }) => {
                tracing::warn!("the stored session key cannot be unwrapped; starting a fresh session");
                wipe(store)?;
                self.forget();
                self.key(store, keystore)
            }
            other => other,
        }
    }

    /// Forgets the key in memory (after it was deleted from the store).
    pub fn forget(&self) {
        *self.key.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

pub(crate) fn seal_tokens(key: &SealingKey, tokens: &TokenSet) -> Result<Vec<u8>> {
    let json = serde_json::to_vec(tokens).map_err(|e| Error::BadData(e.to_string()))?;
    key.seal(&json, TOKENS_AAD).map_err(keystore_error)
}

pub(crate) fn open_tokens(key: &SealingKey, sealed: &[u8]) -> Result<TokenSet> {
    let json = key.open(sealed, TOKENS_AAD).map_err(|_| Error::BadData("session tokens are unreadable".into()))?;
    serde_json::from_slice(&json).map_err(|_| Error::BadData("session tokens are unreadable".into()))
}

pub(crate) fn seal_verifier(key: &SealingKey, verifier: &str) -> Result<Vec<u8>> {
    key.seal(verifier.as_bytes(), VERIFIER_AAD).map_err(keystore_error)
}

pub(crate) fn open_verifier(key: &SealingKey, sealed: &[u8]) -> Result<String> {
    let raw = key.open(sealed, VERIFIER_AAD).map_err(|_| Error::BadData("pending login is unreadable".into()))?;
    String::from_utf8(raw).map_err(|_| Error::BadData("pending login is unreadable".into()))
}

pub(crate) fn load(store: &Store) -> Result<Option<SessionRow>> {
    let row = store.read("reading the session", |c| {
        c.query_row(
            "SELECT account_json, state, ended_reason, sealed_tokens, access_expires_at, refresh_due_at \
             FROM session WHERE id = 1",
            [],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<Vec<u8>>>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            },
        )
        .optional()
    })?;
    let Some((account_json, state, reason, sealed_tokens, access_expires_at_ms, refresh_due_at_ms)) = row else {
        return Ok(None);
    };
    let account: AccountInfo =
        serde_json::from_str(&account_json).map_err(|_| Error::BadData("stored account is unreadable".into()))?;
    let login_required = (state != "active").then(|| reason_from(reason.as_deref()));
    Ok(Some(SessionRow { account, login_required, sealed_tokens, access_expires_at_ms, refresh_due_at_ms }))
}

/// Stores a freshly issued token set as the active session (login or refresh).
pub(crate) fn save_active(
    tx: &Transaction<'_>,
    account: &AccountInfo,
    sealed_tokens: &[u8],
    expires_in_secs: u64,
) -> Result<()> {
    let now = now_millis();
    let lifetime_ms = (expires_in_secs.min(86_400) * 1000) as i64;
    // Refresh ahead of expiry: with a quarter of the lifetime left, at most 60 s before.
    let margin = (lifetime_ms / 4).min(60_000);
    let account_json = serde_json::to_string(account).map_err(|e| Error::BadData(e.to_string()))?;
    tx.execute(
        "INSERT INTO session(id, account_id, account_json, state, ended_reason, sealed_tokens, \
             access_expires_at, refresh_due_at, updated_at) \
         VALUES (1, ?1, ?2, 'active', NULL, ?3, ?4, ?5, ?6) \
         ON CONFLICT(id) DO UPDATE SET account_id = excluded.account_id, \
             account_json = CASE WHEN session.account_id = excluded.account_id AND session.profile_seq > 0 \
                                 THEN session.account_json ELSE excluded.account_json END, \
             profile_seq = CASE WHEN session.account_id = excluded.account_id THEN session.profile_seq ELSE 0 END, \
             state = 'active', ended_reason = NULL, sealed_tokens = excluded.sealed_tokens, \
             access_expires_at = excluded.access_expires_at, refresh_due_at = excluded.refresh_due_at, \
             updated_at = excluded.updated_at",
        params![account.account_id, account_json, sealed_tokens, now + lifetime_ms, now + lifetime_ms - margin, now],
    )
    .map_err(Error::db("saving the session"))?;
    Ok(())
}

/// The session can no longer reach the server: tokens are dropped, everything else is kept.
pub(crate) fn mark_login_required(store: &Store, reason: LoginRequiredReason) -> Result<()> {
    store.write("ending the session", |tx| {
        tx.execute(
            "UPDATE session SET state = 'login_required', ended_reason = ?1, sealed_tokens = NULL, updated_at = ?2 \
             WHERE id = 1",
            params![reason_name(reason), now_millis()],
        )
        .map_err(Error::db("ending the session"))?;
        Ok(())
    })
}

/// Logout: the session, a pending login, the account feed's cursor and the data key are gone.
/// Drafts and cached public data stay.
pub(crate) fn wipe(store: &Store) -> Result<()> {
    store.write("wiping the session", |tx| {
        let ctx = "wiping the session";
        tx.execute("DELETE FROM session", []).map_err(Error::db(ctx))?;
        tx.execute("DELETE FROM pending_login", []).map_err(Error::db(ctx))?;
        tx.execute("DELETE FROM identity_credential", []).map_err(Error::db(ctx))?;
        tx.execute("DELETE FROM feed_cursors WHERE feed LIKE 'account:%'", []).map_err(Error::db(ctx))?;
        tx.execute("DELETE FROM meta WHERE key = ?1", [DATA_KEY_META]).map_err(Error::db(ctx))?;
        Ok(())
    })
}

/// Applies `account.profile` from the account feed: the name and roles the screens show.
pub(crate) fn apply_profile(tx: &Transaction<'_>, seq: u64, account: &AccountInfo) -> Result<()> {
    let json = serde_json::to_string(account).map_err(|e| Error::BadData(e.to_string()))?;
    tx.execute(
        "UPDATE session SET account_json = ?1, profile_seq = ?2 WHERE account_id = ?3 AND profile_seq < ?2",
        params![json, seq as i64, account.account_id],
    )
    .map_err(Error::db("applying the account profile"))?;
    Ok(())
}
