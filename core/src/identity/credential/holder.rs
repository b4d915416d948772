//! The resident's side: fetch the credential while online, keep it sealed, show it offline.

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::wire::{CredentialKeys, IssuedCredential, CREDENTIAL_KEYS_PATH, CREDENTIAL_PATH};
use super::{present, to_qr_text, verify_credential, Attribute, CredentialRefusal, Disclosure, ShownAttribute, SALT_LEN};
use crate::core::Core;
use crate::crypto::jws::{b64url, b64url_decode};
use crate::crypto::{Algorithm, PublicKey};
use crate::error::{Error, LoginRequiredReason, Result};
use crate::store::{now_millis, Store};
use crate::sync::client::{ApiRequest, Method};
use crate::tickets::phone::{this_device_key, KeystoreSigner};

/// The phone draws a new code this often: a screenshot is stale soon after (verifiers accept
/// two minutes by default).
pub const REDRAW_SECONDS: u64 = 30;
/// A held credential is renewed at the first sync when fewer days than this are left.
pub const RENEW_DAYS_BEFORE_EXPIRY: u64 = 7;
/// Kept city keys are fetched again at the first sync after this long, so a desk learns a new
/// city key (a rotation) without anyone pressing a button.
pub const KEYS_MAX_AGE_MS: i64 = 24 * 3_600 * 1_000;
const SEALED_AAD: &[u8] = b"congdan identity credential v1";

/// The credential this phone holds, as the resident sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldCredential {
    pub attributes: Vec<ShownAttribute>,
    pub issued_at: u64,
    pub expires_at: u64,
}

/// One code to show: base45 text for the QR, redrawn every [`REDRAW_SECONDS`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialCode {
    pub text: String,
    pub presented_at: u64,
    pub seconds_remaining: u32,
}

/// What is sealed at rest: the statement and the salts and values (personal data).
#[derive(Serialize, Deserialize)]
struct Sealed {
    statement: String,
    disclosures: Vec<(u8, String, String)>,
    issued_at: u64,
    expires_at: u64,
}

/// The identity credential on the resident's phone.
#[derive(Clone)]
pub struct CredentialService {
    pub(crate) core: Core,
}

fn bad(message: &str) -> Error {
    Error::BadData(format!("identity credential: {message}"))
}

impl CredentialService {
    /// Fetches the city's credential keys (public) and keeps them for verifying offline.
    pub async fn update_keys(&self) -> Result<usize> {
        let session = self.core.session();
        let request =
            ApiRequest { method: Method::GET, path: CREDENTIAL_KEYS_PATH, body: None, auth: None, idempotency_key: None, headers: &[] };
        let keys: CredentialKeys = session.client.send(request).await?;
        let mut parsed = Vec::new();
        for key in &keys.keys {
            let bytes = b64url_decode(&key.public_key).map_err(|_| bad("a city key is not base64url"))?;
            if key.algorithm != "ed25519" || bytes.len() != 32 {
                return Err(bad("a city key is not a 32-byte Ed25519 key"));
            }
            let public = PublicKey { algorithm: Algorithm::Ed25519, bytes };
            // The id is derived here, never taken from the server's word.
            parsed.push((crate::crypto::hex(&public.default_key_id()), public.bytes));
        }
        // The kept keys are replaced only by a usable list: a desk never ends up trusting nothing.
        if parsed.is_empty() {
            return Err(bad("the server published no city key"));
        }
        self.core.store().write("saving the city's credential keys", |tx| {
            let ctx = "saving the city's credential keys";
            tx.execute("DELETE FROM credential_keys", []).map_err(Error::db(ctx))?;
            for (key_id, public) in &parsed {
                tx.execute(
                    "INSERT INTO credential_keys(key_id, public_key, fetched_at) VALUES (?1, ?2, ?3)",
                    params![key_id, public, now_millis()],
                )
                .map_err(Error::db(ctx))?;
            }
            Ok(())
        })?;
        Ok(parsed.len())
    }

