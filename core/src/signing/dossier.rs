//! The resident's signature over a submitted dossier (statement 0x32): made by the core when a
//! draft is submitted, with the device key after the resident confirmed their presence, and sent
//! in the `case.submit` body as `dossier_signature`. The server checks it against what it
//! received (docs/signatures.md, "The canonical content").

use std::collections::BTreeMap;

use super::phone::SigningProblem;
use super::wire::{attach_signature, dossier_content_hash, encode_statement, verify_dossier_signature, DossierSignature};
use crate::crypto::{Algorithm, PublicKey, SIGNATURE_LEN};
use crate::drafts::validation::FieldValue;
use crate::error::{Error, Result};
use crate::platform::Keystore;

/// A dossier signature made before the submission's transaction, and the content it covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SignedDossier {
    /// base64url of the statement, as `case.submit` carries it.
    pub statement: String,
    pub content_sha256: [u8; 32],
}

impl SignedDossier {
    /// Whether the signature covers exactly these values and attachments (a draft edited on
    /// another device between signing and queueing is not sent with a stale signature).
    pub(crate) fn covers(&self, values: &BTreeMap<String, FieldValue>, attachments: &BTreeMap<String, Vec<String>>) -> bool {
        dossier_content_hash(values, attachments) == self.content_sha256
    }
}

/// Signs the dossier with the device key. Blocks while the system asks for presence.
pub(crate) fn sign(
    keystore: &dyn Keystore,
    account_id: &str,
    procedure_code: &str,
    draft_id: &str,
    values: &BTreeMap<String, FieldValue>,
    attachments: &BTreeMap<String, Vec<String>>,
    prompt: &str,
) -> Result<SignedDossier> {
    let not_signed = || Error::Signing { problem: SigningProblem::NotSigned };
    let device_key = PublicKey {
        algorithm: Algorithm::EcdsaP256Sha256,
        bytes: keystore.device_public_key().map_err(|e| Error::Platform { service: "keystore", message: e.0 })?,
    };
    let dossier = DossierSignature {
        account_id: account_id.to_string(),
        procedure_code: procedure_code.to_string(),
        draft_id: draft_id.to_string(),
        content_sha256: dossier_content_hash(values, attachments),
        signed_at: (crate::store::now_millis().max(0) / 1000) as u64,
    };
    let key_id = device_key.default_key_id();
    let signed_bytes = dossier.signed_bytes(&key_id).map_err(|e| {
        tracing::warn!("signing: dossier not signed: {e}");
        not_signed()
    })?;
    let signature = keystore.sign_with_presence(&signed_bytes, prompt).map_err(|e| {
        tracing::info!("signing: no dossier signature from the keystore: {}", e.0);
        not_signed()
    })?;
    let signature: [u8; SIGNATURE_LEN] = signature.as_slice().try_into().map_err(|_| not_signed())?;
    let statement = attach_signature(&signed_bytes, &signature);
    verify_dossier_signature(&statement, &vec![(key_id, device_key)]).map_err(|_| not_signed())?;
    Ok(SignedDossier { statement: encode_statement(&statement), content_sha256: dossier.content_sha256 })
}

/// What the presence prompt says when a dossier is signed: Vietnamese, then English.
pub(crate) fn prompt(name_vi: &str, name_en: &str) -> String {
    let vi: String = name_vi.chars().take(80).collect();
    let en: String = name_en.chars().take(80).collect();
    format!("Ký hồ sơ: {vi} / Sign the dossier: {en}")
}
