//! The core's internal error type. It carries context for developers and logs, never personal
//! data: no field values, tokens or identity numbers end up in a message. The FFI crate converts
//! it to the public error in exactly one place, using [`Error::user_message`] for what a person sees.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database error while {context}: {source}")]
    Database {
        context: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("database file {path} is corrupt or is not a congdan database")]
    CorruptDatabase { path: PathBuf },
    #[error("database schema version {found} is newer than this app understands ({supported})")]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("cannot use data directory {path}: {source}")]
    DataDirectory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    #[error("server unreachable: {0}")]
    Offline(String),
    #[error("server rejected the request ({status} {code}): {message}")]
    ServerRejected {
        status: u16,
        code: String,
        message: String,
        /// Structured details the server sent with the refusal (field issues of a submission).
        details: serde_json::Value,
    },
    /// The server refused one request's authentication; the session is not over (a session
    /// that is becomes [`Error::LoginRequired`]).
    #[error("not authorised by the server ({status} {code})")]
    Unauthorised { status: u16, code: String },
    #[error("login required: {reason:?}")]
    LoginRequired { reason: LoginRequiredReason },
    #[error("login failed: {0}")]
    Login(LoginError),
    #[error("server sent data this app cannot read: {0}")]
    BadData(String),
    #[error("platform service {service} failed: {message}")]
    Platform { service: &'static str, message: String },
    #[error("{what} not found")]
    NotFound { what: &'static str },
    #[error("cancelled")]
    Cancelled,
    #[error("the draft cannot be changed while it is {state}")]
    DraftLocked { state: &'static str },
    #[error("the draft has {count} problems to fix before it can be sent")]
    DraftInvalid { count: usize, issues: Vec<crate::drafts::validation::FieldIssue> },
    #[error("procedure {code} is not in the catalog or was withdrawn")]
    ProcedureUnavailable { code: String },
    /// A file refused as an attachment (by its content, not its name); `problem.user_message()`
    /// says why in Vietnamese and English.
    #[error("attachment refused: {problem}")]
    AttachmentRefused { problem: crate::drafts::content_type::AttachmentProblem },
    /// A ticket that cannot be bought as asked or shown now; `problem.user_message()` says why
    /// in Vietnamese and English.
    #[error("ticket: {problem}")]
    Ticket { problem: crate::tickets::TicketProblem },
    /// The identity credential cannot be shown (expired); `refusal.user_message()` says why.
    #[error("identity credential: {refusal}")]
    Credential { refusal: crate::identity::credential::CredentialRefusal },
    /// A signature request that cannot be fetched or decided now, or a refused decision;
    /// `problem.user_message()` says why in Vietnamese and English.
    #[error("signing: {problem}")]
    Signing { problem: crate::signing::SigningProblem },
    /// An answer to a case whose agency is not (or no longer) asking for information.
    #[error("the case is {status}: no information is asked for")]
    NoInformationRequested { status: String },
    /// The server says this account may not do that (403: no agency role, for instance).
    #[error("not allowed by the server ({code})")]
    Forbidden { code: String },
}

/// Why the resident must log in (again). Local data is kept in every case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginRequiredReason {
    /// Nobody has logged in on this device (or the resident logged out).
    NotLoggedIn,
    /// The session ran out (refresh token expired).
    Expired,
    /// The server revoked the session (logout elsewhere, a reused refresh token, a blocked device).
    Revoked,
}

/// A login attempt that cannot be finished.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    #[error("no login is in progress on this device")]
    NoPendingLogin,
    #[error("the login answer belongs to another login attempt (state mismatch)")]
    StateMismatch,
    #[error("the login answer came back to an unexpected address")]
    RedirectMismatch,
    #[error("the login answer is malformed")]
    MalformedCallback,
    #[error("the identity provider refused or the resident cancelled ({0})")]
    Denied(String),
    #[error("the server refused the login code ({0})")]
    CodeRejected(String),
}

impl Error {
    pub(crate) fn db(context: &'static str) -> impl FnOnce(rusqlite::Error) -> Error {
        move |source| Error::Database { context, source }
    }

