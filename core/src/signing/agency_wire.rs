//! The JSON of the agency's signature-request endpoints (docs/api.md, "Signature requests"): the
//! server serializes these structs and the core reads them, so the two cannot drift apart.
//! Times are unix seconds; binary parts of a bundle are standard base64; hashes and key ids hex.

use serde::{Deserialize, Serialize};

use super::api::{DocumentRef, RequestState};
use super::wire::Intent;

/// A signature request as its agency sees it: the answer of create, get and cancel, and the items
/// of a list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgencySignatureRequest {
    pub id: String,
    pub agency_code: String,
    pub title: String,
    /// Shown whole to the resident; its SHA-256 is what the decision signs.
    pub summary: String,
    pub purpose: String,
    pub document: DocumentRef,
    pub created_at: u64,
    pub expires_at: u64,
    /// `expired` is a pending request past `expires_at`.
    pub state: RequestState,
    /// The resident's account.
    pub account_id: String,
    /// The resident's national ID number as screens show it (province code and last two digits,
    /// `079*******45`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resident_national_id_masked: Option<String>,
    #[serde(default)]
    pub cancelled_at: Option<u64>,
    #[serde(default)]
    pub cancel_reason: Option<String>,
    /// When the server recorded the resident's decision.
    #[serde(default)]
    pub decided_at: Option<u64>,
    /// The decision, read from the verified statement. Always `null` in list items (`state` and
    /// `decided_at` say the outcome; get the request for the decision itself).
    #[serde(default)]
    pub decision: Option<AgencyDecision>,
}

/// The resident's decision on a request, as the agency reads it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgencyDecision {
    #[serde(with = "intent_name")]
    pub intent: Intent,
    #[serde(default)]
    pub decline_reason: Option<String>,
    /// The phone's clock when the resident signed.
    pub signed_at: u64,
    /// The server's clock when it recorded the decision.
    #[serde(default)]
    pub decided_at: Option<u64>,
    /// Hex of the device key id that signed.
    pub device_key_id: String,
}

/// A page of the agency's requests, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgencyRequestPage {
    pub requests: Vec<AgencySignatureRequest>,
    /// Give it back for the next page; `None` on the last one.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// One signed statement of a bundle, split so that OpenSSL alone can check it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedPart {
    /// The whole statement, base64.
    pub statement: String,
    /// Everything before the signature (what the key signed), base64.
    pub signed_bytes: String,
    /// The 64-byte signature, base64 (P-256: r‖s; Ed25519: as RFC 8032).
    pub signature: String,
    /// P-256 only: the same signature as DER, base64 (`openssl dgst -verify` reads this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_der: Option<String>,
    pub public_key_pem: String,
    /// Hex of the key id in the statement.
    pub key_id: String,
}

/// The server's key attestation (statement `0x31`) in a bundle, with its fields for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestationPart {
    #[serde(flatten)]
    pub signed: SignedPart,
    pub account_id: String,
    pub device_key_id: String,
    pub registered_at: u64,
    #[serde(default)]
    pub revoked_at: Option<u64>,
    pub issued_at: u64,
}

/// `kind` of a decision's bundle.
pub const DECISION_BUNDLE_KIND: &str = "signature_decision";
/// `kind` of a case's dossier-signature bundle.
pub const DOSSIER_BUNDLE_KIND: &str = "dossier_signature";

/// The verification bundle of a decided request (`GET …/signature-requests/{id}/bundle`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionBundle {
    /// [`DECISION_BUNDLE_KIND`].
    pub kind: String,
    pub request_id: String,
    pub decision: SignedPart,
    pub attestation: AttestationPart,
    pub server_public_key_pem: String,
    pub decoded: DecodedDecision,
    pub request: BundledRequest,
}

/// The decision statement's fields, for people (the signature covers the statement, not these).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecodedDecision {
    /// `0x30 decision`.
    pub statement_type: String,
    pub request_id: String,
    pub agency_code: String,
    pub document_sha256: String,
    pub summary_sha256: String,
    #[serde(with = "intent_name")]
    pub intent: Intent,
    pub purpose: String,
    #[serde(default)]
    pub decline_reason: Option<String>,
    pub account_id: String,
    pub device_key_id: String,
    pub signed_at: u64,
    pub expires_at: u64,
}

