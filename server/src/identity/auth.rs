//! The authentication extractor: every protected handler takes an [`Authenticated`]. The checks
//! run in the order of docs/identity.md, each failure with its own code; only the last step (the
//! replay record, which also reads the family's revocation) touches the database.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method};

use super::dpop::{self, DpopError, Expected, Proof};
use super::rejection::{AuthFailure, Rejection};
use super::tokens::{self, AccessTokenError};
use super::{now_secs, store, Identity};
use crate::app::AppState;
use crate::db::Db;

/// Who is calling, proven by an access token and a DPoP proof of its device key.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub account_id: String,
    pub roles: Vec<String>,
    pub jkt: [u8; 32],
    pub family: String,
}

impl Authenticated {
    /// 403 `forbidden` unless the caller holds a role starting with `prefix` (`"agency:"`,
    /// `"operator:METRO-L1"`).
    pub fn require_role(&self, prefix: &str) -> Result<(), Rejection> {
        if self.roles.iter().any(|r| r.starts_with(prefix)) {
            Ok(())
        } else {
            Err(Rejection::auth(AuthFailure::Forbidden, None))
        }
    }
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        authenticate(&state.identity, &state.db, &parts.method, parts.uri.path(), &parts.headers).await
    }
}

/// The single value of a header, or `None` when it is absent, repeated or not text.
pub fn single_header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    first.to_str().ok()
}

/// The DPoP proof of a request, parsed and checked against what the request is (everything but
/// the replay record). `jkt` and `access_token` are given for resource requests.
pub fn check_proof(
    identity: &Identity,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    jkt: Option<&[u8; 32]>,
    access_token: Option<&str>,
    now: u64,
) -> Result<Proof, Rejection> {
    let fail = |f| Rejection::auth(f, None);
    let text = single_header(headers, "dpop").ok_or_else(|| fail(AuthFailure::InvalidDpopProof))?;
    let proof = dpop::parse_proof(text).map_err(|_| fail(AuthFailure::InvalidDpopProof))?;
    let htu = identity.htu_for(path);
    let expected = Expected { jkt, method: method.as_str(), htu: &htu, access_token };
    proof.check(&expected, &identity.nonces, now).map_err(|e| match e {
        DpopError::InvalidProof(_) => fail(AuthFailure::InvalidDpopProof),
        DpopError::KeyMismatch => fail(AuthFailure::DpopKeyMismatch),
        DpopError::MethodMismatch => fail(AuthFailure::DpopMethodMismatch),
        DpopError::UrlMismatch => fail(AuthFailure::DpopUrlMismatch),
        DpopError::UseNonce => Rejection::auth(AuthFailure::UseDpopNonce, Some(&identity.nonces.current(now))),
    })?;
    Ok(proof)
}

/// Records the proof (single use across all instances) and reads the family's revocation.
pub async fn record_proof(db: &Db, proof: &Proof, family: Option<&str>, now: u64) -> Result<(), Rejection> {
    let expires = (now as i64 + dpop::REPLAY_WINDOW_SECS) * 1000;
    let check = store::record_proof(db, proof.replay_key(), expires, family).await?;
    if !check.fresh {
        return Err(Rejection::auth(AuthFailure::DpopReplay, None));
    }
    if check.family_revoked {
        return Err(Rejection::auth(AuthFailure::TokenRevoked, None));
    }
    Ok(())
}

/// Verifies an access token with the key ring, reloading it once (rate-limited) for a key id it
/// does not know: another instance may have rotated.
pub async fn verify_access_token(identity: &Identity, token: &str) -> Result<tokens::AccessClaims, AccessTokenError> {
    match tokens::verify(token, &*identity.keys.current()) {
        Err(AccessTokenError::UnknownKey) if identity.keys.reload_for_unknown_key().await => {
            tokens::verify(token, &*identity.keys.current())
        }
        other => other,
    }
}

/// The whole check of one authenticated request.
pub async fn authenticate(
    identity: &Identity,
    db: &Db,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Result<Authenticated, Rejection> {
    let fail = |f| Rejection::auth(f, None);
    let token = single_header(headers, header::AUTHORIZATION.as_str())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("DPoP"))
        .map(|(_, token)| token.trim())
        .ok_or_else(|| fail(AuthFailure::MissingToken))?;
    let claims = verify_access_token(identity, token).await.map_err(|_| fail(AuthFailure::InvalidToken))?;
    let now = now_secs();
    if claims.exp <= now {
        return Err(fail(AuthFailure::TokenExpired));
    }
    let proof = check_proof(identity, method, path, headers, Some(&claims.jkt), Some(token), now)?;
    record_proof(db, &proof, Some(&claims.family), now).await?;
    Ok(Authenticated { account_id: claims.account, roles: claims.roles, jkt: claims.jkt, family: claims.family })
}
