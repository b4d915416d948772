//! The server's checks of a decision, in order (docs/signatures.md): the signature with a
//! device key registered to this resident and active at the signing time; every bound field
//! against the stored request; the request open at the signing time; no decision before. Pure:
//! the handler loads the request and the resident's keys, this decides, so the benchmark
//! measures exactly what a request costs beyond the database.

use congdan_core::crypto::StatementError;
use congdan_core::signing::api::{Refusal, RequestState};
use congdan_core::signing::wire::{Decision, SigningError, VerifiedDecision};
use congdan_core::signing::{summary_hash, verify_decision};

use super::store::RequestRow;
use crate::identity::device_keys::DeviceKeys;

/// How far a phone's clock may run ahead of the server's.
pub const CLOCK_SKEW_SECS: i64 = 300;

/// A refusal: its code, HTTP status and the messages a person reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub code: &'static str,
    pub status: u16,
    pub message: &'static str,
    pub message_vi: &'static str,
}

impl Refused {
    pub fn of(r: Refusal) -> Refused {
        // The core's message is "Vietnamese / English".
        let (vi, en) = r.message().split_once(" / ").unwrap_or((r.message(), r.message()));
        Refused { code: r.code(), status: r.http_status(), message: en, message_vi: vi }
    }

    fn other(code: &'static str, status: u16, message: &'static str, message_vi: &'static str) -> Refused {
        Refused { code, status, message, message_vi }
    }
}

/// What is decided, once every check passed.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// A new decision to record.
    Accept(Box<VerifiedDecision>),
    /// The same decision (same signed bytes, same key) recorded before: answer it again.
    AlreadyRecorded,
}

/// Runs every check of `statement` for `request`, sent by `caller_account`, at `now_secs`.
pub fn check_decision(
    statement: &[u8],
    request: &RequestRow,
    caller_account: &str,
    keys: &DeviceKeys,
    now_secs: i64,
) -> Result<Outcome, Refused> {
    // 0. Only the resident the request is for may answer it.
    if request.account_id != caller_account {
        return Err(Refused::of(Refusal::NotYourRequest));
    }
    // 1. The signature, with one of this resident's registered keys (another resident's key, or
    //    one never registered, is not in this set).
    let verified = verify_decision(statement, keys).map_err(|e| match e {
        SigningError::Statement(StatementError::UnknownKey) => Refused::of(Refusal::DeviceKeyUnknown),
        _ => Refused::of(Refusal::SignatureInvalid),
    })?;
    let d: &Decision = &verified.decision;
    let key = keys.find(&d.device_key_id).ok_or_else(|| Refused::of(Refusal::DeviceKeyUnknown))?;
    // ... active at the signing time: registered before it (give or take the phone's clock) and
    // not revoked by then. A time far in the future is refused outright.
    let signed_at = d.signed_at.min(i64::MAX as u64) as i64;
    if signed_at > now_secs + CLOCK_SKEW_SECS {
        return Err(Refused::other(
            "signed_in_future",
            422,
            "the decision is dated in the future; check the phone's clock",
            "Thời điểm ký ở tương lai; hãy kiểm tra đồng hồ của điện thoại.",
        ));
    }
    if let Some(revoked) = key.revoked_at_ms {
        if signed_at * 1000 >= revoked {
            return Err(Refused::of(Refusal::DeviceKeyRevoked));
        }
    }
    if signed_at + CLOCK_SKEW_SECS < key.registered_at_ms / 1000 {
        return Err(Refused::of(Refusal::DeviceKeyUnknown));
    }
    // 2. Every bound field against the stored request.
    if d.request_id != request.id {
        // Signed for another request: a statement replayed here.
        return Err(Refused::of(Refusal::Replayed));
    }
    if d.account_id != request.account_id {
        return Err(Refused::of(Refusal::NotYourRequest));
    }
    if d.agency_code != request.agency_code {
        return Err(Refused::other(
            "agency_mismatch",
            422,
            "the decision names another agency than the request's",
            "Quyết định ghi cơ quan khác với cơ quan của yêu cầu.",
        ));
    }
    if congdan_core::crypto::hex(&d.document_sha256) != request.document_sha256 {
        return Err(Refused::of(Refusal::DocumentMismatch));
    }
    if d.summary_sha256 != summary_hash(&request.summary) {
        return Err(Refused::of(Refusal::SummaryMismatch));
    }
    if d.purpose != request.purpose {
        return Err(Refused::other(
            "purpose_mismatch",
            422,
            "the decision states another purpose than the request's",
            "Mục đích trong quyết định khác với mục đích của yêu cầu.",
        ));
    }
    if d.expires_at.min(i64::MAX as u64) as i64 != request.expires_at {
        return Err(Refused::other(
            "expiry_mismatch",
            422,
            "the decision names another expiry than the request's",
            "Thời hạn trong quyết định khác với thời hạn của yêu cầu.",
        ));
    }
    // 3. No decision before: the same statement again gets the recorded answer; any other is
    //    refused (a decision never changes). Keyed on the signed bytes, not the signature,
    //    which ECDSA does not make unique.
    if let Some(recorded) = &request.decision_signed_sha256 {
        if recorded.as_slice() == verified.signed_bytes_sha256 && request.decision_key_id.as_deref() == Some(&d.device_key_id[..]) {
            return Ok(Outcome::AlreadyRecorded);
        }
        return Err(Refused::of(Refusal::AlreadyDecided));
    }
    // 4. Open at the signing time and now: a cancelled request takes no decision (the resident's
    //    phone may have queued it before it learnt), an expired one none signed after expiry.
    match RequestState::parse(&request.state) {
        Some(RequestState::Cancelled) => return Err(Refused::of(Refusal::RequestCancelled)),
        Some(RequestState::Pending) => {}
        _ => return Err(Refused::of(Refusal::AlreadyDecided)),
    }
    if signed_at >= request.expires_at {
        return Err(Refused::of(Refusal::RequestExpired));
    }
    if signed_at * 1000 + CLOCK_SKEW_SECS * 1000 < request.created_at_ms {
        // Dated before the request existed: a phone cannot have seen it then.
        return Err(Refused::of(Refusal::SignatureInvalid));
    }
    Ok(Outcome::Accept(Box::new(verified)))
}

