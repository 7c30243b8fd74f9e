//! Rate limits: token buckets per credential and per client address, checked
//! before any work is done. Expensive routes (search, questions, uploads,
//! record batches, plugin installs, erasure) cost more tokens than cheap
//! ones. An empty bucket answers 429 with `Retry-After`.
//!
//! Buckets live in this process: several instances each enforce their own.
//! The credential key is a hash of the bearer value, so no secret is kept.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::AppState;
use super::error::Error;

/// Tokens an expensive request takes.
pub const EXPENSIVE_COST: f64 = 5.0;

/// Buckets are forgotten once this many exist and they are full again.
const MAX_BUCKETS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// A family of token buckets with one capacity and refill rate.
#[derive(Debug)]
pub struct Limiter {
    capacity: f64,
    per_second: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl Limiter {
    /// `per_minute` requests a minute on average, with bursts up to the same.
    pub fn per_minute(per_minute: u32) -> Limiter {
        let capacity = f64::from(per_minute.max(1));
        Limiter {
            capacity,
            per_second: capacity / 60.0,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes `cost` tokens from `key`'s bucket, or says how long to wait.
    pub fn take(&self, key: &str, cost: f64, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_BUCKETS {
            let (capacity, rate) = (self.capacity, self.per_second);
            buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < capacity
            });
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: self.capacity,
            at: now,
        });
        let refilled = now.saturating_duration_since(bucket.at).as_secs_f64() * self.per_second;
        bucket.tokens = (bucket.tokens + refilled).min(self.capacity);
        bucket.at = now;
        let cost = cost.min(self.capacity);
        if bucket.tokens >= cost {
            bucket.tokens -= cost;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (cost - bucket.tokens) / self.per_second,
            ))
        }
    }
}

/// The limits of the API.
#[derive(Debug)]
pub struct RateLimits {
    /// Per credential (bearer value).
    pub principal: Limiter,
    /// Per client address.
    pub address: Limiter,
}

fn expensive(method: &Method, route: &str) -> bool {
    route.ends_with("/search")
        || route.ends_with("/ask")
        || route.ends_with("/erase")
        || (method == Method::POST
            && (route.ends_with("/documents")
                || route.ends_with("/records")
                || route == "/api/v1/plugins"))
}

/// The middleware: public operations endpoints are not limited.
pub async fn enforce(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    if matches!(route.as_str(), "/health" | "/ready" | "/metrics") {
        return next.run(request).await;
    }
    let cost = if expensive(request.method(), &route) {
        EXPENSIVE_COST
    } else {
        1.0
    };
    let now = Instant::now();
    let address = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let credential = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| hex::encode(&Sha256::digest(v.as_bytes())[..12]));
    let limits = &state.limits;
    let mut verdict = Ok(());
    if let Some(address) = &address {
        verdict = limits.address.take(&format!("ip:{address}"), cost, now);
    }
    if verdict.is_ok()
        && let Some(credential) = &credential
    {
        verdict = limits
            .principal
            .take(&format!("cred:{credential}"), cost, now);
    }
    match verdict {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
            metrics::counter!("http_rate_limited_total").increment(1);
            let mut response = Error::problem(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many requests; retry in {seconds} s"),
            )
            .into_response();
            if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_empty_refill_and_say_how_long_to_wait() {
        let limiter = Limiter::per_minute(60);
        let t0 = Instant::now();
        for _ in 0..60 {
            assert!(limiter.take("a", 1.0, t0).is_ok());
        }
        let wait = limiter.take("a", 1.0, t0).unwrap_err();
        assert!((wait.as_secs_f64() - 1.0).abs() < 1e-6, "{wait:?}");
        assert!(limiter.take("b", 1.0, t0).is_ok(), "buckets are per key");
        assert!(limiter.take("a", 1.0, t0 + Duration::from_secs(1)).is_ok());
        assert!(limiter.take("a", 5.0, t0 + Duration::from_secs(2)).is_err());
        assert!(limiter.take("a", 5.0, t0 + Duration::from_secs(7)).is_ok());
    }

    #[test]
    fn expensive_routes_are_known() {
        let search = "/api/v1/clinics/{clinic}/patients/{patient}/search";
        assert!(expensive(&Method::POST, search));
        let docs = "/api/v1/clinics/{clinic}/patients/{patient}/documents";
        assert!(expensive(&Method::POST, docs));
        assert!(!expensive(&Method::GET, docs));
    }
}
