//! `/v1/auth/*` and `/v1/me` (docs/identity.md). The phone is a public client of this server
//! (PKCE, DPoP); this server is a confidential client of the identity provider.

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use congdan_core::crypto::jws::{b64url, b64url_decode};
use congdan_core::identity::wire::{AccountInfo, TokenResponse, APP_CLIENT_ID, APP_REDIRECT_URI};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use url::Url;

use super::auth::{self, Authenticated};
use super::rejection::Rejection;
use super::store::{self, GrantError};
use super::tokens::{self, sha256, AccessClaims};
use super::{now_secs, Identity};
use crate::app::AppState;
use crate::db::now_millis;
use crate::error::ApiError;

/// A login transaction must come back from the provider within this time.
const LOGIN_TRANSACTION_MAX_AGE_MS: i64 = 10 * 60 * 1000;
/// The one-time code handed to the app lives this long.
const APP_CODE_TTL_MS: i64 = 60 * 1000;

fn invalid_request(message: &'static str) -> ApiError {
    ApiError::bad_request("invalid_request", message)
}

/// Query parameters whose every rejection is a typed `invalid_request`.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|_: QueryRejection| invalid_request("query string is malformed"))
    }
}

/// A form body (`application/x-www-form-urlencoded`) whose every rejection is typed.
pub struct ApiForm<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiForm<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        axum::extract::Form::<T>::from_request(req, state).await.map(|f| ApiForm(f.0)).map_err(|r| match r {
            FormRejection::InvalidFormContentType(_) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "expected Content-Type: application/x-www-form-urlencoded",
                "Định dạng dữ liệu không được hỗ trợ.",
            ),
            _ => invalid_request("form body is malformed"),
        })
    }
}

/// A `302` that no cache keeps.
fn redirect(location: &str) -> Result<Response, ApiError> {
    let value = HeaderValue::from_str(location).map_err(|_| ApiError::internal("redirect location is not a header value"))?;
    Ok((StatusCode::FOUND, [(header::LOCATION, value), (header::CACHE_CONTROL, HeaderValue::from_static("no-store"))]).into_response())
}

/// `uri` with `pairs` appended to its query.
fn with_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        query.append_pair(k, v);
    }
    let separator = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{separator}{}", query.finish())
}

/// The app's redirect URIs: its private-use scheme, loopback on any port (RFC 8252 §7.3), and
/// those configured.
pub fn is_allowed_app_redirect(identity: &Identity, uri: &str) -> bool {
    if uri == APP_REDIRECT_URI || identity.config.app_redirect_uris.iter().any(|u| u == uri) {
        return true;
    }
    let Ok(url) = Url::parse(uri) else { return false };
    url.scheme() == "http"
        && url.host_str() == Some("127.0.0.1")
        && url.port().is_some()
        && url.username().is_empty()
        && url.password().is_none()
        && url.query().is_none()
        && url.fragment().is_none()
        && uri.starts_with("http://127.0.0.1:")
}

