//! Identity, server side (docs/identity.md): login through an OpenID Connect provider, access
//! tokens (signed statements) and rotating refresh tokens bound to the device key with DPoP, the
//! authentication extractor every protected route uses, and roles from configuration.
//!
//! - [`oidc`]: the relying party (discovery, JWKS, code exchange, ID token checks);
//! - [`routes`]: `/v1/auth/*` and `/v1/me`;
//! - [`auth`]: the [`auth::Authenticated`] extractor (token, DPoP proof, replay, revocation);
//! - [`tokens`], [`keys`]: access and refresh tokens, the key ring in the database;
//! - [`dpop`]: proof checks and stateless nonces; [`store`]: storage for both databases;
//! - [`ratelimit`]: the per-address brake on the login endpoints.

pub mod attributes;
pub mod auth;
pub mod client_address;
pub mod credential;
pub mod device_keys;
pub mod dpop;
pub mod keys;
pub mod oidc;
pub mod ratelimit;
pub mod rejection;
pub mod routes;
pub mod store;
pub mod tokens;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use congdan_core::identity::national_id;
use congdan_core::identity::wire::AccountInfo;
use url::Url;

use crate::config::{IdentityConfig, OidcProviderConfig};
use crate::db::Db;
use crate::devidp::{self, DevIdpConfig, DEMO_RESIDENTS};

pub use auth::Authenticated;
pub use rejection::{AuthFailure, Rejection};

/// The provider's client id for this server when it is its own (development) provider.
pub const DEV_CLIENT_ID: &str = "congdan-server";
pub const CALLBACK_PATH: &str = "/v1/auth/callback";
/// The key ring is re-read, and expired records deleted, this often.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(60);

pub fn now_secs() -> u64 {
    (crate::db::now_millis() / 1000).max(0) as u64
}

/// Everything identity needs at request time; built once the bound address is known.
pub struct Identity {
    pub config: IdentityConfig,
    pub public_url: Url,
    pub keys: Arc<keys::KeyRing>,
    pub nonces: dpop::NonceIssuer,
    pub oidc: oidc::OidcClient,
    pub rate_limiter: Arc<ratelimit::RateLimiter>,
    /// The development provider to mount at `/dev-idp`, when enabled.
    pub dev_idp: Option<DevIdpConfig>,
    /// National ID number -> granted roles (never logged).
    grants: HashMap<String, Vec<String>>,
}

fn random_secret() -> Result<String, String> {
    tokens::random_bytes::<32>().map(|b| congdan_core::crypto::jws::b64url(&b)).map_err(|e| e.to_string())
}

