//! The public error. The only place where core errors become what a shell sees: a typed variant
//! with a plain Vietnamese and English message and a technical detail free of personal data.

use congdan_core::{Error, LoginError};

#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum CongdanError {
    /// No network or server unreachable. Local data stays usable.
    #[error("{message_en}")]
    Offline { message_vi: String, message_en: String, detail: String },
    /// The phone's database could not be read or written.
    #[error("{message_en}")]
    Storage { message_vi: String, message_en: String, detail: String },
    /// The app must be updated (newer database schema or server data it cannot read).
    #[error("{message_en}")]
    NeedsUpdate { message_vi: String, message_en: String, detail: String },
    /// The server refused the request; `code` is the server's stable error code.
    #[error("{message_en}")]
    Rejected { code: String, message_vi: String, message_en: String, detail: String },
    /// The draft has problems to fix before it can be sent; `issues` says which, field by field.
    #[error("{message_en}")]
    InvalidDraft {
        issues: Vec<congdan_core::drafts::validation::FieldIssue>,
        message_vi: String,
        message_en: String,
        detail: String,
    },
    /// The draft is being sent or was sent: it cannot be changed.
    #[error("{message_en}")]
    DraftLocked { message_vi: String, message_en: String, detail: String },
    /// A login attempt failed; `code` says why (`state_mismatch`, `denied`, `code_rejected`, …).
    #[error("{message_en}")]
    LoginFailed { code: String, message_vi: String, message_en: String, detail: String },
    /// The session is missing or expired: log in again. Local data is kept.
    #[error("{message_en}")]
    LoginRequired { message_vi: String, message_en: String, detail: String },
    /// Invalid settings given to the core (a server URL that is not HTTPS, for instance).
    #[error("{message_en}")]
    InvalidInput { message_vi: String, message_en: String, detail: String },
    /// A platform service implemented by the shell failed.
    #[error("{message_en}")]
    Platform { message_vi: String, message_en: String, detail: String },
    #[error("{message_en}")]
    NotFound { message_vi: String, message_en: String, detail: String },
    #[error("{message_en}")]
    Cancelled { message_vi: String, message_en: String, detail: String },
    /// The server says this account may not do that (an agency action without an agency role).
    #[error("{message_en}")]
    Forbidden { code: String, message_vi: String, message_en: String, detail: String },
}

impl From<Error> for CongdanError {
    fn from(e: Error) -> Self {
        let (vi, en) = e.user_message();
        let (message_vi, message_en, detail) = (vi.to_string(), en.to_string(), e.to_string());
        match e {
            Error::Offline(_) => CongdanError::Offline { message_vi, message_en, detail },
            Error::Database { .. } | Error::CorruptDatabase { .. } | Error::DataDirectory { .. } => {
                CongdanError::Storage { message_vi, message_en, detail }
            }
            Error::SchemaTooNew { .. } | Error::BadData(_) => {
                CongdanError::NeedsUpdate { message_vi, message_en, detail }
            }
            Error::ServerRejected { code, .. } => {
                CongdanError::Rejected { code, message_vi, message_en, detail }
            }
            // One request refused, the session still good: the shell shows the message and
            // keeps the resident where they are.
            Error::Unauthorised { code, .. } => CongdanError::Rejected { code, message_vi, message_en, detail },
            Error::LoginRequired { .. } => CongdanError::LoginRequired { message_vi, message_en, detail },
            Error::Login(reason) => {
                let code = match reason {
                    LoginError::NoPendingLogin => "no_pending_login",
                    LoginError::StateMismatch => "state_mismatch",
                    LoginError::RedirectMismatch => "redirect_mismatch",
                    LoginError::MalformedCallback => "malformed_callback",
                    LoginError::Denied(_) => "denied",
                    LoginError::CodeRejected(_) => "code_rejected",
                };
                CongdanError::LoginFailed { code: code.into(), message_vi, message_en, detail }
            }
            Error::InvalidConfig(_) => CongdanError::InvalidInput { message_vi, message_en, detail },
            // The specific reason (type, size) in both languages, not the generic line.
            Error::AttachmentRefused { problem } => {
                let text = problem.user_message();
                CongdanError::InvalidInput { message_vi: text.vi, message_en: text.en, detail }
            }
            Error::Ticket { .. } => CongdanError::InvalidInput { message_vi, message_en, detail },
            Error::Credential { refusal } => CongdanError::Rejected { code: refusal.code().into(), message_vi, message_en, detail },
            Error::Signing { problem: congdan_core::signing::SigningProblem::Refused(refusal) } => {
                CongdanError::Rejected { code: refusal.code().into(), message_vi, message_en, detail }
            }
            Error::Signing { .. } => CongdanError::InvalidInput { message_vi, message_en, detail },
            Error::Platform { .. } => CongdanError::Platform { message_vi, message_en, detail },
            Error::NotFound { .. } | Error::ProcedureUnavailable { .. } => {
                CongdanError::NotFound { message_vi, message_en, detail }
            }
            Error::DraftLocked { .. } | Error::NoInformationRequested { .. } => {
                CongdanError::DraftLocked { message_vi, message_en, detail }
            }
            Error::DraftInvalid { issues, .. } => CongdanError::InvalidDraft { issues, message_vi, message_en, detail },
            Error::Cancelled => CongdanError::Cancelled { message_vi, message_en, detail },
            Error::Forbidden { code } => CongdanError::Forbidden { code, message_vi, message_en, detail },
        }
    }
}