fn is_valid_state(state: &str) -> bool {
    (1..=512).contains(&state.len()) && state.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

fn is_base64url(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A PKCE verifier: 43 to 128 unreserved characters (RFC 7636 §4.1).
fn is_valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

fn s256(verifier: &str) -> String {
    b64url(&sha256(verifier.as_bytes()))
}

fn random_text() -> Result<String, ApiError> {
    tokens::random_bytes::<32>().map(|b| b64url(&b)).map_err(ApiError::internal)
}

#[derive(Deserialize)]
pub struct AuthorizeParams {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

/// `GET /v1/auth/authorize`: checks the app's request, stores the login transaction and sends
/// the browser to the provider. Client and redirect URI are checked first: until both are known
/// good, nothing redirects anywhere.
pub async fn authorize(State(state): State<AppState>, ApiQuery(p): ApiQuery<AuthorizeParams>) -> Result<Response, ApiError> {
    let identity = &state.identity;
    if p.client_id.as_deref() != Some(APP_CLIENT_ID) {
        return Err(ApiError::bad_request("invalid_client", "unknown client_id"));
    }
    let redirect_uri = p.redirect_uri.filter(|u| is_allowed_app_redirect(identity, u))
        .ok_or_else(|| invalid_request("redirect_uri is not registered for this client"))?;
    if p.response_type.as_deref() != Some("code") {
        return Err(invalid_request("response_type must be code"));
    }
    let app_state = p.state.filter(|s| is_valid_state(s)).ok_or_else(|| invalid_request("state must be 1 to 512 printable ASCII characters"))?;
    if p.code_challenge_method.as_deref() != Some("S256") {
        return Err(invalid_request("code_challenge_method must be S256"));
    }
    let challenge = p
        .code_challenge
        .filter(|c| c.len() == 43 && is_base64url(c))
        .ok_or_else(|| invalid_request("code_challenge must be 43 characters of base64url"))?;

    let own_state = random_text()?;
    let nonce = random_text()?;
    let verifier = random_text()?;
    let location = identity
        .oidc
        .authorization_url(&own_state, &nonce, &s256(&verifier))
        .await
        .map_err(|e| ApiError::unavailable(format!("identity provider: {e}")))?;
    store::create_login_transaction(
        &state.db,
        store::NewLoginTransaction {
            id_hash: sha256(own_state.as_bytes()),
            app_state,
            app_challenge: challenge,
            app_redirect_uri: redirect_uri,
            nonce,
            pkce_verifier: verifier,
        },
    )
    .await?;
    redirect(&location)
}

#[derive(Deserialize)]
pub struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    /// RFC 9207: when the provider names itself, it must be ours (mix-up defence).
    iss: Option<String>,
}

/// `GET /v1/auth/callback`: the browser back from the provider.
pub async fn callback(State(state): State<AppState>, ApiQuery(p): ApiQuery<CallbackParams>) -> Result<Response, ApiError> {
    let identity = &state.identity;
    let invalid_state = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "login_state_invalid",
            "this login is unknown, already used or older than 10 minutes; start again",
            "Phiên đăng nhập đã hết hạn. Vui lòng đăng nhập lại.",
        )
    };
    let own_state = p.state.filter(|s| s.len() <= 512).ok_or_else(invalid_state)?;
    let transaction = store::take_login_transaction(&state.db, sha256(own_state.as_bytes()), LOGIN_TRANSACTION_MAX_AGE_MS)
        .await?
        .ok_or_else(invalid_state)?;
    let app_error = |error: &str| redirect(&with_query(&transaction.app_redirect_uri, &[("error", error), ("state", &transaction.app_state)]));
    if p.iss.as_deref().is_some_and(|iss| iss != identity.oidc.verifier().issuer) {
        tracing::warn!("login failed: the callback names another issuer");
        return app_error("access_denied");
    }
    let code = match (p.error, p.code) {
        (None, Some(code)) if !code.is_empty() && code.len() <= 2048 => code,
        (error, _) => {
            let error = error.unwrap_or_default();
            let shown = if error.len() <= 64 && error.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') { error.as_str() } else { "unreadable" };
            tracing::info!(provider_error = shown, "login not completed at the identity provider");
            return app_error("access_denied");
        }
    };
    let verified = match identity.oidc.finish_login(&code, &transaction.pkce_verifier, &transaction.nonce).await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!("login failed: {e}");
            return app_error(if e.is_server_error() { "server_error" } else { "access_denied" });
        }
    };
    let roles = identity.roles_for(&verified.national_id);
    let (app_code, code_hash) = tokens::new_secret().map_err(ApiError::internal)?;
    let account_id = store::complete_login(
        &state.db,
        verified.national_id,
        verified.display_name,
        roles,
        &verified.attributes,
        store::NewAppCode {
            hash: code_hash,
            challenge: transaction.app_challenge.clone(),
            redirect_uri: transaction.app_redirect_uri.clone(),
            expires_at_ms: now_millis() + APP_CODE_TTL_MS,
        },
    )
    .await?;
    tracing::info!(account = %account_id, "login completed");
    redirect(&with_query(&transaction.app_redirect_uri, &[("code", &app_code), ("state", &transaction.app_state)]))
}

#[derive(Deserialize)]
pub struct TokenParams {
    grant_type: Option<String>,
    client_id: Option<String>,
    code: Option<String>,
    code_verifier: Option<String>,
    redirect_uri: Option<String>,
    refresh_token: Option<String>,
}

fn grant_rejection(e: GrantError) -> Rejection {
    match e {
        GrantError::InvalidGrant => Rejection::from(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "the code or refresh token is unknown, expired, used or revoked",
            "Phiên đăng nhập đã hết hạn. Vui lòng đăng nhập lại.",
        )),
        GrantError::PkceMismatch => Rejection::from(ApiError::bad_request("pkce_mismatch", "code_verifier does not match the code_challenge")),
        GrantError::KeyMismatch => Rejection::auth(super::AuthFailure::DpopKeyMismatch, None),
        GrantError::Reused => Rejection::from(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "refresh_token_reused",
            "this refresh token was already used; the login session is revoked",
            "Phiên đăng nhập đã bị thu hồi. Vui lòng đăng nhập lại.",
        )),
    }
}

