//! HTTP client to the congdan server: JSON over HTTPS (plain HTTP only to loopback), timeouts,
//! and retries with exponential backoff and full jitter for transient failures only.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
pub use reqwest::Method;
use reqwest::{header, StatusCode};
use serde::{de::DeserializeOwned, Serialize};
use url::Url;

use super::wire::ErrorBody;
use crate::error::{Error, Result};

/// The largest response body the phone reads (a 500-change feed page is far below it).
pub const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts in total, the first included.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(4),
        }
    }
}

impl RetryPolicy {
    /// Full jitter (a random delay up to the exponential cap) so that thousands of phones coming
    /// back online together do not hit the server in lockstep.
    fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let cap = self
            .base_delay
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max_delay);
        let jittered = rand::thread_rng().gen_range(Duration::ZERO..=cap);
        match retry_after {
            Some(server_says) => server_says.min(Duration::from_secs(30)).max(jittered),
            None => jittered,
        }
    }
}

#[derive(Clone, Debug)]
pub struct ClientConfig {
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub retry: RetryPolicy,
    pub user_agent: String,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            user_agent: format!("congdan-core/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

#[derive(Clone, Debug)]
pub struct ApiClient {
    http: reqwest::Client,
    base: Url,
    retry: RetryPolicy,
    /// The last `DPoP-Nonce` the server sent (RFC 9449 §8); shared by every clone.
    dpop_nonce: Arc<Mutex<Option<String>>>,
    /// Server clock minus phone clock, learned from the last sync (0 until then).
    clock_offset_ms: Arc<AtomicI64>,
    /// Whether `clock_offset_ms` was learned from this server since the client was made.
    clock_offset_known: Arc<AtomicBool>,
}

/// Adds authentication headers to one attempt of a request. Called again for every attempt,
/// because a DPoP proof is single-use (fresh `jti`, current nonce).
pub trait RequestAuth: Send + Sync {
    fn headers(&self, method: &Method, url: &Url, nonce: Option<&str>) -> Result<Vec<(header::HeaderName, String)>>;
}

/// One request: method, path relative to the base URL, optional body with its content type.
pub struct ApiRequest<'a> {
    pub method: Method,
    pub path: &'a str,
    pub body: Option<(Vec<u8>, &'static str)>,
    pub auth: Option<&'a dyn RequestAuth>,
    /// Sent as `Idempotency-Key` (IETF draft: a quoted structured-field string) so a retried
    /// command is answered with its first result instead of being done twice.
    pub idempotency_key: Option<&'a str>,
    /// More request headers (e.g. `Upload-Offset` of a blob chunk).
    pub headers: &'a [(&'static str, String)],
}

/// Checks a server URL: HTTPS, or plain HTTP to this machine (development and tests).
pub fn parse_server_url(raw: &str) -> Result<Url> {
    let mut url = Url::parse(raw.trim())
        .map_err(|e| Error::InvalidConfig(format!("server URL is not a URL: {e}")))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(Error::InvalidConfig(
                "server URL must use https (plain http only to loopback)".into(),
            ))
        }
        other => return Err(Error::InvalidConfig(format!("unsupported URL scheme {other}"))),
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

enum Attempt<T> {
    Done(T),
    Retry { error: Error, retry_after: Option<Duration> },
    /// The server wants a (new) DPoP nonce, which it just sent: retry at once, once.
    NewNonce(Error),
}

