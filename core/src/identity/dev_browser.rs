//! A stand-in for the system browser against the built-in development identity provider
//! (`/dev-idp`): follows the redirects to its login form, submits it, and follows the redirects
//! back to the app's redirect URI. For the CLI's `login --demo-user` and for tests; behind the
//! `dev-browser` feature, so it is never in the phone library.

use std::time::Duration;

use crate::error::{Error, LoginError};

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
pub async fn demo_login(authorize_url: &str, user: &str, password: &str, redirect_uri: &str) -> Result<String, Error> {
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
        .form(&[("request_id", request_id.as_str()), ("username", user), ("password", password)])
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
