//! Server configuration, from flags or the environment.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// `sqlite://path/to/file.db` (in-memory databases are refused);
    /// `postgres://user:password@host:port/db` for production.
    pub database_url: String,
    /// Publish the demo catalog when the catalog is empty.
    pub seed_demo_data: bool,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Largest attachment a resident may upload, in bytes (sent in chunks, not one body).
    pub max_blob_bytes: u64,
    /// Uploads never finished within this long of being offered are removed.
    pub abandoned_upload_after: std::time::Duration,
    /// Login, tokens and roles (docs/identity.md).
    pub identity: IdentityConfig,
    /// Public holidays for due dates: the built-in Vietnamese calendar, or a published schedule.
    pub holidays: crate::cases::holidays::Holidays,
}

impl ServerConfig {
    pub const DEFAULT_LISTEN: &'static str = "127.0.0.1:8080";

    /// The embedded default: a SQLite file under `data_dir`, seeded with demo data.
    pub fn embedded(data_dir: &Path) -> ServerConfig {
        ServerConfig {
            listen: Self::DEFAULT_LISTEN.parse().expect("valid default address"),
            database_url: sqlite_url(&data_dir.join("congdan-server.db")),
            seed_demo_data: true,
            max_body_bytes: 64 * 1024,
            max_blob_bytes: crate::blobs::DEFAULT_MAX_BLOB_BYTES,
            abandoned_upload_after: crate::blobs::DEFAULT_ABANDONED_UPLOAD_AFTER,
            identity: IdentityConfig::embedded(),
            holidays: crate::cases::holidays::Holidays::vietnam(2025..=2035),
        }
    }
}

/// The OpenID Connect provider the server logs residents in with (VNeID in production).
#[derive(Clone)]
pub struct OidcProviderConfig {
    /// The issuer URL; discovery is read from `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
}

impl std::fmt::Debug for OidcProviderConfig {
    // By hand, so the client secret never reaches a log through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcProviderConfig")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

/// A token bucket per client IP on the login endpoints (`/v1/auth/*`, `/dev-idp/*`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    /// Requests allowed at once.
    pub burst: u32,
    /// Seconds to earn back one request.
    pub refill_secs: f64,
}

/// A role granted by configuration to the holder of one national ID number.
#[derive(Clone, PartialEq, Eq)]
pub struct RoleGrant {
    pub national_id: String,
    pub role: String,
}

impl std::fmt::Debug for RoleGrant {
    // The national ID number is personal data: never in a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RoleGrant({} -> {})", congdan_core::identity::national_id::mask(&self.national_id), self.role)
    }
}

impl std::str::FromStr for RoleGrant {
    type Err = String;

    /// `NATIONAL_ID=ROLE`, ROLE being `agency:CODE` or `operator:CODE`. Errors never repeat the number.
    fn from_str(text: &str) -> Result<RoleGrant, String> {
        let (id, role) = text.trim().split_once('=').ok_or("a role grant is NATIONAL_ID=ROLE")?;
        let (id, role) = (id.trim(), role.trim());
        congdan_core::identity::national_id::validate(id, congdan_core::identity::national_id::current_year())
            .map_err(|e| format!("role grant for {}: {e}", congdan_core::identity::national_id::mask(id)))?;
        if !is_grantable_role(role) {
            return Err(format!("role {role:?} is not agency:CODE or operator:CODE"));
        }
        Ok(RoleGrant { national_id: id.to_string(), role: role.to_string() })
    }
}

