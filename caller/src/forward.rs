//! Forwarding to the called service: one pooled client, the cached ID token, retries with
//! jittered exponential backoff inside one total deadline, and the mapping of upstream
//! outcomes to this service's answers.
//!
//! Retrying a POST is safe because every forward carries an `Idempotency-Key` (the client's
//! or a fresh UUID) that stays the same across attempts.
//!
//! The token wait is bounded by the request's remaining deadline and, when it runs out, ends
//! as "no token" (503), never as the called service's fault (504): called was not contacted.
//! Redirects are never followed (the shared client has no redirect policy) and a 3xx is a 502.

use std::time::Duration;

use crate::token::{IdToken, TokenCache, TokenError};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use tokio::time::Instant;
use url::Url;

use crate::error::Error;

/// Headers propagated from the client's request to the called service.
pub const PROPAGATED: [&str; 3] = ["traceparent", "x-cloud-trace-context", "x-request-id"];

/// What to send.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The serialized JSON object.
    pub body: Bytes,
    /// Same on every attempt.
    pub idempotency_key: String,
    /// `traceparent`, `X-Cloud-Trace-Context`, `X-Request-Id` as received.
    pub propagated: Vec<(&'static str, HeaderValue)>,
    /// `X-Forwarded-Authorization: Bearer <the client's verified token>`, when this service
    /// authenticated its client. Marked sensitive, so `Debug` prints `Sensitive`.
    pub forwarded_authorization: Option<HeaderValue>,
}

/// The `X-Forwarded-Authorization` header (ESPv2 / API Gateway's name for the end user's
/// original token).
pub const X_FORWARDED_AUTHORIZATION: &str = "x-forwarded-authorization";

/// `Bearer <token>` as a sensitive header value; `None` if the token is not a valid value
/// (it came from a header, so it always is).
pub fn forwarded_authorization(token: &str) -> Option<HeaderValue> {
    let mut v = HeaderValue::from_str(&format!("Bearer {token}")).ok()?;
    v.set_sensitive(true);
    Some(v)
}

/// What the called service answered.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// Its status.
    pub status: StatusCode,
    /// Its headers worth passing on (content type, Idempotent-Replayed, Retry-After).
    pub headers: HeaderMap,
    /// Its body.
    pub body: Bytes,
}

/// Forwards requests to `CALLED_URL` (injected, so tests point it at local servers).
#[derive(Clone)]
pub struct Forwarder {
    http: reqwest::Client,
    target: Url,
    tokens: TokenCache,
    timeout: Duration,
    max_attempts: u32,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("target", &self.target.as_str())
            .finish()
    }
}

enum Attempt {
    Done(Upstream),
    Retry {
        failure: Error,
        after: Option<Duration>,
        pass_through: Option<Upstream>,
    },
}

impl Forwarder {
    /// Builds a forwarder to `POST {base}/`.
    pub fn new(
        http: reqwest::Client,
        base: &Url,
        tokens: TokenCache,
        timeout: Duration,
        max_attempts: u32,
    ) -> Self {
        let mut target = base.clone();
        if !target.path().ends_with('/') {
            let p = format!("{}/", target.path());
            target.set_path(&p);
        }
        Self {
            http,
            target,
            tokens,
            timeout,
            max_attempts: max_attempts.max(1),
        }
    }

    /// The token cache in use.
    pub fn tokens(&self) -> &TokenCache {
        &self.tokens
    }

    /// The URL forwarded to.
    pub fn target(&self) -> &Url {
        &self.target
    }

