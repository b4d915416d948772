//! A resident's phone for the core's tests against the real server: a `Core` on its own data
//! directory with the software keystore, logged in through the development identity provider,
//! and the embedded server configuration those tests start.

#![allow(dead_code)]

use congdan_core::identity::dev_browser;
use congdan_core::identity::wire::AccountInfo;
use congdan_core::platform::Platform;
use congdan_core::{Core, CoreConfig, Error};
use congdan_server::ServerConfig;

/// The app's redirect URI in these tests; the development browser never follows it.
pub const REDIRECT: &str = "http://127.0.0.1:1/callback";

/// The embedded server (SQLite under `dir`, demo data) on a free loopback port.
pub fn server_config(dir: &std::path::Path) -> ServerConfig {
    let mut config = ServerConfig::embedded(dir);
    config.listen = "127.0.0.1:0".parse().unwrap();
    config
}

pub fn phone(dir: &std::path::Path, url: &str) -> Core {
    Core::open(CoreConfig::new(dir, url), Platform::software(dir).unwrap()).unwrap()
}

/// Logs `user` in (password `demo`) through the development provider's form.
pub async fn try_login(core: &Core, user: &str) -> Result<AccountInfo, Error> {
    let request = core.identity().login_start(REDIRECT)?;
    let callback = dev_browser::demo_login(&request.authorize_url, user, "demo", REDIRECT).await?;
    core.identity().login_finish(&callback).await
}

pub async fn login(core: &Core, user: &str) {
    try_login(core, user).await.unwrap_or_else(|e| panic!("login {user}: {e:?}"));
}

/// A sync progress callback that never cancels.
pub fn quiet(_: congdan_core::sync::SyncProgress) -> bool {
    true
}
