//! Identity: login through the server's OpenID Connect broker (authorization code + PKCE, RFC
//! 8252), API tokens bound to the device key with DPoP (RFC 9449), and the encrypted session.
//! The flow and the formats are in `docs/identity.md`.
//!
//! Every call to the server that needs the resident goes through [`Session::send_authorized`]:
//! it refreshes the access token ahead of expiry (one refresh at a time, however many calls
//! race), signs a DPoP proof for each attempt, and turns a dead session into the typed
//! [`Error::LoginRequired`] while every local draft and cached datum stays.

pub mod credential;
#[cfg(feature = "dev-browser")]
pub mod dev_browser;
mod dpop;
pub mod national_id;
mod pkce;
mod session;
pub mod wire;

use std::sync::{Arc, Mutex};

use rusqlite::{params, OptionalExtension, Transaction};
use serde::de::DeserializeOwned;
use url::Url;

use crate::error::{Error, LoginError, LoginRequiredReason, Result};
use crate::platform::Keystore;
use crate::store::{now_millis, Store};
use crate::sync::client::{ApiClient, ApiRequest, Method};
use crate::sync::wire::Change;
pub use dpop::DeviceKey;
use dpop::DpopAuth;
use session::{TokenSet, Vault};
use wire::{codes, AccountInfo, TokenResponse};

/// What the app shows about the session.
#[derive(Clone, Debug, PartialEq)]
pub enum SessionState {
    /// Nobody is logged in on this device.
    LoggedOut,
    /// Logged in; server calls work (when online).
    Active { account: AccountInfo, access_expires_at_ms: i64 },
    /// The session ended on the server side (expired or revoked): log in again. Local data is kept.
    LoginRequired { account: AccountInfo, reason: LoginRequiredReason },
}

/// The first step of a login: open `authorize_url` in the system browser (never a web view:
/// RFC 8252 §8.12) and hand the address it comes back to to `login_finish`.
#[derive(Clone, Debug, PartialEq)]
pub struct LoginRequest {
    pub authorize_url: String,
    /// The attempt's `state`, for shells that match the callback themselves.
    pub state: String,
}

/// What a refused authenticated request means for the session. Only the codes that say the
/// session itself is over send the resident back to the login screen; a refusal of one proof or
/// one request must never cost them their login (docs/identity.md, "How the phone reacts").
#[derive(Debug, PartialEq)]
enum Refusal {
    /// The access token is dead; a refresh may bring a live one.
    RenewToken,
    /// The proof was refused: its `iat` was off (the refusal's `Date` header has just corrected
    /// the clock offset) or its `jti` was seen before. A fresh proof may pass.
    NewProof,
    /// The login session is over on the server.
    SessionEnded(LoginRequiredReason),
    /// Something else: the error goes to the caller and the session stays.
    Other,
}

fn refusal_of(code: &str) -> Refusal {
    match code {
        codes::TOKEN_EXPIRED | codes::INVALID_TOKEN => Refusal::RenewToken,
        codes::INVALID_DPOP_PROOF | codes::DPOP_REPLAY => Refusal::NewProof,
        codes::TOKEN_REVOKED | codes::REFRESH_TOKEN_REUSED => Refusal::SessionEnded(LoginRequiredReason::Revoked),
        // The token is bound to another device key: this phone's key was reset, so the session
        // can never be used from here again.
        codes::DPOP_KEY_MISMATCH => Refusal::SessionEnded(LoginRequiredReason::Revoked),
        codes::INVALID_GRANT => Refusal::SessionEnded(LoginRequiredReason::Expired),
        _ => Refusal::Other,
    }
}

/// In-memory identity state shared by every clone of the core.
#[derive(Default)]
pub(crate) struct IdentityState {
    vault: Vault,
    device_key: Mutex<Option<Arc<DeviceKey>>>,
    /// One refresh at a time: the others wait and then use its result.
    refresh_lock: tokio::sync::Mutex<()>,
}

/// The identity operations, borrowed from the core for one call.
pub(crate) struct Session<'a> {
    pub store: &'a Store,
    pub client: &'a ApiClient,
    pub keystore: &'a Arc<dyn Keystore>,
    pub state: &'a IdentityState,
}

fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish().into_bytes()
}

const FORM: &str = "application/x-www-form-urlencoded";

