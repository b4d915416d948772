//! The identity capability: login start/finish, session state, logout, and the account.

use congdan_core::identity::wire::AccountInfo;
use congdan_core::identity::{LoginRequest, SessionState};
use congdan_core::{IdentityService, LoginRequiredReason};

use crate::error::CongdanError;

#[uniffi::remote(Record)]
pub struct AccountInfo {
    pub account_id: String,
    pub display_name: String,
    pub national_id_masked: String,
    pub roles: Vec<String>,
}

#[uniffi::remote(Record)]
pub struct LoginRequest {
    pub authorize_url: String,
    pub state: String,
}

#[uniffi::remote(Enum)]
pub enum LoginRequiredReason {
    NotLoggedIn,
    Expired,
    Revoked,
}

#[uniffi::remote(Enum)]
pub enum SessionState {
    LoggedOut,
    Active { account: AccountInfo, access_expires_at_ms: i64 },
    LoginRequired { account: AccountInfo, reason: LoginRequiredReason },
}

/// Login and session. Open `loginStart(...).authorizeUrl` in the system browser (Custom Tabs /
/// ASWebAuthenticationSession, never a web view) and pass the address it returns to
/// `loginFinish`.
#[derive(uniffi::Object)]
pub struct IdentityApi {
    pub(crate) inner: IdentityService,
}

#[uniffi::export(async_runtime = "tokio")]
impl IdentityApi {
    /// `redirect_uri`: the app's `vn.congdan.app:/oauth2redirect`, or a loopback address.
    pub fn login_start(&self, redirect_uri: String) -> Result<LoginRequest, CongdanError> {
        Ok(self.inner.login_start(&redirect_uri)?)
    }

    pub async fn login_finish(&self, callback_url: String) -> Result<AccountInfo, CongdanError> {
        Ok(self.inner.login_finish(&callback_url).await?)
    }

    pub fn session_state(&self) -> Result<SessionState, CongdanError> {
        Ok(self.inner.state()?)
    }

    /// Returns whether the server confirmed the revocation; the local session is wiped either way.
    pub async fn logout(&self) -> Result<bool, CongdanError> {
        Ok(self.inner.logout().await?)
    }

    /// Who the server says is logged in (an authenticated call; refreshes the token if due).
    pub async fn account(&self) -> Result<AccountInfo, CongdanError> {
        Ok(self.inner.account().await?)
    }
}
