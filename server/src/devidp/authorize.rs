//! `GET /authorize` (check the request, show the form) and `POST /authorize` (the form).

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use serde::Deserialize;

use super::html::{self, LoginProblem};
use super::{
    DemoResident, InternalError, Provider, SharedProvider, CODE_TTL_SECS, DEMO_PASSWORD, DEMO_RESIDENTS,
    LOGIN_REQUEST_TTL_SECS, MAX_LOGIN_ATTEMPTS,
};

/// The longest `state` and `nonce` accepted (the congdan client sends 43 characters).
const MAX_OPAQUE_PARAM_LEN: usize = 512;

/// The query of `GET /authorize`. Every member is optional so that a missing one is reported
/// the OAuth way (a redirect with `invalid_request`) rather than as an extractor failure.
#[derive(Debug, Deserialize)]
pub(super) struct AuthorizeQuery {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

/// What a valid authorization request carries forward to the code.
#[derive(Debug, Clone)]
pub(super) struct AuthorizeRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub nonce: String,
    pub code_challenge: String,
}

/// A login form on screen, waiting for the resident.
pub(super) struct PendingLogin {
    request: AuthorizeRequest,
    failed_attempts: u8,
}

/// A code handed to the client, waiting to be exchanged at the token endpoint.
pub(super) struct IssuedCode {
    pub request: AuthorizeRequest,
    pub resident: &'static DemoResident,
    pub auth_time: u64,
    /// Set at the first exchange: a code is redeemable once, and a second presentation is
    /// recognised as a replay (RFC 6749 §4.1.2) rather than as an unknown code.
    pub used: bool,
}

/// An authorization error sent back to the client by redirect (RFC 6749 §4.1.2.1).
#[derive(Debug)]
struct RedirectError {
    code: &'static str,
    description: &'static str,
}

fn invalid_request(description: &'static str) -> RedirectError {
    RedirectError { code: "invalid_request", description }
}

/// `GET /authorize`.
pub(super) async fn show_login(
    State(provider): State<SharedProvider>,
    query: Result<Query<AuthorizeQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return html::error_page(
            StatusCode::BAD_REQUEST,
            "Yêu cầu đăng nhập không hợp lệ.",
            "The sign-in request is malformed.",
        );
    };
    let Some(redirect_uri) = registered_redirect(&provider, &query) else {
        // Never redirect to a URI nobody registered: that would make us an open redirector.
        return html::error_page(
            StatusCode::BAD_REQUEST,
            "Ứng dụng yêu cầu đăng nhập chưa được đăng ký, hoặc địa chỉ quay lại không đúng.",
            "The application asking you to sign in is not registered, or its return address is wrong.",
        );
    };
    // The state goes back as received, unless it is too long to be a real one.
    let state = query.state.clone().filter(|s| s.len() <= MAX_OPAQUE_PARAM_LEN);
    let request = match check_request(&query, &redirect_uri, state.clone()) {
        Ok(request) => request,
        Err(error) => return redirect_with_error(&provider, &redirect_uri, error, state.as_deref()),
    };
    match start_login(&provider, request.clone()) {
        Ok(request_id) => html::login_page(&provider.endpoint("/authorize"), &request_id, "", None, DEMO_RESIDENTS),
        Err(StartError::Full) => redirect_with_error(
            &provider,
            &request.redirect_uri,
            RedirectError { code: "temporarily_unavailable", description: "too many pending logins" },
            request.state.as_deref(),
        ),
        Err(StartError::Internal(error)) => internal_error_page(error),
    }
}

/// The redirect URI, if the client is the registered one and the URI is registered exactly.
fn registered_redirect(provider: &Provider, query: &AuthorizeQuery) -> Option<String> {
    let client_id = query.client_id.as_deref()?;
    let redirect_uri = query.redirect_uri.as_deref()?;
    let known_client = client_id == provider.config.client_id;
    let known_uri = provider.config.redirect_uris.iter().any(|registered| registered == redirect_uri);
    (known_client && known_uri).then(|| redirect_uri.to_string())
}

