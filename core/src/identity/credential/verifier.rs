//! The officer's side: check a shown code offline against the city keys kept on the device.

use super::holder::{city_keys, CredentialService};
use super::{from_qr_text, verify_presentation, CredentialRefusal, Freshness, VerifiedPresentation};
use crate::core::Core;
use crate::error::Result;
use crate::store::now_millis;

/// Verifies identity codes at a front desk. Needs no login and no network once the city's keys
/// were fetched ([`CredentialVerifier::update_keys`], whenever online).
#[derive(Clone)]
pub struct CredentialVerifier {
    pub(crate) core: Core,
    pub(crate) freshness: Freshness,
}

impl CredentialVerifier {
    pub fn with_freshness(mut self, freshness: Freshness) -> CredentialVerifier {
        self.freshness = freshness;
        self
    }

    /// Fetches the city's credential keys (public, no login) and keeps them.
    pub async fn update_keys(&self) -> Result<usize> {
        CredentialService { core: self.core.clone() }.update_keys().await
    }

    /// How many city keys this device trusts.
    pub fn trusted_key_count(&self) -> Result<usize> {
        Ok(city_keys(self.core.store())?.len())
    }

    /// Checks `qr_text` now. The outer error is this device's (storage); the inner one is the
    /// code's refusal, for the officer's screen.
    pub fn verify(&self, qr_text: &str) -> Result<std::result::Result<VerifiedPresentation, CredentialRefusal>> {
        let offset = self.core.server_clock_offset_ms()?;
        self.verify_at(qr_text, ((now_millis() + offset).max(0) / 1000) as u64)
    }

    /// Checks `qr_text` at `now` (seconds, server clock).
    pub fn verify_at(&self, qr_text: &str, now: u64) -> Result<std::result::Result<VerifiedPresentation, CredentialRefusal>> {
        let keys = city_keys(self.core.store())?;
        let outcome = from_qr_text(qr_text).and_then(|payload| verify_presentation(&payload, &keys, now, self.freshness));
        match &outcome {
            Ok(v) => tracing::info!(shown = v.shown.len(), "identity code accepted"),
            Err(refusal) => tracing::info!(reason = refusal.code(), "identity code refused"),
        }
        Ok(outcome)
    }
}
