//! `POST /token`: the authorization code exchange (RFC 6749 §4.1.3, RFC 7636 §4.6), answering
//! with an ES256 ID token (OpenID Connect Core §3.1.3.3).

use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use ring::digest::{digest, SHA256};
use serde::Deserialize;
use serde_json::json;

use congdan_core::crypto::jws::b64url;

use super::{DemoResident, InternalError, Provider, SharedProvider, ACCESS_TOKEN_TTL_SECS};

/// The authentication context class sent as `acr`: what VNeID calls a level-2 account.
pub(super) const ACR_LEVEL2: &str = "vneid-level2";

/// The form of a token request. Every member is optional so that a missing one gives an
/// RFC 6749 `invalid_request` rather than an extractor failure.
#[derive(Debug, Default, Deserialize)]
pub(super) struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// An RFC 6749 §5.2 error response.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct TokenError {
    status: StatusCode,
    error: &'static str,
    description: &'static str,
}

impl TokenError {
    fn invalid_request(description: &'static str) -> TokenError {
        TokenError { status: StatusCode::BAD_REQUEST, error: "invalid_request", description }
    }
    fn invalid_grant(description: &'static str) -> TokenError {
        TokenError { status: StatusCode::BAD_REQUEST, error: "invalid_grant", description }
    }
    fn invalid_client(description: &'static str) -> TokenError {
        TokenError { status: StatusCode::UNAUTHORIZED, error: "invalid_client", description }
    }
    fn server_error(error: InternalError) -> TokenError {
        tracing::error!("dev-idp: {error}");
        TokenError { status: StatusCode::INTERNAL_SERVER_ERROR, error: "server_error", description: "internal error" }
    }
}

impl IntoResponse for TokenError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.error, "error_description": self.description});
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"dev-idp\""));
        }
        no_store(&mut response);
        response
    }
}

fn no_store(response: &mut Response) {
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// `POST /token`.
pub(super) async fn exchange_code(
    State(provider): State<SharedProvider>,
    headers: HeaderMap,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return TokenError::invalid_request("expected an application/x-www-form-urlencoded body").into_response();
    };
    match exchange(&provider, &headers, &form) {
        Ok(body) => {
            tracing::info!("dev-idp: code exchanged, ID token issued");
            let mut response = Json(body).into_response();
            no_store(&mut response);
            response
        }
        Err(error) => {
            tracing::info!("dev-idp: token request refused: {}", error.error);
            error.into_response()
        }
    }
}

fn exchange(provider: &Provider, headers: &HeaderMap, form: &TokenForm) -> Result<serde_json::Value, TokenError> {
    let client_id = authenticate_client(provider, headers, form)?;
    match form.grant_type.as_deref() {
        Some("authorization_code") => {}
        None => return Err(TokenError::invalid_request("grant_type is required")),
        Some(_) => {
            return Err(TokenError {
                status: StatusCode::BAD_REQUEST,
                error: "unsupported_grant_type",
                description: "only authorization_code",
            })
        }
    }
    let code = form.code.as_deref().ok_or(TokenError::invalid_request("code is required"))?;
    let redirect_uri = form.redirect_uri.as_deref().ok_or(TokenError::invalid_request("redirect_uri is required"))?;
    let verifier = form.code_verifier.as_deref().ok_or(TokenError::invalid_request("code_verifier is required"))?;
    if !is_valid_verifier(verifier) {
        return Err(TokenError::invalid_request("code_verifier must be 43 to 128 characters of [A-Za-z0-9-._~]"));
    }
    let redeemed = redeem_code(provider, code, &client_id, redirect_uri, verifier)?;
    let id_token = sign_id_token(provider, &redeemed).map_err(TokenError::server_error)?;
    let access_token = provider.random_token().map_err(TokenError::server_error)?;
    Ok(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": ACCESS_TOKEN_TTL_SECS,
        "id_token": id_token,
        "scope": "openid profile",
    }))
}