/// Checks everything but the client and the redirect URI (already checked).
fn check_request(
    query: &AuthorizeQuery,
    redirect_uri: &str,
    state: Option<String>,
) -> Result<AuthorizeRequest, RedirectError> {
    match query.response_type.as_deref() {
        Some("code") => {}
        None => return Err(invalid_request("response_type is required")),
        Some(_) => {
            return Err(RedirectError { code: "unsupported_response_type", description: "only response_type=code" })
        }
    }
    let has_openid = query.scope.as_deref().is_some_and(|scope| scope.split(' ').any(|s| s == "openid"));
    if !has_openid {
        return Err(invalid_request("scope must include openid"));
    }
    if query.state.as_deref().is_some_and(|s| s.len() > MAX_OPAQUE_PARAM_LEN) {
        return Err(invalid_request("state is too long"));
    }
    let nonce = match query.nonce.as_deref() {
        Some(nonce) if !nonce.is_empty() && nonce.len() <= MAX_OPAQUE_PARAM_LEN => nonce.to_string(),
        _ => return Err(invalid_request("nonce is required (1 to 512 characters)")),
    };
    if query.code_challenge_method.as_deref() != Some("S256") {
        return Err(invalid_request("PKCE with code_challenge_method=S256 is required"));
    }
    let code_challenge = match query.code_challenge.as_deref() {
        Some(challenge) if is_s256_challenge(challenge) => challenge.to_string(),
        _ => return Err(invalid_request("code_challenge must be 43 base64url characters")),
    };
    let client_id = query.client_id.clone().unwrap_or_default();
    Ok(AuthorizeRequest { client_id, redirect_uri: redirect_uri.to_string(), state, nonce, code_challenge })
}

/// An S256 challenge is a SHA-256 in unpadded base64url: exactly 43 characters.
fn is_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43 && challenge.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

enum StartError {
    Full,
    Internal(InternalError),
}

/// Stores the request under a fresh random id; the id goes into the form.
fn start_login(provider: &Provider, request: AuthorizeRequest) -> Result<String, StartError> {
    let request_id = provider.random_token().map_err(StartError::Internal)?;
    let pending = PendingLogin { request, failed_attempts: 0 };
    provider
        .logins()
        .insert(request_id.clone(), pending, provider.clock.now(), LOGIN_REQUEST_TTL_SECS)
        .map_err(|_| StartError::Full)?;
    Ok(request_id)
}

/// The form posted by the login page.
#[derive(Debug, Deserialize)]
pub(super) struct LoginForm {
    request_id: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    /// `login` (or absent, e.g. Enter pressed in a field) or `deny`.
    #[serde(default)]
    action: Option<String>,
}

/// What the submitted form leads to.
enum LoginOutcome {
    UnknownRequest,
    Denied(AuthorizeRequest),
    WrongPassword { attempts_left: u8 },
    TooManyAttempts(AuthorizeRequest),
    LoggedIn(AuthorizeRequest, &'static DemoResident),
}

/// `POST /authorize`.
pub(super) async fn submit_login(
    State(provider): State<SharedProvider>,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return html::error_page(StatusCode::BAD_REQUEST, "Biểu mẫu không hợp lệ.", "The form is malformed.");
    };
    match decide_login(&provider, &form) {
        LoginOutcome::UnknownRequest => html::error_page(
            StatusCode::BAD_REQUEST,
            "Yêu cầu đăng nhập đã hết hạn hoặc không hợp lệ. Vui lòng quay lại ứng dụng và thử lại.",
            "This sign-in request has expired or is not valid. Please go back to the app and try again.",
        ),
        LoginOutcome::Denied(request) => {
            tracing::info!("dev-idp: login cancelled by the user");
            let error = RedirectError { code: "access_denied", description: "the user cancelled the login" };
            redirect_with_error(&provider, &request.redirect_uri, error, request.state.as_deref())
        }
        LoginOutcome::WrongPassword { attempts_left } => {
            tracing::info!("dev-idp: wrong username or password");
            let problem = Some(LoginProblem { attempts_left });
            html::login_page(&provider.endpoint("/authorize"), &form.request_id, &form.username, problem, DEMO_RESIDENTS)
        }
        LoginOutcome::TooManyAttempts(request) => {
            tracing::info!("dev-idp: too many wrong passwords, login request dropped");
            let error = RedirectError { code: "access_denied", description: "too many failed login attempts" };
            redirect_with_error(&provider, &request.redirect_uri, error, request.state.as_deref())
        }
        LoginOutcome::LoggedIn(request, resident) => issue_code(&provider, request, resident),
    }
}