/// `agency:CODE` or `operator:CODE`, CODE of 1 to 64 of `A-Z a-z 0-9 - _ .`.
pub fn is_grantable_role(role: &str) -> bool {
    let Some((kind, code)) = role.split_once(':') else { return false };
    matches!(kind, "agency" | "operator")
        && (1..=64).contains(&code.len())
        && code.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Parses `CONGDAN_ROLE_GRANTS`: grants separated by `;` (empty parts ignored).
pub fn parse_role_grants(text: &str) -> Result<Vec<RoleGrant>, String> {
    text.split(';').filter(|p| !p.trim().is_empty()).map(str::parse).collect()
}

/// Identity settings. Durations are in seconds.
#[derive(Clone, Debug)]
pub struct IdentityConfig {
    /// The URL phones reach this server at (scheme, host, port, optional path prefix). `None`:
    /// `http://{bound address}`. Used for the login callback and DPoP `htu` checks.
    pub public_url: Option<String>,
    /// The identity provider. `None` with `dev_idp`: the server is its own provider at
    /// `{public_url}/dev-idp`, with a client secret generated at start.
    pub oidc: Option<OidcProviderConfig>,
    /// The ID token claim holding the 12-digit national ID number.
    pub national_id_claim: String,
    /// Mount the development provider at `/dev-idp` (never in production).
    pub dev_idp: bool,
    /// Grant the demo staff and operator their roles (`DEMO_RESIDENTS[..].role`).
    pub demo_roles: bool,
    /// Access token lifetime, at most 600.
    pub access_token_ttl_secs: u64,
    /// How long after a refresh token's use a retry with it still succeeds (lost response).
    pub refresh_grace_secs: u64,
    /// Refresh token lifetime.
    pub refresh_token_ttl_secs: u64,
    /// How often the access token signing key rotates.
    pub key_rotation_secs: u64,
    /// Identity credential lifetime (docs/identity-credential.md), 1 hour to 90 days.
    pub credential_lifetime_secs: u64,
    pub role_grants: Vec<RoleGrant>,
    /// Redirect URIs allowed for the app besides `vn.congdan.app:/oauth2redirect` and loopback.
    pub app_redirect_uris: Vec<String>,
    pub auth_rate_limit: RateLimit,
    /// Load balancers and reverse proxies whose `X-Forwarded-For` names the client
    /// (`identity/client_address.rs`). Empty: the TCP peer is the client.
    pub trusted_proxies: Vec<crate::identity::client_address::IpNetwork>,
}

impl IdentityConfig {
    pub const MAX_ACCESS_TOKEN_TTL_SECS: u64 = 600;

    /// The embedded default: the development provider with its demo roles.
    pub fn embedded() -> IdentityConfig {
        IdentityConfig { dev_idp: true, demo_roles: true, ..IdentityConfig::production() }
    }

    /// Production defaults: no development provider; an issuer must be configured.
    pub fn production() -> IdentityConfig {
        IdentityConfig {
            public_url: None,
            oidc: None,
            national_id_claim: "national_id".into(),
            dev_idp: false,
            demo_roles: false,
            access_token_ttl_secs: 600,
            refresh_grace_secs: 120,
            refresh_token_ttl_secs: 30 * 86_400,
            key_rotation_secs: 7 * 86_400,
            credential_lifetime_secs: 30 * 86_400,
            role_grants: Vec::new(),
            app_redirect_uris: Vec::new(),
            auth_rate_limit: RateLimit { burst: 20, refill_secs: 2.0 },
            trusted_proxies: Vec::new(),
        }
    }

    /// Checks values that would make the server unsafe or unusable.
    pub fn check(&self) -> Result<(), String> {
        if self.access_token_ttl_secs == 0 || self.access_token_ttl_secs > Self::MAX_ACCESS_TOKEN_TTL_SECS {
            return Err(format!("access token lifetime must be 1 to {} s", Self::MAX_ACCESS_TOKEN_TTL_SECS));
        }
        if self.refresh_token_ttl_secs == 0 || self.key_rotation_secs < 60 {
            return Err("refresh token lifetime must be positive and key rotation at least 60 s".into());
        }
        if !(3_600..=90 * 86_400).contains(&self.credential_lifetime_secs) {
            return Err("identity credential lifetime must be 1 hour to 90 days".into());
        }
        if self.auth_rate_limit.burst == 0 || self.auth_rate_limit.refill_secs.is_nan() || self.auth_rate_limit.refill_secs <= 0.0 {
            return Err("auth rate limit needs a burst of at least 1 and a positive refill time".into());
        }
        if self.oidc.is_none() && !self.dev_idp {
            return Err("no identity provider: set --oidc-issuer (or --dev-idp true for development)".into());
        }
        if let Some(url) = &self.public_url {
            let parsed = url::Url::parse(url).map_err(|_| "--public-url is not a URL".to_string())?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.query().is_some() || parsed.fragment().is_some() {
                return Err("--public-url must be http(s)://host[:port][/prefix] without query".into());
            }
        }
        Ok(())
    }
}

pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// Which database a URL names, without exposing its password in errors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatabaseTarget {
    Sqlite(PathBuf),
    Postgres(String),
}

pub fn parse_database_url(url: &str) -> Result<DatabaseTarget, String> {
    if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
        if path.is_empty() {
            return Err("sqlite URL needs a file path".into());
        }
        // Each pooled connection would get its own private in-memory database.
        if path.starts_with(':') || path.starts_with("file:") {
            return Err("sqlite URL must name a file (in-memory databases are not supported)".into());
        }
        return Ok(DatabaseTarget::Sqlite(PathBuf::from(path)));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(DatabaseTarget::Postgres(url.to_string()));
    }
    Err("database URL must start with sqlite:// or postgres://".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls() {
        assert_eq!(parse_database_url("sqlite://data/s.db"), Ok(DatabaseTarget::Sqlite("data/s.db".into())));
        assert_eq!(parse_database_url("sqlite:s.db"), Ok(DatabaseTarget::Sqlite("s.db".into())));
        assert!(matches!(parse_database_url("postgres://u@h/db"), Ok(DatabaseTarget::Postgres(_))));
        for bad in ["sqlite::memory:", "sqlite://", "sqlite:file:x?mode=memory", "mysql://x", ""] {
            assert!(parse_database_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn role_grants_are_checked_and_never_echo_the_number() {
        let grants = parse_role_grants("079088004321=agency:CONG-AN-PHUONG-XA; 079192006789=operator:METRO-L1;").unwrap();
        assert_eq!(grants.len(), 2);
        assert_eq!(grants[1].role, "operator:METRO-L1");
        for bad in ["079088004321", "079088004321=resident", "079088004321=agency:", "07908800432=agency:X", "003088004321=agency:X"] {
            let e = parse_role_grants(bad).unwrap_err();
            assert!(!e.contains("08800432"), "{e}");
        }
        assert!(!format!("{:?}", grants[0]).contains("0880043"));
    }
}
