//! `congdan login`: the native-app login of RFC 8252 from a terminal. The core makes the PKCE
//! login request; the "browser" part is either the resident's own browser coming back to a
//! loopback listener (§7.3), or, with `--demo-user`, this shell filling in the built-in
//! development provider's form over real HTTP, exactly as a browser would.

use std::time::Duration;

use congdan_core::identity::dev_browser;
use congdan_core::identity::wire::AccountInfo;
use congdan_core::{Core, Error, LoginError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

pub async fn run(core: &Core, demo_user: Option<&str>, timeout: Duration, en: bool) -> Result<AccountInfo, Error> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| Error::InvalidConfig(format!("cannot listen on loopback: {e}")))?;
    let port = listener.local_addr().map_err(|e| Error::InvalidConfig(e.to_string()))?.port();
    let redirect_uri = format!("http://127.0.0.1:{port}/callback");
    let request = core.identity().login_start(&redirect_uri)?;
    let callback = match demo_user {
        Some(user) => dev_browser::demo_login(&request.authorize_url, user, "demo", &redirect_uri).await?,
        None => {
            eprintln!(
                "{}",
                if en { "Open this address in your browser to log in:" } else { "Mở địa chỉ sau trong trình duyệt để đăng nhập:" }
            );
            println!("{}", request.authorize_url);
            tokio::time::timeout(timeout, wait_for_browser(&listener, port, en))
                .await
                .map_err(|_| Error::Login(LoginError::Denied("timeout".into())))??
        }
    };
    core.identity().login_finish(&callback).await
}

/// Waits for the browser's one request to the loopback redirect URI and thanks it.
async fn wait_for_browser(listener: &TcpListener, port: u16, en: bool) -> Result<String, Error> {
    loop {
        let (mut socket, _) = listener.accept().await.map_err(|e| Error::Offline(e.to_string()))?;
        let mut buf = vec![0u8; 8192];
        let n = socket.read(&mut buf).await.unwrap_or(0);
        let head = String::from_utf8_lossy(&buf[..n]);
        let Some(target) = head.lines().next().and_then(|l| l.strip_prefix("GET ")).and_then(|l| l.split(' ').next())
        else {
            continue;
        };
        if !target.starts_with("/callback") {
            let _ = socket.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
            continue;
        }
        let page = if en {
            "<!doctype html><meta charset=utf-8><p>You are logged in. You can close this window.</p>"
        } else {
            "<!doctype html><meta charset=utf-8><p>Đăng nhập xong. Bạn có thể đóng cửa sổ này.</p>"
        };
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
            page.len()
        );
        let _ = socket.write_all(response.as_bytes()).await;
        return Ok(format!("http://127.0.0.1:{port}{target}"));
    }
}
