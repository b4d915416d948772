//! The built-in development OpenID Connect provider, mounted at `/dev-idp`.
//!
//! In production the congdan server is a confidential OpenID Connect client of the national
//! identity provider (VNeID). Locally and in tests there is no VNeID, so this module stands in for
//! it: a small but standards-speaking provider (authorization code flow, PKCE S256 required,
//! ES256-signed ID tokens, discovery and JWKS). The server's OIDC client talks to it over real
//! HTTP exactly as it would talk to VNeID, so the whole login path is exercised, not a shortcut.
//!
//! What it is not: a production provider. Its users are the fixed [`DEMO_RESIDENTS`] (password
//! [`DEMO_PASSWORD`]), its signing key is generated at start-up and never stored, and its pending
//! logins and codes live in memory. That makes it **single-instance**: behind a load balancer
//! with several server instances a code issued by one instance is unknown to the others. The
//! maps are bounded and pruned on every access, so it cannot grow without limit.
//!
//! It still keeps production habits: codes, secrets, tokens and national ID numbers are never
//! logged (nor usernames), everything echoed into a page is HTML-escaped, an unregistered
//! `redirect_uri` is never redirected to (RFC 6749 §4.1.2.1), and client secrets are compared in
//! constant time.
//!
//! Endpoints, relative to the nest point: `GET /.well-known/openid-configuration`, `GET /jwks`,
//! `GET /authorize` (checks the request, shows the login form), `POST /authorize` (the form),
//! `POST /token` (code exchange). See `docs/identity.md`.

mod authorize;
mod html;
mod keys;
mod store;
mod token;

#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use ring::rand::{SecureRandom, SystemRandom};

use congdan_core::crypto::jws::b64url;

use self::authorize::{IssuedCode, PendingLogin};
use self::keys::ProviderKey;
use self::store::ExpiringMap;

/// How the congdan server (the one registered client) and the provider are set up.
#[derive(Clone)]
pub struct DevIdpConfig {
    /// The provider's issuer URL, e.g. `http://127.0.0.1:8080/dev-idp` (no trailing slash; one is
    /// trimmed if given). Every endpoint URL in the discovery document is derived from it.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    /// Allowed redirect URIs, compared exactly (no prefix or pattern matching).
    pub redirect_uris: Vec<String>,
    /// Lifetime of an ID token (the `exp` claim), in seconds. 300 is a good default.
    pub id_token_ttl_secs: u64,
}

impl std::fmt::Debug for DevIdpConfig {
    // Written by hand so that the client secret never lands in a log through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevIdpConfig")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("redirect_uris", &self.redirect_uris)
            .field("id_token_ttl_secs", &self.id_token_ttl_secs)
            .finish()
    }
}

/// One of the fixed demo users the provider knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoResident {
    pub username: &'static str,
    pub display_name: &'static str,
    /// The 12-digit national ID number, sent as the `national_id` claim.
    pub national_id: &'static str,
    /// The role the embedded default configuration grants this person (by national ID), if any.
    /// The provider itself does not send roles: roles come from server configuration only.
    pub role: Option<&'static str>,
}

/// The password of every demo resident.
pub const DEMO_PASSWORD: &str = "demo";

/// The demo residents of `docs/identity.md`.
pub const DEMO_RESIDENTS: &[DemoResident] = &[
    DemoResident { username: "lan", display_name: "Nguyễn Thị Lan", national_id: "079165012345", role: None },
    DemoResident { username: "minh", display_name: "Trần Văn Minh", national_id: "079204001234", role: None },
    DemoResident {
        username: "staff",
        display_name: "Lê Văn Hùng",
        national_id: "079088004321",
        role: Some("agency:CONG-AN-PHUONG-XA"),
    },
    DemoResident {
        username: "hotline",
        display_name: "Võ Thị Mai",
        national_id: "079190007777",
        role: Some("agency:TT-1022"),
    },
    DemoResident {
        username: "operator",
        display_name: "Phạm Thu Hà",
        national_id: "079192006789",
        role: Some("operator:METRO-L1"),
    },
    // Riders with verified attributes (see DEMO_ATTRIBUTES): transit concessions.
    DemoResident { username: "ba", display_name: "Đặng Văn Ba", national_id: "079050001950", role: None },
    DemoResident { username: "an", display_name: "Huỳnh Thị An", national_id: "079305002468", role: None },
    DemoResident { username: "hoa", display_name: "Bùi Thị Hoa", national_id: "079185003579", role: None },
];

/// Identity attributes the provider vouches for, beyond name and number (server/src/identity/
/// attributes.rs reads them): sent as ID token claims for the residents listed here only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoAttributes {
    pub username: &'static str,
    /// `birthdate` (`YYYY-MM-DD`).
    pub birthdate: Option<&'static str>,
    /// `congdan:student_until`: the last day of a verified student status.
    pub student_until: Option<&'static str>,
    /// `congdan:disability`: a verified disability certificate.
    pub disability: bool,
}

/// Ba is 60+ (born 1950), An a student, Hoa has a verified disability.
pub const DEMO_ATTRIBUTES: &[DemoAttributes] = &[
    DemoAttributes { username: "ba", birthdate: Some("1950-05-19"), student_until: None, disability: false },
    DemoAttributes { username: "an", birthdate: Some("2005-09-02"), student_until: Some("2030-06-30"), disability: false },
    DemoAttributes { username: "hoa", birthdate: Some("1985-03-08"), student_until: None, disability: true },
];

