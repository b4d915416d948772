//! The JSON side of document signing, shared by the core and the server: account-feed changes,
//! the decision body, paths, and the refusal codes with what the resident reads for each.

use serde::{Deserialize, Serialize};

/// Feed change: a new or updated request for the resident (`data`: [`SignatureRequestView`]).
pub const REQUEST_CHANGE: &str = "signature.request";
/// Feed change: a request was cancelled, expired or decided (`data`: [`SignatureStateChange`]).
pub const STATE_CHANGE: &str = "signature.state";
/// The outbox kind of an approval or a decline (subject: the request id).
pub const DECISION_KIND: &str = "signature.decision";

/// `GET` the request's document: the resident's own requests only.
pub fn document_path(request_id: &str) -> String {
    format!("v1/signature-requests/{request_id}/document")
}

/// `POST` a [`DecisionBody`] with an `Idempotency-Key`.
pub fn decision_path(request_id: &str) -> String {
    format!("v1/signature-requests/{request_id}/decision")
}

/// A request's life: `pending` until the resident decides or the agency cancels or it expires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    Pending,
    Signed,
    Declined,
    Expired,
    Cancelled,
}

impl RequestState {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::Pending => "pending",
            RequestState::Signed => "signed",
            RequestState::Declined => "declined",
            RequestState::Expired => "expired",
            RequestState::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<RequestState> {
        [Self::Pending, Self::Signed, Self::Declined, Self::Expired, Self::Cancelled]
            .into_iter()
            .find(|s| s.as_str() == text)
    }

    pub fn is_final(self) -> bool {
        self != RequestState::Pending
    }
}

/// The document to sign, as the request describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentRef {
    /// SHA-256 of the document bytes, lower-case hex: the phone refuses anything else.
    pub sha256: String,
    pub size: u64,
    /// e.g. `application/pdf`.
    pub content_type: String,
    /// Where the document lives when the agency keeps it elsewhere; otherwise it is fetched from
    /// [`document_path`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// A signature request as the resident sees it (`signature.request` change data).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureRequestView {
    pub id: String,
    pub agency_code: String,
    pub title: String,
    /// The full summary shown before signing; its SHA-256 goes into the decision.
    pub summary: String,
    /// What the signature is for.
    pub purpose: String,
    pub document: DocumentRef,
    /// Unix seconds.
    pub created_at: u64,
    pub expires_at: u64,
    pub state: RequestState,
}

/// `signature.state` change data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureStateChange {
    pub id: String,
    pub state: RequestState,
    /// Unix seconds.
    pub at: u64,
    /// The agency's reason for a cancellation, or the resident's for a decline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `POST v1/signature-requests/{id}/decision`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// base64url (no padding) of the signed [`super::wire::Decision`].
    pub statement: String,
}

/// The server's answer to an accepted decision (also replayed for every retry of the same key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionReceipt {
    pub request_id: String,
    pub state: RequestState,
    /// Unix seconds.
    pub decided_at: u64,
}

/// Why the server refused a decision: the `code` of its error body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    SignatureInvalid,
    DocumentMismatch,
    SummaryMismatch,
    NotYourRequest,
    DeviceKeyUnknown,
    DeviceKeyRevoked,
    RequestExpired,
    RequestCancelled,
    AlreadyDecided,
    Replayed,
}

impl Refusal {
    pub const ALL: [Refusal; 10] = [
        Refusal::SignatureInvalid,
        Refusal::DocumentMismatch,
        Refusal::SummaryMismatch,
        Refusal::NotYourRequest,
        Refusal::DeviceKeyUnknown,
        Refusal::DeviceKeyRevoked,
        Refusal::RequestExpired,
        Refusal::RequestCancelled,
        Refusal::AlreadyDecided,
        Refusal::Replayed,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Refusal::SignatureInvalid => "signature_invalid",
            Refusal::DocumentMismatch => "document_mismatch",
            Refusal::SummaryMismatch => "summary_mismatch",
            Refusal::NotYourRequest => "not_your_request",
            Refusal::DeviceKeyUnknown => "device_key_unknown",
            Refusal::DeviceKeyRevoked => "device_key_revoked",
            Refusal::RequestExpired => "request_expired",
            Refusal::RequestCancelled => "request_cancelled",
            Refusal::AlreadyDecided => "already_decided",
            Refusal::Replayed => "replayed",
        }
    }

    pub fn from_code(code: &str) -> Option<Refusal> {
        Refusal::ALL.into_iter().find(|r| r.code() == code)
    }

    /// The HTTP status the server answers with.
    pub fn http_status(self) -> u16 {
        match self {
            Refusal::SignatureInvalid | Refusal::DocumentMismatch | Refusal::SummaryMismatch => 422,
            Refusal::NotYourRequest => 404,
            Refusal::DeviceKeyUnknown | Refusal::DeviceKeyRevoked => 403,
            Refusal::RequestExpired | Refusal::RequestCancelled => 410,
            Refusal::AlreadyDecided | Refusal::Replayed => 409,
        }
    }

    /// What the resident reads: Vietnamese, then English.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::SignatureInvalid => "Chữ ký không hợp lệ. / The signature is not valid.",
            Refusal::DocumentMismatch => {
                "Tài liệu đã ký khác với tài liệu của yêu cầu. / The signed document differs from the request's."
            }
            Refusal::SummaryMismatch => {
                "Nội dung tóm tắt đã ký khác với yêu cầu. / The signed summary differs from the request's."
            }
            Refusal::NotYourRequest => "Yêu cầu này không dành cho bạn. / This request is not addressed to you.",
            Refusal::DeviceKeyUnknown => {
                "Khóa của thiết bị này chưa được đăng ký. / This device's key is not registered."
            }
            Refusal::DeviceKeyRevoked => "Khóa của thiết bị này đã bị thu hồi. / This device's key has been revoked.",
            Refusal::RequestExpired => "Yêu cầu ký đã hết hạn. / The signature request has expired.",
            Refusal::RequestCancelled => "Cơ quan đã hủy yêu cầu ký. / The agency cancelled the signature request.",
            Refusal::AlreadyDecided => "Yêu cầu này đã được trả lời. / This request has already been answered.",
            Refusal::Replayed => "Quyết định này đã được gửi trước đó. / This decision was already sent.",
        }
    }
}
