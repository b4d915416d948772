//! Identity: login through the server's OpenID Connect broker (authorization code + PKCE, RFC
//! 8252), API tokens bound to the device key with DPoP (RFC 9449), and the encrypted session.
//! The flow and formats are in `docs/identity.md`.

pub mod national_id;
pub mod wire;