/// Looks the request up and applies the form to it, all under one lock so that a request
/// cannot be used twice by racing posts.
fn decide_login(provider: &Provider, form: &LoginForm) -> LoginOutcome {
    let now = provider.clock.now();
    let mut logins = provider.logins();
    let Some(pending) = logins.get_mut(&form.request_id, now) else {
        return LoginOutcome::UnknownRequest;
    };
    if form.action.as_deref() == Some("deny") {
        let request = pending.request.clone();
        logins.remove(&form.request_id, now);
        return LoginOutcome::Denied(request);
    }
    if let Some(resident) = check_password(&form.username, &form.password) {
        let request = pending.request.clone();
        logins.remove(&form.request_id, now);
        return LoginOutcome::LoggedIn(request, resident);
    }
    pending.failed_attempts += 1;
    if pending.failed_attempts >= MAX_LOGIN_ATTEMPTS {
        let request = pending.request.clone();
        logins.remove(&form.request_id, now);
        return LoginOutcome::TooManyAttempts(request);
    }
    LoginOutcome::WrongPassword { attempts_left: MAX_LOGIN_ATTEMPTS - pending.failed_attempts }
}

/// The demo resident with this username and password. Usernames are matched without regard to
/// case or surrounding spaces (phone keyboards capitalise the first letter).
fn check_password(username: &str, password: &str) -> Option<&'static DemoResident> {
    let username = username.trim().to_lowercase();
    let resident = DEMO_RESIDENTS.iter().find(|r| r.username == username)?;
    super::token::same_secret(password.as_bytes(), DEMO_PASSWORD.as_bytes()).then_some(resident)
}

fn issue_code(provider: &Provider, request: AuthorizeRequest, resident: &'static DemoResident) -> Response {
    let code = match provider.random_token() {
        Ok(code) => code,
        Err(error) => return internal_error_page(error),
    };
    let now = provider.clock.now();
    let redirect_uri = request.redirect_uri.clone();
    let state = request.state.clone();
    let issued = IssuedCode { request, resident, auth_time: now, used: false };
    if provider.codes().insert(code.clone(), issued, now, CODE_TTL_SECS).is_err() {
        let error = RedirectError { code: "temporarily_unavailable", description: "too many pending codes" };
        return redirect_with_error(provider, &redirect_uri, error, state.as_deref());
    }
    tracing::info!("dev-idp: login ok, code issued");
    let mut params = vec![("code", code.as_str())];
    params.extend(state.as_deref().map(|s| ("state", s)));
    params.push(("iss", provider.config.issuer.as_str()));
    redirect_to(&redirect_uri, &params)
}

fn redirect_with_error(provider: &Provider, redirect_uri: &str, error: RedirectError, state: Option<&str>) -> Response {
    let mut params = vec![("error", error.code), ("error_description", error.description)];
    params.extend(state.map(|s| ("state", s)));
    params.push(("iss", provider.config.issuer.as_str()));
    redirect_to(redirect_uri, &params)
}

/// `302 Found` to `redirect_uri` with `params` added to its query (RFC 6749 §4.1.2: the
/// registered URI's own query is kept).
fn redirect_to(redirect_uri: &str, params: &[(&str, &str)]) -> Response {
    let mut location = redirect_uri.to_string();
    let mut separator = if redirect_uri.contains('?') { '&' } else { '?' };
    for (name, value) in params {
        location.push(separator);
        location.push_str(&form_urlencode(name));
        location.push('=');
        location.push_str(&form_urlencode(value));
        separator = '&';
    }
    let Ok(location) = HeaderValue::from_str(&location) else {
        // Only reachable with a registered URI holding characters invalid in a header.
        return html::error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Địa chỉ quay lại được cấu hình sai.",
            "The configured return address is invalid.",
        );
    };
    let mut response = StatusCode::FOUND.into_response();
    response.headers_mut().insert(header::LOCATION, location);
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub(super) fn form_urlencode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn internal_error_page(error: InternalError) -> Response {
    tracing::error!("dev-idp: {error}");
    html::error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Lỗi máy chủ. Vui lòng thử lại sau.",
        "Server error. Please try again later.",
    )
}