    /// Short, plain message for a person, in Vietnamese first and English second.
    pub fn user_message(&self) -> (&'static str, &'static str) {
        match self {
            Error::Database { .. } => (
                "Không lưu được dữ liệu trên máy. Vui lòng thử lại.",
                "Could not save data on this phone. Please try again.",
            ),
            Error::CorruptDatabase { .. } => (
                "Dữ liệu trên máy bị hỏng. Vui lòng liên hệ hỗ trợ.",
                "The data on this phone is damaged. Please contact support.",
            ),
            Error::SchemaTooNew { .. } => (
                "Dữ liệu được tạo bởi phiên bản mới hơn. Vui lòng cập nhật ứng dụng.",
                "This data comes from a newer version. Please update the app.",
            ),
            Error::DataDirectory { .. } => (
                "Không truy cập được bộ nhớ của máy.",
                "Cannot access the phone's storage.",
            ),
            Error::InvalidConfig(_) => ("Cấu hình ứng dụng không hợp lệ.", "The app's settings are not valid."),
            Error::Offline(_) => (
                "Chưa có kết nối mạng. Dữ liệu sẽ được gửi khi có mạng.",
                "No connection. Your data will be sent when you are online.",
            ),
            Error::ServerRejected { .. } => (
                "Máy chủ từ chối yêu cầu.",
                "The server refused the request.",
            ),
            // One request refused; the session stays (docs/identity.md, "How the phone reacts").
            Error::Unauthorised { .. } => (
                "Máy chủ chưa xác nhận được yêu cầu từ điện thoại này. Vui lòng thử lại.",
                "The server could not confirm this request came from this phone. Please try again.",
            ),
            Error::LoginRequired { .. } => {
                ("Vui lòng đăng nhập lại. Dữ liệu trên máy vẫn được giữ.", "Please log in again. Your data on this phone is kept.")
            }
            Error::Login(LoginError::Denied(_)) => (
                "Đăng nhập đã bị huỷ hoặc bị từ chối.",
                "The login was cancelled or refused.",
            ),
            Error::Login(_) => (
                "Đăng nhập không thành công. Vui lòng thử đăng nhập lại.",
                "The login did not complete. Please try again.",
            ),
            Error::BadData(_) => (
                "Máy chủ gửi dữ liệu không đọc được. Vui lòng cập nhật ứng dụng.",
                "The server sent data this app cannot read. Please update the app.",
            ),
            Error::Platform { .. } => (
                "Dịch vụ của điện thoại không phản hồi.",
                "A phone service did not respond.",
            ),
            Error::NotFound { .. } => ("Không tìm thấy.", "Not found."),
            Error::Cancelled => ("Đã huỷ.", "Cancelled."),
            Error::DraftLocked { .. } => (
                "Hồ sơ đang được gửi hoặc đã gửi nên không sửa được.",
                "This dossier is being sent or was sent, so it cannot be changed.",
            ),
            Error::DraftInvalid { .. } => (
                "Hồ sơ còn thông tin cần sửa trước khi gửi.",
                "Some information needs fixing before the dossier can be sent.",
            ),
            Error::ProcedureUnavailable { .. } => (
                "Thủ tục này không còn được nhận trực tuyến.",
                "This procedure is no longer accepted online.",
            ),
            Error::NoInformationRequested { .. } => (
                "Cơ quan không yêu cầu bổ sung thông tin cho hồ sơ này.",
                "The agency is not asking for more information on this case.",
            ),
            Error::Forbidden { .. } => (
                "Tài khoản này không có quyền thực hiện việc này.",
                "This account is not allowed to do this.",
            ),
            Error::Ticket { problem } => problem.user_message(),
            // Raised on the resident's own phone (the desk's refusals are answers, not errors).
            Error::Credential { refusal: crate::identity::credential::CredentialRefusal::Expired } => (
                "Thẻ định danh trên máy đã hết hạn. Hãy kết nối mạng để gia hạn.",
                "The identity card on this phone has expired. Go online to renew it.",
            ),
            Error::Credential { refusal } => refusal.user_message(),
            Error::Signing { problem } => problem.user_message(),
            Error::AttachmentRefused { .. } => (
                "Tệp này không đính kèm được. Vui lòng chọn ảnh chụp (JPG, PNG, HEIC) hoặc tệp PDF nhỏ hơn.",
                "This file cannot be attached. Please choose a smaller photo (JPG, PNG, HEIC) or PDF file.",
            ),
        }
    }
}