/// The attribute claims of `username` (empty for residents without verified attributes).
pub(crate) fn attribute_claims(username: &str) -> serde_json::Map<String, serde_json::Value> {
    let mut claims = serde_json::Map::new();
    if let Some(a) = DEMO_ATTRIBUTES.iter().find(|a| a.username == username) {
        if let Some(b) = a.birthdate {
            claims.insert("birthdate".into(), b.into());
        }
        if let Some(s) = a.student_until {
            claims.insert("congdan:student_until".into(), s.into());
        }
        if a.disability {
            claims.insert("congdan:disability".into(), true.into());
        }
    }
    claims
}

/// How long a login request (the form shown by `GET /authorize`) stays usable.
const LOGIN_REQUEST_TTL_SECS: u64 = 600;
/// How long an authorization code stays redeemable (RFC 6749 §4.1.2 recommends at most 10 min).
const CODE_TTL_SECS: u64 = 60;
/// Lifetime announced for the (opaque, unused) access token.
const ACCESS_TOKEN_TTL_SECS: u64 = 300;
/// Wrong passwords allowed on one login request before it is dropped.
const MAX_LOGIN_ATTEMPTS: u8 = 5;
/// Bound on each in-memory map, so a flood of requests cannot exhaust memory.
const MAX_PENDING: usize = 10_000;

/// The time source, in seconds since the Unix epoch. Tests swap in a clock they can move.
#[derive(Clone)]
pub(crate) struct Clock(Arc<dyn Fn() -> u64 + Send + Sync>);

impl Clock {
    pub(crate) fn system() -> Clock {
        Clock(Arc::new(|| SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)))
    }

    #[cfg(test)]
    pub(crate) fn from_fn(now: impl Fn() -> u64 + Send + Sync + 'static) -> Clock {
        Clock(Arc::new(now))
    }

    fn now(&self) -> u64 {
        (self.0)()
    }
}

/// The provider's state, shared by all handlers.
struct Provider {
    config: DevIdpConfig,
    key: ProviderKey,
    rng: SystemRandom,
    clock: Clock,
    logins: Mutex<ExpiringMap<PendingLogin>>,
    codes: Mutex<ExpiringMap<IssuedCode>>,
}

type SharedProvider = Arc<Provider>;

/// A failure inside the provider itself (not the caller's fault): the system random generator or
/// the signer failed. Answered with a 500 (`server_error`).
#[derive(Debug, thiserror::Error)]
enum InternalError {
    #[error("random generator failed")]
    Random,
    #[error("ID token signing failed: {0}")]
    Signing(String),
}

impl Provider {
    fn endpoint(&self, path: &str) -> String {
        format!("{}{}", self.config.issuer, path)
    }

    /// 32 random bytes in base64url: request ids, codes and access tokens.
    fn random_token(&self) -> Result<String, InternalError> {
        let mut bytes = [0u8; 32];
        self.rng.fill(&mut bytes).map_err(|_| InternalError::Random)?;
        Ok(b64url(&bytes))
    }

    fn logins(&self) -> MutexGuard<'_, ExpiringMap<PendingLogin>> {
        // A poisoned lock only means another request panicked mid-update; the map is still a
        // valid map, so keep serving rather than failing every later login.
        self.logins.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn codes(&self) -> MutexGuard<'_, ExpiringMap<IssuedCode>> {
        self.codes.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The provider's routes, with its own state inside, ready for `Router::nest("/dev-idp", ...)`.
///
/// A fresh ES256 key is generated on every call, so ID tokens from an earlier run do not verify.
///
/// The provider's state is already inside, so the router fits any outer state: it is a
/// `Router<()>` where that is asked for, and nests directly into a `Router<AppState>`.
pub fn router<S>(config: DevIdpConfig) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router_with_clock(config, Clock::system())
}

pub(crate) fn router_with_clock<S>(mut config: DevIdpConfig, clock: Clock) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    while config.issuer.ends_with('/') {
        config.issuer.pop();
    }
    let rng = SystemRandom::new();
    // Only fails if the operating system's random generator does; nothing can work then, and
    // this runs once at start-up, never on a request.
    let key = ProviderKey::generate(&rng).expect("dev-idp: generating the ES256 key failed");
    let provider = Provider {
        config,
        key,
        rng,
        clock,
        logins: Mutex::new(ExpiringMap::new(MAX_PENDING)),
        codes: Mutex::new(ExpiringMap::new(MAX_PENDING)),
    };
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/authorize", get(authorize::show_login).post(authorize::submit_login))
        .route("/token", axum::routing::post(token::exchange_code))
        .with_state(Arc::new(provider))
}

/// `GET /.well-known/openid-configuration` (OpenID Connect Discovery 1.0 §3).
async fn discovery(State(provider): State<SharedProvider>) -> Response {
    Json(serde_json::json!({
        "issuer": provider.config.issuer,
        "authorization_endpoint": provider.endpoint("/authorize"),
        "token_endpoint": provider.endpoint("/token"),
        "jwks_uri": provider.endpoint("/jwks"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": ["openid", "profile"],
        "claims_supported": [
            "sub", "name", "national_id", "iss", "aud", "exp", "iat", "nonce", "auth_time", "acr",
            "birthdate", "congdan:student_until", "congdan:disability"
        ],
        "acr_values_supported": [token::ACR_LEVEL2],
        "authorization_response_iss_parameter_supported": true,
    }))
    .into_response()
}

/// `GET /jwks`: the provider's one public key.
async fn jwks(State(provider): State<SharedProvider>) -> Response {
    Json(provider.key.jwk_set()).into_response()
}
