//! The identity wire format (`/v1/auth/*`, `/v1/me`), shared by the core and the server so the two
//! cannot drift. See `docs/identity.md`.

use serde::{Deserialize, Serialize};

/// The OAuth client id of the congdan app (a public client: no secret, PKCE and DPoP instead).
pub const APP_CLIENT_ID: &str = "congdan-app";
/// The app's private-use redirect URI (RFC 8252 §7.1).
pub const APP_REDIRECT_URI: &str = "vn.congdan.app:/oauth2redirect";

pub const AUTHORIZE_PATH: &str = "v1/auth/authorize";
pub const TOKEN_PATH: &str = "v1/auth/token";
pub const LOGOUT_PATH: &str = "v1/auth/logout";
pub const ME_PATH: &str = "v1/me";

/// `200` from `POST /v1/auth/token`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `DPoP`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub refresh_token: String,
    pub account: AccountInfo,
}

/// Who is logged in, as the server sees it (`GET /v1/me`, and in every token response).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccountInfo {
    pub account_id: String,
    pub display_name: String,
    /// The national ID number masked for screens (`079*******45`).
    pub national_id_masked: String,
    /// `resident`, `agency:<CODE>`, `operator:<CODE>`.
    pub roles: Vec<String>,
}

/// Error codes of the identity endpoints the core reacts to (the full list is in docs/identity.md).
pub mod codes {
    pub const USE_DPOP_NONCE: &str = "use_dpop_nonce";
    pub const TOKEN_EXPIRED: &str = "token_expired";
    pub const INVALID_TOKEN: &str = "invalid_token";
    pub const TOKEN_REVOKED: &str = "token_revoked";
    pub const REFRESH_TOKEN_REUSED: &str = "refresh_token_reused";
    pub const INVALID_GRANT: &str = "invalid_grant";
    pub const INVALID_DPOP_PROOF: &str = "invalid_dpop_proof";
    pub const DPOP_REPLAY: &str = "dpop_replay";
    pub const DPOP_KEY_MISMATCH: &str = "dpop_key_mismatch";
}
