//! `congdan login`: the native-app login of RFC 8252 from a terminal. The core makes the PKCE
//! login request; the "browser" part is either the resident's own browser coming back to a
//! loopback listener (§7.3), or, with `--demo-user`, this shell filling in the built-in
//! development provider's form over real HTTP, exactly as a browser would.

use std::time::Duration;

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
        Some(user) => demo_browser(&request.authorize_url, user, &redirect_uri).await?,
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

fn browser_error(e: reqwest::Error) -> Error {
    Error::Offline(if e.is_connect() { "cannot connect".into() } else { "browser request failed".into() })
}

/// The `Location` of a redirect, resolved against the request URL.
fn location(response: &reqwest::Response) -> Result<url::Url, Error> {
    let raw = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Error::BadData(format!("expected a redirect, got HTTP {}", response.status())))?;
    response.url().join(raw).map_err(|_| Error::BadData("redirect to an unreadable address".into()))
}

/// The value of the hidden `request_id` input in the provider's login form.
fn hidden_request_id(html: &str) -> Option<String> {
    let at = html.find("name=\"request_id\"")?;
    let tag_start = html[..at].rfind('<')?;
    let tag_end = at + html[at..].find('>')?;
    let tag = &html[tag_start..tag_end];
    let value_at = tag.find("value=\"")? + "value=\"".len();
    let value_end = value_at + tag[value_at..].find('"')?;
    Some(tag[value_at..value_end].to_string())
}

/// Plays the browser for the built-in development provider: follows the redirects to its form,
/// signs in as `user` with the demo password, and follows the redirects back until the one to
/// `redirect_uri`, which is returned (never requested, as the app would intercept it).
async fn demo_browser(authorize_url: &str, user: &str, redirect_uri: &str) -> Result<String, Error> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| Error::InvalidConfig(e.to_string()))?;
    // Our server's authorize endpoint sends the browser to the identity provider.
    let to_provider = location(&http.get(authorize_url).send().await.map_err(browser_error)?)?;
    let form_page = http.get(to_provider.clone()).send().await.map_err(browser_error)?;
    if !form_page.status().is_success() {
        return Err(Error::BadData(format!("the login page answered HTTP {}", form_page.status())));
    }
    let html = form_page.text().await.map_err(browser_error)?;
    let request_id = hidden_request_id(&html)
        .ok_or_else(|| Error::BadData("the login page has no login form (is the development provider on?)".into()))?;
    let mut form_target = to_provider.clone();
    form_target.set_query(None);
    let submitted = http
        .post(form_target)
        .form(&[("request_id", request_id.as_str()), ("username", user), ("password", "demo")])
        .send()
        .await
        .map_err(browser_error)?;
    if submitted.status().is_success() {
        return Err(Error::Login(LoginError::Denied("unknown_demo_user".into())));
    }
    // Back to our server's callback, which sends the browser on to the app.
    let mut next = location(&submitted)?;
    for _ in 0..5 {
        if next.as_str().starts_with(redirect_uri) {
            return Ok(next.into());
        }
        next = location(&http.get(next).send().await.map_err(browser_error)?)?;
    }
    Err(Error::BadData("too many redirects during login".into()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_the_hidden_request_id_whatever_the_attribute_order() {
        let a = r#"<form><input type="hidden" name="request_id" value="abc-1"><input name="username"></form>"#;
        let b = r#"<input value="xyz_2" type="hidden" name="request_id" />"#;
        assert_eq!(super::hidden_request_id(a).as_deref(), Some("abc-1"));
        assert_eq!(super::hidden_request_id(b).as_deref(), Some("xyz_2"));
        assert_eq!(super::hidden_request_id("<p>no form</p>"), None);
    }
}