    /// Forwards with retries inside the total deadline.
    #[tracing::instrument(skip_all, fields(attempts = tracing::field::Empty))]
    pub async fn forward(&self, out: &Outgoing) -> Result<Upstream, Error> {
        let deadline = Instant::now() + self.timeout;
        let mut attempt = 0;
        loop {
            attempt += 1;
            tracing::Span::current().record("attempts", attempt);
            if deadline <= Instant::now() {
                return Err(Error::Deadline);
            }
            let token = self.token_before(deadline).await?;
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(self.no_token(TokenError::Timeout(self.timeout)));
            }
            let outcome =
                tokio::time::timeout(remaining, self.attempt(out, &token, remaining)).await;
            let (failure, after, pass_through) = match outcome {
                Err(_) => return Err(Error::Deadline),
                Ok(Err(e)) => return Err(e),
                Ok(Ok(Attempt::Done(up))) => return Ok(up),
                Ok(Ok(Attempt::Retry {
                    failure,
                    after,
                    pass_through,
                })) => (failure, after, pass_through),
            };
            let give_up = |failure: Error, pass_through: Option<Upstream>| match pass_through {
                Some(up) => Ok(up),
                None => Err(failure),
            };
            if attempt >= self.max_attempts {
                return give_up(failure, pass_through);
            }
            let wait = backoff(attempt).max(after.unwrap_or_default());
            if Instant::now() + wait >= deadline {
                return give_up(failure, pass_through);
            }
            tracing::info!(
                attempt,
                wait_ms = wait.as_millis() as u64,
                "retrying the called service"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// The ID token, waiting no later than `deadline` (the cache bounds its own wait by
    /// `TOKEN_FETCH_TIMEOUT_MS`; the request's deadline may be sooner).
    async fn token_before(&self, deadline: Instant) -> Result<IdToken, Error> {
        let budget = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout_at(deadline, self.tokens.get()).await {
            Ok(Ok(token)) => Ok(token),
            Ok(Err(e)) => Err(self.no_token(e)),
            Err(_) => Err(self.no_token(TokenError::Timeout(budget))),
        }
    }

    /// 503 + Retry-After: when the cache tries again, at least 1 s.
    fn no_token(&self, e: TokenError) -> Error {
        let wait = self.tokens.retry_after().unwrap_or(Duration::from_secs(1));
        Error::NoToken(e, wait.as_secs_f64().ceil().max(1.0) as u64)
    }

    async fn attempt(
        &self,
        out: &Outgoing,
        token: &IdToken,
        remaining: Duration,
    ) -> Result<Attempt, Error> {
        let mut req = self
            .http
            .post(self.target.clone())
            .timeout(remaining)
            .header(header::AUTHORIZATION, format!("Bearer {}", token.value()))
            .header(header::CONTENT_TYPE, "application/json")
            .header("idempotency-key", &out.idempotency_key)
            .body(out.body.clone());
        for (name, value) in &out.propagated {
            req = req.header(*name, value.clone());
        }
        if let Some(value) = &out.forwarded_authorization {
            req = req.header(X_FORWARDED_AUTHORIZATION, value.clone());
        }
        let res = match req.send().await {
            Ok(res) => res,
            Err(e) if e.is_timeout() => return Err(Error::Deadline),
            Err(e) => {
                return Ok(Attempt::Retry {
                    failure: Error::Upstream(format!("transport: {}", without_url(&e))),
                    after: None,
                    pass_through: None,
                });
            }
        };
        let status = res.status();
        let mut headers = HeaderMap::new();
        for name in [header::CONTENT_TYPE, header::RETRY_AFTER] {
            if let Some(v) = res.headers().get(&name) {
                headers.insert(name, v.clone());
            }
        }
        if let Some(v) = res.headers().get("idempotent-replayed") {
            headers.insert("idempotent-replayed", v.clone());
        }
        let after = retry_after(res.headers());
        let body = match res.bytes().await {
            Ok(b) => b,
            Err(e) if e.is_timeout() => return Err(Error::Deadline),
            Err(e) => {
                return Ok(Attempt::Retry {
                    failure: Error::Upstream(format!("reading the answer: {}", without_url(&e))),
                    after: None,
                    pass_through: None,
                });
            }
        };
        let up = Upstream {
            status,
            headers,
            body,
        };
        Ok(match status.as_u16() {
            300..=399 => return Err(Error::Redirected(status.as_u16())),
            401 | 403 => return Err(Error::Rejected(status.as_u16())),
            429 => Attempt::Retry {
                failure: Error::Upstream("429".into()),
                after,
                pass_through: Some(up),
            },
            502..=504 => Attempt::Retry {
                failure: Error::Upstream(format!("status {status}")),
                after,
                pass_through: None,
            },
            500..=599 => return Err(Error::Upstream(format!("status {status}"))),
            _ => Attempt::Done(up),
        })
    }
}

fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(url) = e.url() {
        s = s.replace(url.as_str(), "CALLED_URL");
    }
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

/// Full-jitter exponential backoff: 50 ms × 2^(n-1), capped at 2 s, randomised in [½, 1]×.
fn backoff(attempt: u32) -> Duration {
    let base = 50u64
        .saturating_mul(1 << attempt.saturating_sub(1).min(6))
        .min(2000);
    Duration::from_millis(base / 2 + fastrand::u64(0..=base / 2))
}

/// `Retry-After` as delta-seconds or an HTTP date, capped at 30 s.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    let d = match v.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => httpdate::parse_http_date(v)
            .ok()?
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    };
    Some(d.min(Duration::from_secs(30)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 1..20 {
            let d = backoff(attempt);
            assert!(d <= Duration::from_millis(2000));
        }
        assert!(backoff(1) <= Duration::from_millis(50));
        assert!(backoff(3) >= Duration::from_millis(100));
    }

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("3600"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(30)));
        let date = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(5));
        h.insert(
            header::RETRY_AFTER,
            HeaderValue::from_str(&date).expect("hv"),
        );
        assert!(retry_after(&h).is_some_and(|d| d <= Duration::from_secs(5)));
    }
}
