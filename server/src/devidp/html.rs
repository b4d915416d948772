//! The provider's HTML pages: Vietnamese first, English second, plain and large, for older
//! people on small phones. Everything that comes from a request is escaped.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use super::{DemoResident, DEMO_PASSWORD};

/// Escapes text for HTML element content and double-quoted attribute values.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;font-size:22px;line-height:1.5;max-width:32em;\
margin:1em auto;padding:0 1em;color:#111;background:#fff}\
h1{font-size:1.5em}label{display:block;margin-top:1em;font-weight:bold}\
input[type=text],input[type=password]{font-size:1.2em;width:100%;padding:.5em;box-sizing:border-box;\
border:2px solid #333;border-radius:6px}\
button{font-size:1.2em;padding:.6em 1.2em;margin:1.2em .5em 0 0;border-radius:6px;border:2px solid #333}\
.primary{background:#0b5cad;color:#fff;border-color:#0b5cad}\
.error{background:#fde8e8;border:2px solid #b00;padding:.6em;border-radius:6px}\
.en{color:#444}.demo{margin-top:2em;font-size:.9em;color:#333}";

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"vi\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title}</title><style>{STYLE}</style></head><body>{body}</body></html>"
    );
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    // A login page must not be cached, framed (clickjacking) or leak its URL to other sites.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

/// A dead end with a plain message in both languages (no redirect is possible or allowed).
pub(super) fn error_page(status: StatusCode, vietnamese: &str, english: &str) -> Response {
    let body = format!(
        "<h1>Không thể đăng nhập</h1><p class=\"en\">Cannot sign in</p>\
<p class=\"error\">{}</p><p class=\"en\">{}</p>",
        escape(vietnamese),
        escape(english)
    );
    page(status, "Không thể đăng nhập / Cannot sign in", &body)
}

/// What went wrong on the previous attempt, shown above the form.
pub(super) struct LoginProblem {
    pub attempts_left: u8,
}

/// The login form. `request_id` names the pending request; `username` is refilled after a
/// wrong password so that an older user only has to type the password again.
pub(super) fn login_page(
    form_action: &str,
    request_id: &str,
    username: &str,
    problem: Option<LoginProblem>,
    residents: &[DemoResident],
) -> Response {
    let problem_html = match problem {
        Some(LoginProblem { attempts_left }) => format!(
            "<p class=\"error\" role=\"alert\">Sai tên đăng nhập hoặc mật khẩu. Còn {attempts_left} lần thử.<br>\
<span class=\"en\">Wrong username or password. {attempts_left} attempts left.</span></p>"
        ),
        None => String::new(),
    };
    let demo_list: String = residents
        .iter()
        .map(|r| format!("<li><b>{}</b>: {}</li>", escape(r.username), escape(r.display_name)))
        .collect();
    let body = format!(
        "<h1>Đăng nhập</h1><p class=\"en\">Sign in</p>\
<p>Nhà cung cấp định danh <b>thử nghiệm</b> (không phải VNeID).<br>\
<span class=\"en\">Development identity provider (not VNeID).</span></p>\
{problem_html}\
<form method=\"post\" action=\"{action}\">\
<input type=\"hidden\" name=\"request_id\" value=\"{request_id}\">\
<label for=\"username\">Tên đăng nhập <span class=\"en\">/ Username</span></label>\
<input type=\"text\" id=\"username\" name=\"username\" value=\"{username}\" autocomplete=\"username\" \
autocapitalize=\"none\" autofocus>\
<label for=\"password\">Mật khẩu <span class=\"en\">/ Password</span></label>\
<input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\">\
<div><button type=\"submit\" name=\"action\" value=\"login\" class=\"primary\">Đăng nhập / Sign in</button>\
<button type=\"submit\" name=\"action\" value=\"deny\">Từ chối / Cancel</button></div>\
</form>\
<div class=\"demo\"><p>Tài khoản thử nghiệm (mật khẩu: <b>{password}</b>)<br>\
<span class=\"en\">Demo accounts (password: <b>{password}</b>)</span></p><ul>{demo_list}</ul></div>",
        action = escape(form_action),
        request_id = escape(request_id),
        username = escape(username),
        password = escape(DEMO_PASSWORD),
    );
    page(StatusCode::OK, "Đăng nhập / Sign in", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(escape(r#"<a href="x">'&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
        assert_eq!(escape("Nguyễn Thị Lan"), "Nguyễn Thị Lan");
    }
}
