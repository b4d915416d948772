//! A token bucket per client address for the login endpoints (`/v1/auth/*`, `/dev-idp/*`): they
//! create database rows and call the identity provider, so one address must not be able to flood
//! them. Which address a request comes from (proxies, IPv6 /64s) is `client_address`'s job.
//! In memory per instance: with N instances behind a balancer an address gets up to N times the
//! budget, which is fine for a brake on abuse.
//!
//! Mobile carriers put thousands of phones behind one public IPv4 address (carrier-grade NAT), and
//! each of them refreshes its access token every few minutes. So requests that carry their own
//! credential (a refresh grant, a logout) pay from the address's bucket only when they are
//! refused; they are turned away up front only while the bucket is empty. Logins, which anyone can
//! start, pay as they come.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::client_address::{self, IpNetwork};
use crate::config::RateLimit;
use crate::error::ApiError;

/// Above this many tracked addresses, full buckets are forgotten (they carry no information).
const MAX_TRACKED: usize = 10_000;

pub struct RateLimiter {
    limit: RateLimit,
    trusted_proxies: Vec<IpNetwork>,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl RateLimiter {
    pub fn new(limit: RateLimit, trusted_proxies: Vec<IpNetwork>) -> RateLimiter {
        RateLimiter { limit, trusted_proxies, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one token for the client at `ip` (its bucket: the address, or its IPv6 /64); when
    /// none is left, the seconds until one is.
    pub fn check(&self, ip: IpAddr) -> Result<(), u64> {
        self.admit_at(client_address::bucket_key(ip), Instant::now(), true)
    }

    /// Like [`RateLimiter::check`], but takes nothing: for a request that pays only if refused.
    pub fn admits(&self, ip: IpAddr) -> Result<(), u64> {
        self.admit_at(client_address::bucket_key(ip), Instant::now(), false)
    }

    /// Takes one token for a refused request that was admitted without paying (none left: nothing).
    pub fn charge(&self, ip: IpAddr) {
        let _ = self.admit_at(client_address::bucket_key(ip), Instant::now(), true);
    }

    fn admit_at(&self, ip: IpAddr, now: Instant, take: bool) -> Result<(), u64> {
        let burst = self.limit.burst as f64;
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_TRACKED {
            let (refill, cap) = (self.limit.refill_secs, burst);
            buckets.retain(|_, (tokens, at)| *tokens + now.saturating_duration_since(*at).as_secs_f64() / refill < cap);
        }
        let (tokens, at) = buckets.entry(ip).or_insert((burst, now));
        let earned = now.saturating_duration_since(*at).as_secs_f64() / self.limit.refill_secs;
        *tokens = (*tokens + earned).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            if take {
                *tokens -= 1.0;
            }
            Ok(())
        } else {
            Err(((1.0 - *tokens) * self.limit.refill_secs).ceil().max(1.0) as u64)
        }
    }

    #[cfg(test)]
    fn check_at(&self, ip: IpAddr, now: Instant) -> Result<(), u64> {
        self.admit_at(ip, now, true)
    }
}

/// The answer when an address is over its budget: `429 rate_limited` with `Retry-After`.
pub fn too_many_requests(retry_after_secs: u64) -> Response {
    let mut response = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "too many requests; retry later",
        "Bạn thao tác quá nhanh. Vui lòng thử lại sau ít phút.",
    )
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

/// The largest body read to tell a refresh grant from a login (a token form is under 1 KiB).
const MAX_TOKEN_FORM_BYTES: usize = 16 * 1024;

/// Middleware: applies the limiter to the login paths only.
pub async fn limit_login_paths(State(limiter): State<Arc<RateLimiter>>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if !(path.starts_with("/v1/auth/") || path.starts_with("/dev-idp/") || path == "/dev-idp") {
        return next.run(request).await;
    }
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let client = client_address::client_address(peer, request.headers(), &limiter.trusted_proxies);
    let (request, pays_only_if_refused) = match carries_its_own_credential(request).await {
        Ok(judged) => judged,
        Err(refused) => return refused,
    };
    let admitted = if pays_only_if_refused { limiter.admits(client) } else { limiter.check(client) };
    if let Err(retry_after) = admitted {
        tracing::warn!("login rate limit reached for one client address");
        return too_many_requests(retry_after);
    }
    let response = next.run(request).await;
    if pays_only_if_refused && response.status().is_client_error() && !is_nonce_challenge(&response) {
        limiter.charge(client);
    }
    response
}

/// A `use_dpop_nonce` answer is the protocol's normal first round, not a refusal.
fn is_nonce_challenge(response: &Response) -> bool {
    response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("use_dpop_nonce"))
}

/// Whether the request is a refresh grant or a logout (the request is given back whole: a token
/// request's small form body is read to see its grant type).
async fn carries_its_own_credential(request: Request) -> Result<(Request, bool), Response> {
    let path = request.uri().path();
    if path == "/v1/auth/logout" {
        return Ok((request, true));
    }
    if path != "/v1/auth/token" || request.method() != axum::http::Method::POST {
        return Ok((request, false));
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_TOKEN_FORM_BYTES).await.map_err(|_| ApiError::body_too_large().into_response())?;
    let refresh = url::form_urlencoded::parse(&bytes).any(|(k, v)| k == "grant_type" && v == "refresh_token");
    Ok((Request::from_parts(parts, axum::body::Body::from(bytes)), refresh))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_refill_per_address() {
        let limiter = RateLimiter::new(RateLimit { burst: 2, refill_secs: 2.0 }, Vec::new());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        assert!(limiter.check_at(a, t0).is_ok());
        assert!(limiter.check_at(a, t0).is_ok());
        assert_eq!(limiter.check_at(a, t0), Err(2));
        assert!(limiter.check_at(b, t0).is_ok(), "another address has its own bucket");
        assert!(limiter.check_at(a, t0 + Duration::from_secs(2)).is_ok(), "one token earned back");
        assert!(limiter.check_at(a, t0 + Duration::from_secs(2)).is_err());
    }

    #[test]
    fn admitting_takes_nothing_and_a_charge_never_goes_below_empty() {
        let limiter = RateLimiter::new(RateLimit { burst: 2, refill_secs: 600.0 }, Vec::new());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..100 {
            assert!(limiter.admits(a).is_ok(), "a credentialed request that succeeds pays nothing");
        }
        limiter.charge(a);
        limiter.charge(a);
        limiter.charge(a);
        assert!(limiter.admits(a).is_err(), "two refusals spent the budget");
        assert!(limiter.check(a).is_err());
    }
}