impl ApiClient {
    pub fn new(server_url: &str, config: ClientConfig) -> Result<ApiClient> {
        let base = parse_server_url(server_url)?;
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .user_agent(config.user_agent)
            .https_only(base.scheme() == "https")
            .build()
            .map_err(|e| Error::InvalidConfig(format!("HTTP client: {e}")))?;
        Ok(ApiClient {
            http,
            base,
            retry: config.retry,
            dpop_nonce: Arc::new(Mutex::new(None)),
            clock_offset_ms: Arc::new(AtomicI64::new(0)),
            clock_offset_known: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Server clock minus phone clock, as last learned.
    pub fn clock_offset_ms(&self) -> i64 {
        self.clock_offset_ms.load(Ordering::Relaxed)
    }

    /// The offset if a response of this server taught it since the client was made.
    pub fn learned_clock_offset_ms(&self) -> Option<i64> {
        self.clock_offset_known.load(Ordering::Relaxed).then(|| self.clock_offset_ms())
    }

    pub(crate) fn set_clock_offset_ms(&self, offset: i64) {
        self.clock_offset_ms.store(offset, Ordering::Relaxed);
        self.clock_offset_known.store(true, Ordering::Relaxed);
    }

    /// Learns the offset from a response's `Date` header (RFC 9110: whole seconds), taking the
    /// middle of the request as the moment the server stamped it. The sync's millisecond server
    /// time is better, so a `Date` only sets the offset when none is known yet or when the clocks
    /// moved by more than its rounding (the phone's clock was changed).
    fn observe_server_date(&self, date: &str, sent_at_ms: i64, received_at_ms: i64) {
        let Ok(server) = httpdate::parse_http_date(date.trim()) else { return };
        let Ok(since_epoch) = server.duration_since(std::time::UNIX_EPOCH) else { return };
        let server_ms = since_epoch.as_millis() as i64 + 500; // somewhere in that second
        let estimate = server_ms - (sent_at_ms + received_at_ms) / 2;
        let slack = 1_000 + (received_at_ms - sent_at_ms).max(0) / 2;
        match self.learned_clock_offset_ms() {
            Some(known) if (known - estimate).abs() <= slack => {}
            _ => self.set_clock_offset_ms(estimate),
        }
    }

    fn current_nonce(&self) -> Option<String> {
        self.dpop_nonce.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The absolute URL of an API path.
    pub fn url(&self, path: &str) -> Result<Url> {
        self.base.join(path).map_err(|e| Error::InvalidConfig(format!("bad API path {path}: {e}")))
    }

    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// POSTs `body` as JSON to `path` (relative to the base URL) and decodes the JSON answer.
    /// Only requests that are safe to repeat may use this (pulls are; commands carry their own
    /// idempotency key).
    pub async fn post_json<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        let payload = serde_json::to_vec(body).map_err(|e| Error::BadData(e.to_string()))?;
        self.send(ApiRequest { method: Method::POST, path, body: Some((payload, "application/json")), auth: None, idempotency_key: None, headers: &[] })
            .await
    }

    /// Sends one request with retries of transient failures (each attempt gets fresh
    /// authentication headers) and decodes the JSON answer (an empty body decodes as `null`).
    pub async fn send<T: DeserializeOwned>(&self, request: ApiRequest<'_>) -> Result<T> {
        let path = request.path;
        decode_json(&self.send_for_bytes(request).await?, path)
    }

    /// [`ApiClient::send`] answering the success body's raw bytes (at most
    /// [`MAX_RESPONSE_BYTES`]): for files, fetched in `Range` pieces.
    pub async fn send_for_bytes(&self, request: ApiRequest<'_>) -> Result<Vec<u8>> {
        let url = self.url(request.path)?;
        let mut attempt = 0;
        let mut nonce_retried = false;
        loop {
            match self.try_once(&request, &url).await {
                Attempt::Done(v) => return v,
                Attempt::NewNonce(error) => {
                    if nonce_retried {
                        return Err(error);
                    }
                    nonce_retried = true;
                }
                Attempt::Retry { error, retry_after } => {
                    attempt += 1;
                    if attempt >= self.retry.max_attempts {
                        return Err(error);
                    }
                    let delay = self.retry.delay(attempt - 1, retry_after);
                    tracing::debug!(path = request.path, attempt, ?delay, "transient failure, retrying: {error}");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    async fn try_once(&self, request: &ApiRequest<'_>, url: &Url) -> Attempt<Result<Vec<u8>>> {
        let mut builder = self.http.request(request.method.clone(), url.clone()).header(header::ACCEPT, "application/json");
        if let Some((payload, content_type)) = &request.body {
            builder = builder.header(header::CONTENT_TYPE, *content_type).body(payload.clone());
        }
        if let Some(key) = request.idempotency_key {
            builder = builder.header("idempotency-key", format!("\"{key}\""));
        }
        for (name, value) in request.headers {
            builder = builder.header(*name, value);
        }
        if let Some(auth) = request.auth {
            match auth.headers(&request.method, url, self.current_nonce().as_deref()) {
                Ok(headers) => {
                    for (name, value) in headers {
                        builder = builder.header(name, value);
                    }
                }
                Err(e) => return Attempt::Done(Err(e)),
            }
        }
        let sent_at_ms = crate::store::now_millis();
        let sent = builder.send().await;
        let response = match sent {
            Ok(r) => r,
            // Connection refused or reset, DNS failure, timeout: the network or the server is
            // away for now. Never include the URL's query or body in the message.
            Err(e) => {
                return Attempt::Retry {
                    error: Error::Offline(describe_transport_error(&e)),
                    retry_after: None,
                }
            }
        };
        let status = response.status();
        if let Some(date) = response.headers().get(header::DATE).and_then(|v| v.to_str().ok()) {
            self.observe_server_date(date, sent_at_ms, crate::store::now_millis());
        }
        if let Some(nonce) = response.headers().get("dpop-nonce").and_then(|v| v.to_str().ok()) {
            if nonce.len() <= 256 {
                *self.dpop_nonce.lock().unwrap_or_else(|p| p.into_inner()) = Some(nonce.to_string());
            }
        }
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        // A low-end phone must not buffer whatever a broken server or a captive portal sends.
        let too_large = || Attempt::Done(Err(Error::BadData(format!("response from {} is too large", url.path()))));
        if response.content_length().is_some_and(|n| n > MAX_RESPONSE_BYTES as u64) {
            return too_large();
        }
        let mut response = response;
        let mut bytes = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                        return too_large();
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    return Attempt::Retry {
                        error: Error::Offline(describe_transport_error(&e)),
                        retry_after: None,
                    }
                }
            }
        }
        if status.is_success() {
            return Attempt::Done(Ok(bytes));
        }
        let (code, message, details) = match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(b) => (b.error.code, b.error.message, b.error.details.unwrap_or_default()),
            Err(_) => ("unknown".to_string(), format!("HTTP {status}"), serde_json::Value::Null),
        };
        let error = match status {
            StatusCode::UNAUTHORIZED => {
                if code == crate::identity::wire::codes::USE_DPOP_NONCE {
                    return Attempt::NewNonce(Error::Unauthorised { status: status.as_u16(), code });
                }
                Error::Unauthorised { status: status.as_u16(), code }
            }
            _ => Error::ServerRejected { status: status.as_u16(), code, message, details },
        };
        let transient = matches!(
            status,
            StatusCode::REQUEST_TIMEOUT
                | StatusCode::TOO_MANY_REQUESTS
                | StatusCode::INTERNAL_SERVER_ERROR
                | StatusCode::BAD_GATEWAY
                | StatusCode::SERVICE_UNAVAILABLE
                | StatusCode::GATEWAY_TIMEOUT
        );
        if transient {
            Attempt::Retry { error, retry_after }
        } else {
            Attempt::Done(Err(error))
        }
    }
}

/// A success body as JSON (an empty body decodes as `null`).
pub fn decode_json<T: DeserializeOwned>(bytes: &[u8], path: &str) -> Result<T> {
    let bytes: &[u8] = if bytes.is_empty() { b"null" } else { bytes };
    serde_json::from_slice(bytes).map_err(|e| Error::BadData(format!("response from {path}: {e}")))
}

fn describe_transport_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "cannot connect".into()
    } else {
        "connection interrupted".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_loopback() {
        assert!(parse_server_url("https://api.congdan.example").is_ok());
        assert!(parse_server_url("http://127.0.0.1:8080").is_ok());
        assert!(parse_server_url("http://localhost:8080/base").is_ok());
        assert!(parse_server_url("http://[::1]:8080").is_ok());
        assert!(matches!(
            parse_server_url("http://api.congdan.example"),
            Err(Error::InvalidConfig(_))
        ));
        assert!(matches!(parse_server_url("ftp://127.0.0.1"), Err(Error::InvalidConfig(_))));
        assert!(matches!(parse_server_url("not a url"), Err(Error::InvalidConfig(_))));
        assert_eq!(
            parse_server_url("http://localhost:8080/base").unwrap().join("v1/sync/pull").unwrap().path(),
            "/base/v1/sync/pull"
        );
    }

    #[test]
    fn the_clock_offset_is_learned_from_the_date_header_unless_a_finer_one_agrees() {
        let client = ApiClient::new("http://127.0.0.1:9", ClientConfig::default()).unwrap();
        assert_eq!(client.learned_clock_offset_ms(), None);
        // The server stamped 07:00:00 (somewhere in that second); the phone sent 10 s earlier by
        // its own clock and had the answer 200 ms later.
        let sent = 1_795_503_590_000;
        client.observe_server_date("Tue, 24 Nov 2026 07:00:00 GMT", sent, sent + 200);
        assert_eq!(client.learned_clock_offset_ms(), Some(10_400));
        // The sync's millisecond time, within the header's rounding, is kept.
        client.set_clock_offset_ms(10_123);
        client.observe_server_date("Tue, 24 Nov 2026 07:00:00 GMT", sent, sent + 200);
        assert_eq!(client.learned_clock_offset_ms(), Some(10_123));
        // The phone's clock was moved by an hour: the header wins.
        client.observe_server_date("Tue, 24 Nov 2026 08:00:00 GMT", sent, sent + 200);
        assert_eq!(client.learned_clock_offset_ms(), Some(3_610_400));
        client.observe_server_date("not a date", sent, sent + 200);
        assert_eq!(client.clock_offset_ms(), 3_610_400);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::default();
        for attempt in 0..20 {
            let d = p.delay(attempt, None);
            assert!(d <= p.max_delay);
            assert!(d <= p.base_delay.saturating_mul(1 << attempt.min(16)));
        }
        assert!(p.delay(0, Some(Duration::from_secs(3))) >= Duration::from_secs(3));
        assert!(p.delay(0, Some(Duration::from_secs(3600))) <= Duration::from_secs(30));
    }
}