#[cfg(test)]
mod tests {
    use congdan_core::crypto::{hex, P256Signer, Signer};
    use congdan_core::signing::wire::Intent;

    use super::*;
    use crate::identity::device_keys::DeviceKey;

    const NOW: i64 = 1_800_000_000;

    fn signer() -> P256Signer {
        P256Signer::from_pkcs8(&P256Signer::generate_pkcs8().unwrap(), None).unwrap()
    }

    fn keys_of(s: &P256Signer, registered_at: i64, revoked_at: Option<i64>) -> DeviceKeys {
        DeviceKeys(vec![DeviceKey {
            account_id: "lan".into(),
            jkt: "jkt".into(),
            public_key: s.public_key().bytes,
            key_id: s.key_id().to_vec(),
            registered_at_ms: registered_at * 1000,
            revoked_at_ms: revoked_at.map(|t| t * 1000),
        }])
    }

    fn request() -> RequestRow {
        RequestRow {
            id: "r1".into(),
            agency_code: "CONG-AN-PHUONG-XA".into(),
            account_id: "lan".into(),
            created_by: "staff".into(),
            title: "t".into(),
            summary: "Tóm tắt".into(),
            purpose: "Mục đích".into(),
            document_sha256: hex(&[7; 32]),
            document_size: 10,
            document_type: "application/pdf".into(),
            document_link: None,
            document_owner: Some("staff".into()),
            created_at_ms: (NOW - 600) * 1000,
            expires_at: NOW + 3600,
            state: "pending".into(),
            cancelled_at_ms: None,
            cancel_reason: None,
            decided_at_ms: None,
            decision: None,
            decision_signed_sha256: None,
            decision_key_id: None,
            decision_response: None,
        }
    }

    fn decision(s: &P256Signer) -> Decision {
        Decision {
            request_id: "r1".into(),
            agency_code: "CONG-AN-PHUONG-XA".into(),
            document_sha256: [7; 32],
            summary_sha256: summary_hash("Tóm tắt"),
            intent: Intent::Approve,
            purpose: "Mục đích".into(),
            decline_reason: None,
            account_id: "lan".into(),
            device_key_id: s.key_id().to_vec(),
            signed_at: NOW as u64,
            expires_at: (NOW + 3600) as u64,
        }
    }

    fn code(statement: &[u8], r: &RequestRow, keys: &DeviceKeys) -> &'static str {
        match check_decision(statement, r, "lan", keys, NOW) {
            Ok(Outcome::Accept(_)) => "accept",
            Ok(Outcome::AlreadyRecorded) => "recorded",
            Err(refused) => refused.code,
        }
    }

    #[test]
    fn checks_run_in_the_documented_order() {
        let s = signer();
        let keys = keys_of(&s, NOW - 86_400, None);
        let good = decision(&s).sign(&s).unwrap();
        assert_eq!(code(&good, &request(), &keys), "accept");
        // A wrong document on a cancelled request: the field is checked before the state.
        let mut d = decision(&s);
        d.document_sha256 = [8; 32];
        let mut cancelled = request();
        cancelled.state = "cancelled".into();
        assert_eq!(code(&d.sign(&s).unwrap(), &cancelled, &keys), "document_mismatch");
        assert_eq!(code(&good, &cancelled, &keys), "request_cancelled");
        // Revoked before signing beats any field; revoked after signing is fine.
        assert_eq!(code(&d.sign(&s).unwrap(), &request(), &keys_of(&s, NOW - 86_400, Some(NOW - 1))), "device_key_revoked");
        assert_eq!(code(&good, &request(), &keys_of(&s, NOW - 86_400, Some(NOW + 1))), "accept");
        // Registered only after the signing time (beyond clock skew): not this resident's key then.
        assert_eq!(code(&good, &request(), &keys_of(&s, NOW + 3600, None)), "device_key_unknown");
        // Someone else's request: before even the signature.
        let mut theirs = request();
        theirs.account_id = "minh".into();
        assert_eq!(code(b"not a statement", &theirs, &keys), "not_your_request");
        assert_eq!(code(b"not a statement", &request(), &keys), "signature_invalid");
        // Decided: the same signed bytes are recorded, anything else refused.
        let mut decided = request();
        decided.state = "signed".into();
        decided.decision_signed_sha256 = Some(congdan_core::signing::wire::signed_bytes_sha256(&good).to_vec());
        decided.decision_key_id = Some(s.key_id().to_vec());
        assert_eq!(code(&good, &decided, &keys), "recorded");
        assert_eq!(code(&decision(&s).sign(&s).unwrap(), &decided, &keys), "recorded", "ECDSA re-signing gives other signature bytes, same signed bytes");
        let mut later = decision(&s);
        later.signed_at += 1;
        assert_eq!(code(&later.sign(&s).unwrap(), &decided, &keys), "already_decided");
        // Expired: signed at the expiry is too late; signed before and sent later is not.
        let mut expired = request();
        expired.expires_at = NOW;
        let mut d = decision(&s);
        d.expires_at = NOW as u64;
        assert_eq!(code(&d.sign(&s).unwrap(), &expired, &keys), "request_expired");
        d.signed_at = (NOW - 1) as u64;
        assert_eq!(code(&d.sign(&s).unwrap(), &expired, &keys), "accept");
    }
}