impl Identity {
    /// Loads the keys and resolves the URLs and the provider for a server bound at `bound`.
    pub async fn start(db: &Db, config: &IdentityConfig, bound: SocketAddr) -> Result<Arc<Identity>, String> {
        config.check()?;
        let public = config.public_url.clone().unwrap_or_else(|| format!("http://{bound}"));
        let public_url = Url::parse(public.trim_end_matches('/')).map_err(|_| "--public-url is not a URL".to_string())?;
        let base = public.trim_end_matches('/').to_string();
        let callback_url = format!("{base}{CALLBACK_PATH}");
        let dev_issuer = format!("{base}/dev-idp");
        let provider = match &config.oidc {
            Some(p) => p.clone(),
            None => OidcProviderConfig { issuer: dev_issuer.clone(), client_id: DEV_CLIENT_ID.into(), client_secret: random_secret()? },
        };
        let dev_idp = config.dev_idp.then(|| DevIdpConfig {
            issuer: dev_issuer.clone(),
            client_id: provider.client_id.clone(),
            client_secret: provider.client_secret.clone(),
            redirect_uris: vec![callback_url.clone()],
            id_token_ttl_secs: 300,
        });
        if dev_idp.is_some() {
            tracing::warn!(
                issuer = %dev_issuer,
                "THE DEVELOPMENT IDENTITY PROVIDER IS ENABLED: anyone can log in as a demo resident \
                 with a known password. It must never run in production (--dev-idp false)."
            );
        }
        let mut grants: HashMap<String, Vec<String>> = HashMap::new();
        if config.demo_roles {
            for r in DEMO_RESIDENTS {
                if let Some(role) = r.role {
                    grants.entry(r.national_id.to_string()).or_default().push(role.to_string());
                }
            }
        }
        for g in &config.role_grants {
            let roles = grants.entry(g.national_id.clone()).or_default();
            if !roles.contains(&g.role) {
                roles.push(g.role.clone());
            }
        }
        let keys = keys::KeyRing::load(db.clone(), config.key_rotation_secs).await.map_err(|e| e.to_string())?;
        let nonce_secret = keys::nonce_secret(db).await.map_err(|e| e.to_string())?;
        let oidc = oidc::OidcClient::new(provider, config.national_id_claim.clone(), callback_url)?;
        let identity = Arc::new(Identity {
            config: config.clone(),
            public_url,
            keys,
            nonces: dpop::NonceIssuer::new(&nonce_secret),
            oidc,
            rate_limiter: Arc::new(ratelimit::RateLimiter::new(config.auth_rate_limit, config.trusted_proxies.clone())),
            dev_idp,
            grants,
        });
        tokio::spawn(maintain(Arc::downgrade(&identity), db.clone()));
        Ok(identity)
    }

    /// `resident`, then the roles configuration grants this national ID number.
    pub fn roles_for(&self, national_id: &str) -> Vec<String> {
        let mut roles = vec!["resident".to_string()];
        roles.extend(self.grants.get(national_id).into_iter().flatten().cloned());
        roles
    }

    pub fn account_info(&self, account: &store::AccountRow) -> AccountInfo {
        AccountInfo {
            account_id: account.account_id.clone(),
            display_name: account.display_name.clone(),
            national_id_masked: national_id::mask(&account.national_id),
            roles: self.roles_for(&account.national_id),
        }
    }

    /// The URL a DPoP proof for `path` must name: `{public_url}` + path.
    pub fn htu_for(&self, path: &str) -> Url {
        let mut url = self.public_url.clone();
        let prefix = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{prefix}{path}"));
        url.set_query(None);
        url.set_fragment(None);
        url
    }

    /// The development provider's routes, when enabled.
    pub fn dev_idp_router(&self) -> Option<axum::Router> {
        self.dev_idp.clone().map(devidp::router)
    }
}

/// Reloads the key ring (rotation, other instances' keys) and deletes expired records, until
/// the server is gone.
async fn maintain(identity: Weak<Identity>, db: Db) {
    loop {
        tokio::time::sleep(MAINTENANCE_INTERVAL).await;
        let Some(identity) = identity.upgrade() else { return };
        if let Err(e) = identity.keys.reload().await {
            tracing::warn!("reloading the token keys failed: {e}");
        }
        match store::cleanup(&db).await {
            Ok(n) if n > 0 => tracing::debug!(deleted = n, "expired identity records deleted"),
            Ok(_) => {}
            Err(e) => tracing::warn!("identity cleanup failed: {e}"),
        }
    }
}

/// Middleware: every response to a request that carried a DPoP proof gets a fresh `DPoP-Nonce`
/// (RFC 9449 §8), so the phone always holds a current one.
pub async fn dpop_nonce_header(State(identity): State<Arc<Identity>>, request: Request, next: Next) -> Response {
    let had_proof = request.headers().contains_key("dpop");
    let mut response = next.run(request).await;
    if had_proof && !response.headers().contains_key(rejection::DPOP_NONCE) {
        if let Ok(v) = HeaderValue::from_str(&identity.nonces.current(now_secs())) {
            response.headers_mut().insert(rejection::DPOP_NONCE, v);
        }
    }
    response
}