/// `POST /v1/auth/token`: the authorization code and refresh token grants, with a DPoP proof.
pub async fn token(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    ApiForm(p): ApiForm<TokenParams>,
) -> Result<Response, Rejection> {
    let identity = &state.identity;
    let grant = p.grant_type.as_deref().unwrap_or_default();
    if !matches!(grant, "authorization_code" | "refresh_token") {
        return Err(ApiError::bad_request("unsupported_grant_type", "grant_type must be authorization_code or refresh_token").into());
    }
    if p.client_id.as_deref() != Some(APP_CLIENT_ID) {
        return Err(ApiError::bad_request("invalid_client", "unknown client_id").into());
    }
    let now = now_secs();
    let proof = auth::check_proof(identity, &method, "/v1/auth/token", &headers, None, None, now)?;
    auth::record_proof(&state.db, &proof, None, now).await?;
    let jkt = b64url(&proof.jkt);
    let (refresh_token, refresh_hash) = tokens::new_secret().map_err(ApiError::internal)?;
    let refresh_ttl_ms = identity.config.refresh_token_ttl_secs as i64 * 1000;
    let granted = if grant == "authorization_code" {
        let code = p.code.filter(|c| !c.is_empty() && c.len() <= 512).ok_or_else(|| invalid_request("code is required"))?;
        let verifier = p.code_verifier.filter(|v| is_valid_verifier(v)).ok_or_else(|| invalid_request("code_verifier must be 43 to 128 characters"))?;
        let redirect_uri = p.redirect_uri.ok_or_else(|| invalid_request("redirect_uri is required"))?;
        store::redeem_code(
            &state.db,
            store::CodeRedemption {
                code_hash: sha256(code.as_bytes()),
                verifier_challenge: s256(&verifier),
                redirect_uri,
                jkt,
                public_jwk: proof.jwk_json.clone(),
                refresh_hash,
                refresh_ttl_ms,
            },
        )
        .await?
    } else {
        let presented = p
            .refresh_token
            .filter(|t| !t.is_empty() && t.len() <= 512 && b64url_decode(t).is_ok())
            .ok_or_else(|| invalid_request("refresh_token is required"))?;
        store::refresh(
            &state.db,
            store::RefreshRequest {
                hash: sha256(presented.as_bytes()),
                jkt,
                new_hash: refresh_hash,
                grace_ms: identity.config.refresh_grace_secs as i64 * 1000,
                ttl_ms: refresh_ttl_ms,
            },
        )
        .await?
    };
    let granted = granted.map_err(|e| {
        tracing::info!(grant, outcome = ?e, "token request refused");
        grant_rejection(e)
    })?;
    let account = identity.account_info(&granted.account);
    let ttl = identity.config.access_token_ttl_secs;
    let claims = AccessClaims {
        account: account.account_id.clone(),
        roles: account.roles.clone(),
        jkt: proof.jkt,
        family: granted.family_id,
        iat: now,
        exp: now + ttl,
        jti: tokens::random_bytes::<16>().map_err(ApiError::internal)?,
    };
    let ring = identity.keys.for_signing().await?;
    let access_token = tokens::issue(&claims, ring.signer().as_ref()).map_err(ApiError::internal)?;
    let body = TokenResponse { access_token, token_type: "DPoP".into(), expires_in: ttl, refresh_token, account };
    Ok((
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store")), (header::PRAGMA, HeaderValue::from_static("no-cache"))],
        Json(body),
    )
        .into_response())
}

/// `POST /v1/auth/logout`: ends the caller's login session (refresh and access tokens at once).
pub async fn logout(State(state): State<AppState>, caller: Authenticated) -> Result<StatusCode, Rejection> {
    store::revoke_family(&state.db, &caller.family, "logout").await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/me`: the caller's account.
pub async fn me(State(state): State<AppState>, caller: Authenticated) -> Result<Json<AccountInfo>, Rejection> {
    let account = store::account(&state.db, &caller.account_id).await?;
    Ok(Json(state.identity.account_info(&account)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_is_appended_and_encoded() {
        assert_eq!(with_query("vn.congdan.app:/oauth2redirect", &[("code", "a b"), ("state", "x&y")]), "vn.congdan.app:/oauth2redirect?code=a+b&state=x%26y");
        assert_eq!(with_query("http://127.0.0.1:9/cb?k=1", &[("error", "access_denied")]), "http://127.0.0.1:9/cb?k=1&error=access_denied");
    }

    #[test]
    fn state_and_verifier_rules() {
        assert!(is_valid_state("abc ~"));
        assert!(!is_valid_state(""));
        assert!(!is_valid_state(&"a".repeat(513)));
        assert!(!is_valid_state("tab\there"));
        assert!(is_valid_verifier(&"a".repeat(43)));
        assert!(!is_valid_verifier(&"a".repeat(42)));
        assert!(!is_valid_verifier(&"a+".repeat(30)));
        assert_eq!(s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }
}
