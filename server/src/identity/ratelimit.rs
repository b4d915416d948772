//! A token bucket per client address for the login endpoints (`/v1/auth/*`, `/dev-idp/*`): they
//! create database rows and call the identity provider, so one address must not be able to flood
//! them. Which address a request comes from (proxies, IPv6 /64s) is `client_address`'s job.
//! In memory per instance: with N instances behind a balancer an address gets up to N times the
//! budget, which is fine for a brake on abuse.

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
        self.check_at(client_address::bucket_key(ip), Instant::now())
    }

    fn check_at(&self, ip: IpAddr, now: Instant) -> Result<(), u64> {
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
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) * self.limit.refill_secs).ceil().max(1.0) as u64)
        }
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

/// Middleware: applies the limiter to the login paths only.
pub async fn limit_login_paths(State(limiter): State<Arc<RateLimiter>>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if path.starts_with("/v1/auth/") || path.starts_with("/dev-idp/") || path == "/dev-idp" {
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let client = client_address::client_address(peer, request.headers(), &limiter.trusted_proxies);
        if let Err(retry_after) = limiter.check(client) {
            tracing::warn!("login rate limit reached for one client address");
            return too_many_requests(retry_after);
        }
    }
    next.run(request).await
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
}