    /// Fetches the city keys again when this device keeps some fetched more than
    /// [`KEYS_MAX_AGE_MS`] ago (the sync calls this). A device that never fetched any (a phone
    /// that never used the credential) is left alone. True when fetched.
    pub async fn update_keys_if_stale(&self) -> Result<bool> {
        let oldest: Option<i64> = self
            .core
            .store()
            .read("reading the city's credential keys", |c| c.query_row("SELECT min(fetched_at) FROM credential_keys", [], |r| r.get(0)))?;
        match oldest {
            Some(at) if now_millis() - at > KEYS_MAX_AGE_MS => {
                self.update_keys().await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Asks the server for a fresh credential bound to this phone's device key, checks it with
    /// the city's keys, and keeps it sealed under the session's data key.
    pub async fn refresh(&self) -> Result<HeldCredential> {
        self.update_keys().await?;
        let session = self.core.session();
        let account = session.active_account()?.ok_or(Error::LoginRequired { reason: LoginRequiredReason::NotLoggedIn })?;
        let issued: IssuedCredential = session.send_authorized(Method::POST, CREDENTIAL_PATH, None, None).await?;
        let statement = b64url_decode(&issued.credential).map_err(|_| bad("not base64url"))?;
        let credential = verify_credential(&statement, &city_keys(self.core.store())?).map_err(|r| bad(r.code()))?;
        if credential.device_key != this_device_key(session.keystore.as_ref())? {
            return Err(bad("bound to another device key"));
        }
        let mut disclosures = Vec::new();
        for d in &issued.disclosures {
            let attribute = Attribute::from_name(&d.attribute).ok_or_else(|| bad("unknown attribute"))?;
            let salt: [u8; SALT_LEN] = b64url_decode(&d.salt)
                .ok()
                .and_then(|s| s.try_into().ok())
                .ok_or_else(|| bad("salt is not 16 bytes"))?;
            let disclosure = Disclosure { attribute, salt, value: d.value.clone() };
            if credential.digests.get(&attribute) != Some(&disclosure.digest()) {
                return Err(bad("a value does not match its digest"));
            }
            disclosures.push(disclosure);
        }
        if disclosures.len() != credential.digests.len() {
            return Err(bad("a signed attribute came without its value"));
        }
        let sealed = Sealed {
            statement: b64url(&statement),
            disclosures: disclosures.iter().map(|d| (d.attribute as u8, b64url(&d.salt), d.value.clone())).collect(),
            issued_at: credential.issued_at,
            expires_at: credential.expires_at,
        };
        let json = serde_json::to_vec(&sealed).map_err(|e| Error::BadData(e.to_string()))?;
        let key = session.state.vault.key(self.core.store(), session.keystore.as_ref())?;
        let sealed = key.seal(&json, SEALED_AAD).map_err(|e| Error::Platform { service: "keystore", message: e.to_string() })?;
        self.core.store().write("saving the identity credential", |tx| {
            tx.execute(
                "INSERT INTO identity_credential(id, account_id, sealed, expires_at, updated_at) VALUES (1, ?1, ?2, ?3, ?4) \
                 ON CONFLICT(id) DO UPDATE SET account_id = excluded.account_id, sealed = excluded.sealed, \
                 expires_at = excluded.expires_at, updated_at = excluded.updated_at",
                params![account, sealed, credential.expires_at as i64, now_millis()],
            )
            .map_err(Error::db("saving the identity credential"))?;
            Ok(())
        })?;
        // Keeps the server's clock as just learned, for codes drawn offline after a restart.
        self.core.server_clock_offset_ms()?;
        tracing::info!(attributes = disclosures.len(), "identity credential renewed");
        Ok(held(&disclosures, credential.issued_at, credential.expires_at))
    }

    /// Renews a held credential that expires within [`RENEW_DAYS_BEFORE_EXPIRY`] days (the sync
    /// calls this). A phone that never fetched one is left alone. True when renewed.
    pub async fn renew_if_due(&self) -> Result<bool> {
        // The plain `expires_at` column: deciding needs no unsealing, at every sync.
        let Some(account) = self.core.session().active_account()? else { return Ok(false) };
        let expires_at: Option<i64> = self.core.store().read("reading the identity credential", |c| {
            c.query_row("SELECT expires_at FROM identity_credential WHERE id = 1 AND account_id = ?1", [&account], |r| r.get(0))
                .optional()
        })?;
        let Some(expires_at) = expires_at else { return Ok(false) };
        let now = now_millis().max(0) / 1000;
        if expires_at > now + (RENEW_DAYS_BEFORE_EXPIRY * 86_400) as i64 {
            return Ok(false);
        }
        self.refresh().await?;
        Ok(true)
    }

    /// The credential kept on this phone (offline), if any.
    pub fn held(&self) -> Result<Option<HeldCredential>> {
        Ok(self.open()?.map(|(_, disclosures, issued_at, expires_at)| held(&disclosures, issued_at, expires_at)))
    }

    /// The code showing `shown`, now (offline).
    pub fn present(&self, shown: &[Attribute]) -> Result<CredentialCode> {
        self.present_at(shown, now_millis())
    }

    /// The code showing `shown` at the phone's clock `phone_now_ms`, on the server's clock.
    pub fn present_at(&self, shown: &[Attribute], phone_now_ms: i64) -> Result<CredentialCode> {
        let (statement, disclosures, _, expires_at) = self.open()?.ok_or(Error::NotFound { what: "identity credential" })?;
        let server_now = ((phone_now_ms + self.core.server_clock_offset_ms()?).max(0) / 1000) as u64;
        if expires_at <= server_now {
            return Err(Error::Credential { refusal: CredentialRefusal::Expired });
        }
        if !shown.iter().all(|a| disclosures.iter().any(|d| d.attribute == *a)) || shown.is_empty() {
            return Err(Error::InvalidConfig("choose attributes this credential holds".into()));
        }
        // Dated at the start of the redraw period: the same code for the whole period.
        let presented_at = server_now - server_now % REDRAW_SECONDS;
        let session = self.core.session();
        let payload = present(&statement, &disclosures, shown, presented_at, &KeystoreSigner(session.keystore.as_ref()))
            .map_err(|e| Error::Platform { service: "keystore", message: e.to_string() })?;
        Ok(CredentialCode {
            text: to_qr_text(&payload),
            presented_at,
            seconds_remaining: (presented_at + REDRAW_SECONDS - server_now).max(1) as u32,
        })
    }

    /// The sealed credential of the logged-in account: statement, disclosures, issued, expires.
    #[allow(clippy::type_complexity)]
    fn open(&self) -> Result<Option<(Vec<u8>, Vec<Disclosure>, u64, u64)>> {
        let session = self.core.session();
        let Some(account) = session.active_account()? else { return Ok(None) };
        let row: Option<Vec<u8>> = self.core.store().read("reading the identity credential", |c| {
            c.query_row("SELECT sealed FROM identity_credential WHERE id = 1 AND account_id = ?1", [&account], |r| r.get(0))
                .optional()
        })?;
        let Some(sealed) = row else { return Ok(None) };
        let key = session.state.vault.key(self.core.store(), session.keystore.as_ref())?;
        let json = key.open(&sealed, SEALED_AAD).map_err(|_| bad("unreadable"))?;
        let sealed: Sealed = serde_json::from_slice(&json).map_err(|_| bad("unreadable"))?;
        let statement = b64url_decode(&sealed.statement).map_err(|_| bad("unreadable"))?;
        let mut disclosures = Vec::new();
        for (id, salt, value) in sealed.disclosures {
            let attribute = Attribute::from_byte(id).ok_or_else(|| bad("unreadable"))?;
            let salt = b64url_decode(&salt).ok().and_then(|s| s.try_into().ok()).ok_or_else(|| bad("unreadable"))?;
            disclosures.push(Disclosure { attribute, salt, value });
        }
        // Kept as verified at refresh, under the AEAD: the times need no second verification.
        Ok(Some((statement, disclosures, sealed.issued_at, sealed.expires_at)))
    }
}

fn held(disclosures: &[Disclosure], issued_at: u64, expires_at: u64) -> HeldCredential {
    HeldCredential {
        attributes: disclosures.iter().map(|d| ShownAttribute { attribute: d.attribute, value: d.value.clone() }).collect(),
        issued_at,
        expires_at,
    }
}

/// The city keys kept on this device.
pub(crate) fn city_keys(store: &Store) -> Result<Vec<(Vec<u8>, PublicKey)>> {
    let rows: Vec<(String, Vec<u8>)> = store.read("reading the city's credential keys", |c| {
        let mut stmt = c.prepare_cached("SELECT key_id, public_key FROM credential_keys")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect()
    })?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, bytes)| Some((crate::crypto::from_hex(&id)?, PublicKey { algorithm: Algorithm::Ed25519, bytes })))
        .collect())
}