/// Equal without an early exit (the `state` is a secret of the login attempt): compares the
/// SHA-256 of both, so neither the length nor the first differing byte leaks through timing.
fn same_secret(a: &str, b: &str) -> bool {
    let sha = |s: &str| ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    let (da, db) = (sha(a), sha(b));
    da.as_ref().iter().zip(db.as_ref()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An error code from the outside, reduced to something safe to show and log.
fn safe_code(code: &str) -> String {
    code.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(40).collect()
}

impl Session<'_> {
    fn device_key(&self) -> Result<Arc<DeviceKey>> {
        let mut cached = self.state.device_key.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(key) = cached.as_ref() {
            return Ok(key.clone());
        }
        let key = Arc::new(DeviceKey::load(self.keystore.clone())?);
        *cached = Some(key.clone());
        Ok(key)
    }

    pub fn login_start(&self, redirect_uri: &str) -> Result<LoginRequest> {
        let redirect = Url::parse(redirect_uri)
            .map_err(|_| Error::InvalidConfig("login redirect URI is not a URI".into()))?;
        let verifier = pkce::new_verifier()?;
        let state = pkce::new_state()?;
        let key = self.state.vault.key_for_login(self.store, self.keystore.as_ref())?;
        let sealed = session::seal_verifier(&key, &verifier)?;
        self.store.write("starting a login", |tx| {
            tx.execute(
                "INSERT INTO pending_login(id, state, redirect_uri, sealed_verifier, created_at) \
                 VALUES (1, ?1, ?2, ?3, ?4) ON CONFLICT(id) DO UPDATE SET state = excluded.state, \
                 redirect_uri = excluded.redirect_uri, sealed_verifier = excluded.sealed_verifier, \
                 created_at = excluded.created_at",
                params![state, redirect.as_str(), sealed, now_millis()],
            )
            .map_err(Error::db("starting a login"))?;
            Ok(())
        })?;
        let mut url = self.client.url(wire::AUTHORIZE_PATH)?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", wire::APP_CLIENT_ID)
            .append_pair("redirect_uri", redirect.as_str())
            .append_pair("state", &state)
            .append_pair("code_challenge", &pkce::challenge(&verifier))
            .append_pair("code_challenge_method", "S256");
        Ok(LoginRequest { authorize_url: url.into(), state })
    }

    pub async fn login_finish(&self, callback_url: &str) -> Result<AccountInfo> {
        let pending: Option<(String, String, Vec<u8>)> = self.store.read("reading the pending login", |c| {
            c.query_row("SELECT state, redirect_uri, sealed_verifier FROM pending_login WHERE id = 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()
        })?;
        let (expected_state, redirect_uri, sealed_verifier) =
            pending.ok_or(Error::Login(LoginError::NoPendingLogin))?;
        let callback = Url::parse(callback_url).map_err(|_| Error::Login(LoginError::MalformedCallback))?;
        let expected = Url::parse(&redirect_uri).map_err(|_| Error::Login(LoginError::MalformedCallback))?;
        let same_target = callback.scheme() == expected.scheme()
            && callback.host_str() == expected.host_str()
            && callback.port() == expected.port()
            && callback.path() == expected.path();
        if !same_target {
            return Err(Error::Login(LoginError::RedirectMismatch));
        }
        let param = |name: &str| callback.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
        // A callback with another state is not ours (a forged or stale redirect): refuse it and
        // keep the pending login, which may still complete.
        let state = param("state").ok_or(Error::Login(LoginError::MalformedCallback))?;
        if !same_secret(&state, &expected_state) {
            return Err(Error::Login(LoginError::StateMismatch));
        }
        if let Some(error) = param("error") {
            self.clear_pending()?;
            return Err(Error::Login(LoginError::Denied(safe_code(&error))));
        }
        let code = param("code").ok_or(Error::Login(LoginError::MalformedCallback))?;
        let key = self.state.vault.key(self.store, self.keystore.as_ref())?;
        let verifier = session::open_verifier(&key, &sealed_verifier)?;
        let body = form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", &verifier),
            ("redirect_uri", &redirect_uri),
            ("client_id", wire::APP_CLIENT_ID),
        ]);
        let device = self.device_key()?;
        let auth = DpopAuth { key: &device, access_token: None, clock_offset_ms: self.client.clock_offset_ms() };
        let request = ApiRequest { method: Method::POST, path: wire::TOKEN_PATH, body: Some((body, FORM)), auth: Some(&auth), idempotency_key: None, headers: &[] };
        let response: TokenResponse = match self.client.send(request).await {
            Ok(r) => r,
            // The code is single-use: whatever the server refused, this attempt is over.
            Err(Error::ServerRejected { code, .. }) | Err(Error::Unauthorised { code, .. }) => {
                self.clear_pending()?;
                return Err(Error::Login(LoginError::CodeRejected(safe_code(&code))));
            }
            Err(other) => return Err(other),
        };
        if !response.token_type.eq_ignore_ascii_case("DPoP") {
            return Err(Error::BadData("server issued a token that is not DPoP-bound".into()));
        }
        let tokens = TokenSet { access_token: response.access_token, refresh_token: response.refresh_token };
        let sealed = session::seal_tokens(&key, &tokens)?;
        self.store.write("saving the login", |tx| {
            session::save_active(tx, &response.account, &sealed, response.expires_in)?;
            tx.execute("DELETE FROM pending_login", []).map_err(Error::db("saving the login"))?;
            Ok(())
        })?;
        tracing::info!("login completed");
        Ok(response.account)
    }

    fn clear_pending(&self) -> Result<()> {
        self.store.write("clearing the pending login", |tx| {
            tx.execute("DELETE FROM pending_login", []).map_err(Error::db("clearing the pending login"))?;
            Ok(())
        })
    }

    pub fn state(&self) -> Result<SessionState> {
        Ok(match session::load(self.store)? {
            None => SessionState::LoggedOut,
            Some(row) => match row.login_required {
                Some(reason) => SessionState::LoginRequired { account: row.account, reason },
                None => SessionState::Active { account: row.account, access_expires_at_ms: row.access_expires_at_ms },
            },
        })
    }

    /// The account id of an active session, if any.
    pub fn active_account(&self) -> Result<Option<String>> {
        Ok(match session::load(self.store)? {
            Some(row) if row.login_required.is_none() => Some(row.account.account_id),
            _ => None,
        })
    }

    /// A usable access token, refreshed first when it is due.
    async fn access_token(&self) -> Result<String> {
        let row = session::load(self.store)?
            .ok_or(Error::LoginRequired { reason: LoginRequiredReason::NotLoggedIn })?;
        if let Some(reason) = row.login_required {
            return Err(Error::LoginRequired { reason });
        }
        if now_millis() >= row.refresh_due_at_ms {
            return self.refresh(None).await;
        }
        let sealed = row.sealed_tokens.ok_or(Error::LoginRequired { reason: LoginRequiredReason::Expired })?;
        let key = self.state.vault.key(self.store, self.keystore.as_ref())?;
        Ok(session::open_tokens(&key, &sealed)?.access_token)
    }

    /// Rotates the refresh token and returns the new access token. Only one refresh runs at a
    /// time; a caller that waited finds the result of the one before it and uses that.
    /// `rejected` is the access token the server just refused, if that is why we refresh.
    async fn refresh(&self, rejected: Option<&str>) -> Result<String> {
        let _one_at_a_time = self.state.refresh_lock.lock().await;
        let row = session::load(self.store)?
            .ok_or(Error::LoginRequired { reason: LoginRequiredReason::NotLoggedIn })?;
        if let Some(reason) = row.login_required {
            return Err(Error::LoginRequired { reason });
        }
        let key = self.state.vault.key(self.store, self.keystore.as_ref())?;
        let sealed = row.sealed_tokens.ok_or(Error::LoginRequired { reason: LoginRequiredReason::Expired })?;
        let tokens = session::open_tokens(&key, &sealed)?;
        let already_renewed = match rejected {
            Some(rejected) => rejected != tokens.access_token,
            None => now_millis() < row.refresh_due_at_ms,
        };
        if already_renewed {
            return Ok(tokens.access_token);
        }
        let device = self.device_key()?;
        let body = form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &tokens.refresh_token),
            ("client_id", wire::APP_CLIENT_ID),
        ]);
        let mut reproved = false;
        let response: TokenResponse = loop {
            let auth = DpopAuth { key: &device, access_token: None, clock_offset_ms: self.client.clock_offset_ms() };
            let request = ApiRequest {
                method: Method::POST,
                path: wire::TOKEN_PATH,
                body: Some((body.clone(), FORM)),
                auth: Some(&auth),
                idempotency_key: None,
                headers: &[],
            };
            // A lost response leaves the old refresh token here; the server's grace window accepts
            // it once more from this device, so a bad network never logs the resident out.
            let error = match self.client.send(request).await {
                Ok(r) => break r,
                Err(e) => e,
            };
            let code = match &error {
                Error::Unauthorised { code, .. } | Error::ServerRejected { code, .. } => code.as_str(),
                _ => return Err(error),
            };
            match refusal_of(code) {
                Refusal::NewProof if !reproved => reproved = true,
                Refusal::SessionEnded(reason) => return Err(self.end_session(code, reason)?),
                // Anything else (a malformed request, a server fault) says nothing about the
                // session: the resident keeps it and the call fails with the server's reason.
                _ => return Err(error),
            }
        };
        let renewed = TokenSet { access_token: response.access_token, refresh_token: response.refresh_token };
        let sealed = session::seal_tokens(&key, &renewed)?;
        self.store.write("saving refreshed tokens", |tx| {
            session::save_active(tx, &response.account, &sealed, response.expires_in)
        })?;
        tracing::debug!("access token refreshed");
        Ok(renewed.access_token)
    }

    /// Sends a request as the logged-in resident. See the module documentation.
    pub async fn send_authorized<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<(Vec<u8>, &'static str)>,
        idempotency_key: Option<&str>,
    ) -> Result<T> {
        self.send_authorized_with(method, path, body, idempotency_key, &[]).await
    }

    /// [`Session::send_authorized`] with more request headers.
    pub async fn send_authorized_with<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<(Vec<u8>, &'static str)>,
        idempotency_key: Option<&str>,
        headers: &[(&'static str, String)],
    ) -> Result<T> {
        crate::sync::client::decode_json(&self.send_authorized_for_bytes(method, path, body, idempotency_key, headers).await?, path)
    }

    /// [`Session::send_authorized_with`] answering the success body's raw bytes (files).
    pub async fn send_authorized_for_bytes(
        &self,
        method: Method,
        path: &str,
        body: Option<(Vec<u8>, &'static str)>,
        idempotency_key: Option<&str>,
        headers: &[(&'static str, String)],
    ) -> Result<Vec<u8>> {
        let device = self.device_key()?;
        let mut token = self.access_token().await?;
        let (mut renewed, mut reproved) = (false, false);
        loop {
            let auth = DpopAuth { key: &device, access_token: Some(&token), clock_offset_ms: self.client.clock_offset_ms() };
            let request =
                ApiRequest { method: method.clone(), path, body: body.clone(), auth: Some(&auth), idempotency_key, headers };
            let (status, code) = match self.client.send_for_bytes(request).await {
                Err(Error::Unauthorised { status, code }) => (status, code),
                other => return other,
            };
            match refusal_of(&code) {
                // The access token is dead but the session need not be: the phone's clock ran
                // ahead of the server's view, or the server's token keys were replaced (an
                // operator invalidating every access token at once). Renew once and retry; a
                // refresh the server refuses ends the session there.
                Refusal::RenewToken if !renewed => {
                    renewed = true;
                    token = self.refresh(Some(&token)).await?;
                }
                Refusal::NewProof if !reproved => reproved = true,
                Refusal::SessionEnded(reason) => return Err(self.end_session(&code, reason)?),
                _ => return Err(Error::Unauthorised { status, code }),
            }
        }
    }

    /// Records that the server ended the session (the app shows the login screen; local data
    /// stays) and returns the error that says so.
    fn end_session(&self, code: &str, reason: LoginRequiredReason) -> Result<Error> {
        tracing::warn!(code = %safe_code(code), "session ended by the server; login required");
        session::mark_login_required(self.store, reason)?;
        Ok(Error::LoginRequired { reason })
    }

    /// Logs out: revokes the session on the server when it can be reached, and wipes the
    /// session on this device either way. Returns whether the server confirmed the revocation.
    pub async fn logout(&self) -> Result<bool> {
        let revoked = match self.active_account()? {
            None => false,
            Some(_) => match self.send_authorized::<serde_json::Value>(Method::POST, wire::LOGOUT_PATH, None, None).await {
                Ok(_) => true,
                // Already dead on the server: nothing left to revoke.
                Err(Error::LoginRequired { .. }) => true,
                Err(e) => {
                    tracing::warn!("logout could not reach the server ({e}); wiping the local session anyway");
                    false
                }
            },
        };
        session::wipe(self.store)?;
        self.state.vault.forget();
        tracing::info!(revoked_on_server = revoked, "logged out");
        Ok(revoked)
    }

    /// `GET /v1/me`: who the server says is logged in.
    pub async fn account(&self) -> Result<AccountInfo> {
        self.send_authorized(Method::GET, wire::ME_PATH, None, None).await
    }
}

/// Applies a change of the account feed.
pub(crate) fn apply_change(tx: &Transaction<'_>, change: &Change) -> Result<()> {
    match change.kind.as_str() {
        "account.profile" => {
            let account: AccountInfo = serde_json::from_value(change.data.clone())
                .map_err(|e| Error::BadData(format!("account.profile: {e}")))?;
            session::apply_profile(tx, change.seq, &account)
        }
        other => Err(Error::BadData(format!("unknown change kind {other}"))),
    }
}