/// What the agency asked, as stored with the request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundledRequest {
    pub title: String,
    pub summary: String,
    pub purpose: String,
    pub document_sha256: String,
    pub document_size: u64,
    pub document_content_type: String,
    #[serde(default)]
    pub document_link: Option<String>,
}

/// The verification bundle of a signed case (`GET /v1/agency/cases/{id}/signature-bundle`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DossierBundle {
    /// [`DOSSIER_BUNDLE_KIND`].
    pub kind: String,
    pub case_id: String,
    pub case_number: String,
    pub dossier: SignedPart,
    pub attestation: AttestationPart,
    pub server_public_key_pem: String,
    pub decoded: DecodedDossier,
}

/// The dossier signature's fields, for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecodedDossier {
    /// `0x32 dossier signature`.
    pub statement_type: String,
    pub account_id: String,
    pub procedure_code: String,
    pub draft_id: String,
    pub content_sha256: String,
    pub device_key_id: String,
    pub signed_at: u64,
}

/// [`Intent`] as its name (`approve`, `decline`): the byte format knows it by number only.
mod intent_name {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::signing::wire::Intent;

    pub fn serialize<S: Serializer>(intent: &Intent, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(intent.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Intent, D::Error> {
        let name = String::deserialize(d)?;
        [Intent::Approve, Intent::Decline]
            .into_iter()
            .find(|i| i.name() == name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown intent {name}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_reads_with_and_without_its_optional_parts() {
        let listed = serde_json::json!({
            "id": "r1", "agency_code": "A", "title": "t", "summary": "s", "purpose": "p",
            "document": {"sha256": "ab", "size": 3, "content_type": "application/pdf"},
            "created_at": 1, "expires_at": 2, "state": "signed", "account_id": "acc",
            "cancelled_at": null, "cancel_reason": null, "decided_at": 5, "decision": null,
        });
        let r: AgencySignatureRequest = serde_json::from_value(listed.clone()).unwrap();
        assert_eq!((r.state, r.decided_at, r.resident_national_id_masked.as_deref()), (RequestState::Signed, Some(5), None));
        assert_eq!(serde_json::to_value(&r).unwrap(), listed, "written back the same");

        let mut got = listed;
        got["resident_national_id_masked"] = serde_json::json!("079*******45");
        got["decision"] = serde_json::json!({"intent": "decline", "decline_reason": "no", "signed_at": 4, "decided_at": 5, "device_key_id": "0a"});
        let r: AgencySignatureRequest = serde_json::from_value(got.clone()).unwrap();
        let decision = r.decision.clone().unwrap();
        assert_eq!((decision.intent, decision.decline_reason.as_deref()), (Intent::Decline, Some("no")));
        assert_eq!(serde_json::to_value(&r).unwrap(), got);

        got["decision"]["intent"] = serde_json::json!("maybe");
        assert!(serde_json::from_value::<AgencySignatureRequest>(got).is_err());
    }

    #[test]
    fn an_attestation_keeps_its_statement_parts_beside_its_fields() {
        let part = AttestationPart {
            signed: SignedPart {
                statement: "c3Q=".into(),
                signed_bytes: "c2k=".into(),
                signature: "c2c=".into(),
                signature_der: None,
                public_key_pem: "-----BEGIN PUBLIC KEY-----".into(),
                key_id: "01".into(),
            },
            account_id: "acc".into(),
            device_key_id: "0a".into(),
            registered_at: 1,
            revoked_at: None,
            issued_at: 2,
        };
        let json = serde_json::to_value(&part).unwrap();
        assert_eq!(json["statement"], "c3Q=");
        assert_eq!(json["registered_at"], 1);
        assert!(json.get("signature_der").is_none(), "Ed25519 has no DER form");
        assert_eq!(serde_json::from_value::<AttestationPart>(json).unwrap(), part);
    }
}
