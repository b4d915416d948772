//! Document signing (issue 6): a resident approves or declines an agency's signature request with
//! the phone's device key, signs what they submit in a case, and the server attests which device
//! keys were theirs. The signed byte structures live in [`wire`] (shared with the server, layout
//! in docs/signatures.md); the JSON of the feed and the endpoints in [`api`], of the agency's
//! endpoints in [`agency_wire`] (the agency's client: [`agency`]).
//!
//! The resident's phone: [`SigningService`] (`Core::signing()`), with [`store`] (requests and
//! their checked documents kept offline), [`changes`] (`signature.request`, `signature.state` from
//! the account feed) and [`commands`] (`signature.decision` in the one outbox).

pub mod agency;
pub mod agency_wire;
pub mod api;
pub(crate) mod changes;
pub(crate) mod commands;
pub(crate) mod dossier;
mod phone;
pub mod store;
pub mod wire;

pub use api::{Refusal, RequestState, SignatureRequestView};
pub use phone::{
    refusal_message, DecisionStatus, SignatureRequestInfo, SigningProblem, SigningService, DOCUMENTS_DIR,
    MAX_DOCUMENT_BYTES,
};
pub use wire::{
    dossier_content_hash, public_key_pem, summary_hash, verify_decision, verify_dossier_signature,
    verify_key_attestation, Decision, DossierSignature, Intent, KeyAttestation, SigningError, VerifiedDecision,
    VerifiedDossierSignature, VerifiedKeyAttestation,
};

#[cfg(test)]
mod phone_tests;
#[cfg(test)]
mod wire_tests;
