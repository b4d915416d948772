//! The identity credential (docs/identity-credential.md): `POST /v1/me/credential` issues a
//! city-signed credential bound to the caller's device key, with a salted digest per attribute;
//! `GET /v1/identity/credential-keys` publishes the city's public keys for offline verifiers.
//!
//! The city key is the server's own Ed25519 key of purpose `identity_credential`, kept in the
//! database with the other server keys (keys.rs) so every instance signs with the same one. It
//! signs with the newest generation and every generation stays published, so an operator rotates
//! it by adding a generation while credentials signed by the old one live out their 30 days.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use congdan_core::crypto::jws::b64url;
use congdan_core::crypto::{hex, Algorithm, PublicKey};
use congdan_core::drafts::validation::CalendarDate;
use congdan_core::identity::credential::wire::{CredentialKeyWire, CredentialKeys, DisclosureWire, IssuedCredential};
use congdan_core::identity::credential::{self, Attribute, Disclosure, CREDENTIAL_ID_LEN, SALT_LEN};

use super::auth::Authenticated;
use super::keys::{ed25519_signer, load_or_create_ed25519};
use super::rejection::Rejection;
use super::tokens::random_bytes;
use crate::app::AppState;
use crate::db::now_millis;
use crate::error::ApiError;

pub const CREDENTIAL_PURPOSE: &str = "identity_credential";

/// `GET /v1/identity/credential-keys`: public, so an officer's device can fetch them. A fresh
/// server creates its key here, so it publishes the key before issuing with it.
pub async fn keys(State(state): State<AppState>) -> Result<Json<CredentialKeys>, ApiError> {
    let keys = load_or_create_ed25519(&state.db, CREDENTIAL_PURPOSE)
        .await?
        .into_iter()
        .map(|k| {
            let public = PublicKey { algorithm: Algorithm::Ed25519, bytes: k.public_key };
            CredentialKeyWire { key_id: hex(&public.default_key_id()), algorithm: "ed25519".into(), public_key: b64url(&public.bytes) }
        })
        .collect();
    Ok(Json(CredentialKeys { keys }))
}

/// The attributes the city vouches for about `account`, on `today`: the name and number from the
/// identity provider, the verified birth date, and the age thresholds reached (only those that
/// are true: a "no" would go stale on a birthday, a "yes" never does).
fn attributes_of(name: &str, national_id: &str, verified: &super::attributes::VerifiedAttributes, today: CalendarDate) -> Vec<(Attribute, String)> {
    let mut out = vec![(Attribute::FullName, name.to_string()), (Attribute::NationalId, national_id.to_string())];
    if let Some(birthdate) = &verified.birthdate {
        out.push((Attribute::BirthDate, birthdate.clone()));
    }
    let age = verified.age_on(today).unwrap_or(0);
    if age >= 18 {
        out.push((Attribute::AgeOver18, "true".into()));
    }
    if age >= 60 {
        out.push((Attribute::AgeOver60, "true".into()));
    }
    out
}

/// `POST /v1/me/credential`: a fresh credential for the caller, bound to the device key of the
/// session that asks (its DPoP key). The salts and values go only to that phone.
pub async fn issue(State(state): State<AppState>, caller: Authenticated) -> Result<Response, Rejection> {
    let account = super::store::account(&state.db, &caller.account_id).await?;
    let verified = crate::tickets::store::verified_attributes(&state.db, &caller.account_id).await?;
    let jkt = b64url(&caller.jkt);
    let keys = super::device_keys::for_account(&state.db, &caller.account_id).await?;
    let device = keys
        .0
        .iter()
        .find(|k| k.jkt == jkt && k.revoked_at_ms.is_none())
        // Revoking a device key ends its sessions, so this is a race with that revocation.
        .ok_or_else(|| Rejection::auth(super::rejection::AuthFailure::TokenRevoked, None))?;
    let device_key = congdan_core::tickets::wire::compress_device_key(&device.public_key)
        .map_err(|_| ApiError::internal("a registered device key is not a P-256 point"))?;
    let mut disclosures = Vec::new();
    for (attribute, value) in attributes_of(&account.display_name, &account.national_id, &verified, CalendarDate::today_utc_plus_7()) {
        let salt = random_bytes::<SALT_LEN>().map_err(ApiError::internal)?;
        disclosures.push(Disclosure { attribute, salt, value });
    }
    let credential_id = random_bytes::<CREDENTIAL_ID_LEN>().map_err(ApiError::internal)?;
    let issued_at = (now_millis() / 1000).max(0) as u64;
    // 30 days by default: long enough for weeks offline, short enough that a corrected name or a
    // lost phone stops showing within a month. Phones renew at a sync in the last week.
    let expires_at = issued_at + state.identity.config.credential_lifetime_secs;
    // The newest generation signs; every generation stays published.
    let stored = load_or_create_ed25519(&state.db, CREDENTIAL_PURPOSE).await?;
    let signer = ed25519_signer(stored.last().ok_or_else(|| ApiError::internal("the city key is missing"))?)?;
    let statement = credential::issue(credential_id, &device_key, issued_at, expires_at, &mut disclosures, signer.as_ref())
        .map_err(ApiError::internal)?;
    tracing::info!(attributes = disclosures.len(), "identity credential issued");
    let body = IssuedCredential {
        credential: b64url(&statement),
        disclosures: disclosures
            .iter()
            .map(|d| DisclosureWire { attribute: d.attribute.name().into(), salt: b64url(&d.salt), value: d.value.clone() })
            .collect(),
        expires_at,
    };
    let mut response = Json(body).into_response();
    // Personal data: no cache on the way may keep it.
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::attributes::VerifiedAttributes;

    #[test]
    fn only_reached_age_thresholds_are_vouched_for() {
        let today = CalendarDate::parse("2026-11-24").unwrap();
        let born = |d: &str| VerifiedAttributes { birthdate: Some(d.into()), ..Default::default() };
        let names = |v: Vec<(Attribute, String)>| v.into_iter().map(|(a, _)| a).collect::<Vec<_>>();
        assert_eq!(
            names(attributes_of("Lan", "079190000045", &born("2008-11-25"), today)),
            vec![Attribute::FullName, Attribute::NationalId, Attribute::BirthDate],
            "17 until tomorrow"
        );
        assert_eq!(
            names(attributes_of("Lan", "079190000045", &born("2008-11-24"), today)),
            vec![Attribute::FullName, Attribute::NationalId, Attribute::BirthDate, Attribute::AgeOver18]
        );
        assert_eq!(names(attributes_of("Ba", "079150000012", &born("1950-01-01"), today)).len(), 5);
        assert_eq!(
            names(attributes_of("X", "079190000045", &VerifiedAttributes::default(), today)),
            vec![Attribute::FullName, Attribute::NationalId],
            "no verified birth date: no age claims"
        );
    }
}