/// Client authentication (RFC 6749 §2.3.1): HTTP Basic or the `client_id`/`client_secret` form
/// members, not both. Returns the authenticated client id.
fn authenticate_client(provider: &Provider, headers: &HeaderMap, form: &TokenForm) -> Result<String, TokenError> {
    let (client_id, secret) = match headers.get(header::AUTHORIZATION) {
        Some(value) => {
            if form.client_secret.is_some() {
                return Err(TokenError::invalid_request("use one client authentication method, not two"));
            }
            let (id, secret) =
                parse_basic(value).ok_or(TokenError::invalid_client("malformed Basic authorization"))?;
            // A client_id in the form is allowed, but it must name the same client.
            if form.client_id.as_deref().is_some_and(|form_id| form_id != id) {
                return Err(TokenError::invalid_client("client_id does not match the authorization header"));
            }
            (id, secret)
        }
        None => match (&form.client_id, &form.client_secret) {
            (Some(id), Some(secret)) => (id.clone(), secret.clone()),
            _ => return Err(TokenError::invalid_client("client authentication is required")),
        },
    };
    let known_client = client_id == provider.config.client_id;
    let secret_ok = same_secret(secret.as_bytes(), provider.config.client_secret.as_bytes());
    if !(known_client && secret_ok) {
        return Err(TokenError::invalid_client("unknown client or wrong secret"));
    }
    Ok(client_id)
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))` → (id, secret).
fn parse_basic(value: &HeaderValue) -> Option<(String, String)> {
    let value = value.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = standard_base64_decode(encoded.trim())?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((form_urldecode(id)?, form_urldecode(secret)?))
}

/// Standard base64 (with `+`, `/` and padding, as Basic uses), mapped onto the base64url decoder.
fn standard_base64_decode(text: &str) -> Option<Vec<u8>> {
    if text.contains(['-', '_']) {
        return None;
    }
    let url_safe: String = text.trim_end_matches('=').replace('+', "-").replace('/', "_");
    congdan_core::crypto::jws::b64url_decode(&url_safe).ok()
}

/// Decodes `application/x-www-form-urlencoded` text: `+` is a space, `%XX` a byte.
fn form_urldecode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Constant-time equality of two secrets: their SHA-256 digests are compared byte by byte
/// without an early exit, so neither the content nor the length leaks through timing.
pub(super) fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    let given = digest(&SHA256, given);
    let expected = digest(&SHA256, expected);
    given.as_ref().iter().zip(expected.as_ref()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// RFC 7636 §4.1: 43 to 128 characters of `[A-Za-z0-9-._~]`.
fn is_valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// What a successfully redeemed code says about the login.
struct Redeemed {
    resident: &'static DemoResident,
    nonce: String,
    auth_time: u64,
}

/// Checks the code against the token request and marks it used. Any presentation by the right
/// client burns the code, even one that fails PKCE: a stolen code gets a single guess.
fn redeem_code(
    provider: &Provider,
    code: &str,
    client_id: &str,
    redirect_uri: &str,
    verifier: &str,
) -> Result<Redeemed, TokenError> {
    let mut codes = provider.codes();
    let issued = codes
        .get_mut(code, provider.clock.now())
        .ok_or(TokenError::invalid_grant("unknown or expired code"))?;
    if issued.request.client_id != client_id {
        return Err(TokenError::invalid_grant("code was issued to another client"));
    }
    if issued.used {
        return Err(TokenError::invalid_grant("code already used"));
    }
    issued.used = true;
    if issued.request.redirect_uri != redirect_uri {
        return Err(TokenError::invalid_grant("redirect_uri differs from the authorization request"));
    }
    let challenge = b64url(digest(&SHA256, verifier.as_bytes()).as_ref());
    if !same_secret(challenge.as_bytes(), issued.request.code_challenge.as_bytes()) {
        return Err(TokenError::invalid_grant("PKCE verification failed"));
    }
    Ok(Redeemed { resident: issued.resident, nonce: issued.request.nonce.clone(), auth_time: issued.auth_time })
}

/// Stable, opaque subject per user: base64url of the first 16 bytes of
/// SHA-256("congdan-dev-idp:" + username).
pub(super) fn subject_of(username: &str) -> String {
    let input = format!("congdan-dev-idp:{username}");
    b64url(&digest(&SHA256, input.as_bytes()).as_ref()[..16])
}

fn sign_id_token(provider: &Provider, redeemed: &Redeemed) -> Result<String, InternalError> {
    let now = provider.clock.now();
    let mut claims = json!({
        "iss": provider.config.issuer,
        "sub": subject_of(redeemed.resident.username),
        "aud": provider.config.client_id,
        "exp": now.saturating_add(provider.config.id_token_ttl_secs),
        "iat": now,
        "auth_time": redeemed.auth_time,
        "nonce": redeemed.nonce,
        "acr": ACR_LEVEL2,
        "name": redeemed.resident.display_name,
        "national_id": redeemed.resident.national_id,
    });
    if let Some(object) = claims.as_object_mut() {
        object.extend(super::attribute_claims(redeemed.resident.username));
    }
    provider.key.sign_jwt(&claims, &provider.rng).map_err(|e| InternalError::Signing(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_urldecoded() {
        // "congdan server:s3cr%t" encoded per RFC 6749 §2.3.1, then base64.
        let raw = "congdan+server:s3cr%25t";
        let encoded = congdan_core::crypto::jws::b64url(raw.as_bytes()).replace('-', "+").replace('_', "/");
        let header = HeaderValue::from_str(&format!("Basic {encoded}")).unwrap();
        assert_eq!(parse_basic(&header), Some(("congdan server".into(), "s3cr%t".into())));
        assert_eq!(parse_basic(&HeaderValue::from_static("Bearer abc")), None);
        assert_eq!(parse_basic(&HeaderValue::from_static("Basic !!!")), None);
        assert_eq!(form_urldecode("%zz"), None);
        assert_eq!(form_urldecode("%4"), None);
    }

    #[test]
    fn verifier_rules() {
        assert!(is_valid_verifier(&"a".repeat(43)));
        assert!(is_valid_verifier(&"a-._~".repeat(26)[..128]));
        assert!(!is_valid_verifier(&"a".repeat(42)));
        assert!(!is_valid_verifier(&"a".repeat(129)));
        assert!(!is_valid_verifier(&format!("{}+", "a".repeat(42))));
    }

    #[test]
    fn secrets_compare() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
    }
}
