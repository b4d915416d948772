//! The identity failures a client can react to, as `ApiError`s with the headers RFC 9449 and
//! RFC 6750 ask for (`WWW-Authenticate`, `DPoP-Nonce`).

use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

pub const DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");

/// Why an authenticated request was refused (docs/identity.md, "Authenticated requests").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    MissingToken,
    InvalidToken,
    TokenExpired,
    InvalidDpopProof,
    DpopKeyMismatch,
    DpopMethodMismatch,
    DpopUrlMismatch,
    UseDpopNonce,
    DpopReplay,
    TokenRevoked,
    Forbidden,
}

impl AuthFailure {
    pub fn code(self) -> &'static str {
        match self {
            AuthFailure::MissingToken => "missing_token",
            AuthFailure::InvalidToken => "invalid_token",
            AuthFailure::TokenExpired => "token_expired",
            AuthFailure::InvalidDpopProof => "invalid_dpop_proof",
            AuthFailure::DpopKeyMismatch => "dpop_key_mismatch",
            AuthFailure::DpopMethodMismatch => "dpop_method_mismatch",
            AuthFailure::DpopUrlMismatch => "dpop_url_mismatch",
            AuthFailure::UseDpopNonce => "use_dpop_nonce",
            AuthFailure::DpopReplay => "dpop_replay",
            AuthFailure::TokenRevoked => "token_revoked",
            AuthFailure::Forbidden => "forbidden",
        }
    }

    fn message(self) -> &'static str {
        match self {
            AuthFailure::MissingToken => "authentication required: Authorization: DPoP <token>",
            AuthFailure::InvalidToken => "access token is not valid",
            AuthFailure::TokenExpired => "access token has expired",
            AuthFailure::InvalidDpopProof => "DPoP proof missing or invalid",
            AuthFailure::DpopKeyMismatch => "DPoP proof is signed by another key than the token's",
            AuthFailure::DpopMethodMismatch => "DPoP proof is for another HTTP method",
            AuthFailure::DpopUrlMismatch => "DPoP proof is for another URL",
            AuthFailure::UseDpopNonce => "DPoP proof needs the nonce in the DPoP-Nonce header",
            AuthFailure::DpopReplay => "DPoP proof was already used",
            AuthFailure::TokenRevoked => "the login session has ended",
            AuthFailure::Forbidden => "your account may not do this",
        }
    }

    fn message_vi(self) -> &'static str {
        match self {
            AuthFailure::UseDpopNonce | AuthFailure::DpopReplay => "Vui lòng thử lại.",
            AuthFailure::Forbidden => "Tài khoản của bạn không có quyền thực hiện thao tác này.",
            AuthFailure::TokenExpired => "Phiên làm việc đã hết hạn. Đang gia hạn, vui lòng thử lại.",
            _ => "Phiên đăng nhập không hợp lệ. Vui lòng đăng nhập lại.",
        }
    }
}

/// An `ApiError` plus response headers.
#[derive(Debug)]
pub struct Rejection {
    pub error: ApiError,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Rejection {
    pub fn auth(failure: AuthFailure, nonce: Option<&str>) -> Rejection {
        let status = if failure == AuthFailure::Forbidden { StatusCode::FORBIDDEN } else { StatusCode::UNAUTHORIZED };
        let mut headers = Vec::new();
        let challenge = match failure {
            AuthFailure::Forbidden => None,
            AuthFailure::MissingToken => Some("DPoP algs=\"ES256\"".to_string()),
            AuthFailure::UseDpopNonce => Some("DPoP error=\"use_dpop_nonce\", error_description=\"Resource server requires nonce in DPoP proof\"".to_string()),
            AuthFailure::InvalidDpopProof | AuthFailure::DpopMethodMismatch | AuthFailure::DpopUrlMismatch | AuthFailure::DpopReplay => {
                Some("DPoP algs=\"ES256\", error=\"invalid_dpop_proof\"".to_string())
            }
            _ => Some("DPoP algs=\"ES256\", error=\"invalid_token\"".to_string()),
        };
        if let Some(v) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            headers.push((header::WWW_AUTHENTICATE, v));
        }
        if let Some(v) = nonce.and_then(|n| HeaderValue::from_str(n).ok()) {
            headers.push((DPOP_NONCE, v));
        }
        Rejection { error: ApiError::new(status, failure.code(), failure.message(), failure.message_vi()), headers }
    }

    pub fn code(&self) -> &'static str {
        self.error.code
    }
}

impl From<ApiError> for Rejection {
    fn from(error: ApiError) -> Self {
        Rejection { error, headers: Vec::new() }
    }
}

impl From<crate::db::DbError> for Rejection {
    fn from(e: crate::db::DbError) -> Self {
        Rejection::from(ApiError::from(e))
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let mut response = self.error.into_response();
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}
