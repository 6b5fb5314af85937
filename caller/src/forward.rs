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

use crate::hop::{HopClient, USER_AGENT};
use crate::token::{IdToken, TokenCache, TokenError};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri, header};
use http_body_util::Full;
use tokio::time::Instant;
use tracing::Instrument;
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
pub const X_FORWARDED_AUTHORIZATION: HeaderName =
    HeaderName::from_static("x-forwarded-authorization");

const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

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
    hop: HopClient,
    target: Url,
    /// `target` as a request URI, parsed once.
    uri: Uri,
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
    /// called answered 401 to the caller's own token (not to the end user's).
    OwnTokenRefused,
    Retry {
        failure: Error,
        after: Option<Duration>,
        pass_through: Option<Upstream>,
    },
}

impl Forwarder {
    /// Builds a forwarder to `POST {base}/` over `hop`.
    ///
    /// # Errors
    /// When `base` is not a valid request URI (a `CALLED_URL` that passed config validation
    /// always is).
    pub fn new(
        hop: HopClient,
        base: &Url,
        tokens: TokenCache,
        timeout: Duration,
        max_attempts: u32,
    ) -> Result<Self, http::uri::InvalidUri> {
        let mut target = base.clone();
        if !target.path().ends_with('/') {
            let p = format!("{}/", target.path());
            target.set_path(&p);
        }
        let uri = target.as_str().parse()?;
        Ok(Self {
            hop,
            target,
            uri,
            tokens,
            timeout,
            max_attempts: max_attempts.max(1),
        })
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
    // A debug-level span: at `info` (Cloud Run's level) the request span alone gives context, and
    // no second span is created per request.
    #[tracing::instrument(level = "debug", skip_all, fields(attempts = tracing::field::Empty))]
    pub async fn forward(&self, out: &Outgoing) -> Result<Upstream, Error> {
        let deadline = Instant::now() + self.timeout;
        let mut attempt = 0;
        // The cached token is dropped and fetched again at most once per request.
        let mut token_renewed = false;
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
            // One client span per attempt when tracing is on; its id goes out in `traceparent`.
            let hop = shared::trace_span!(
                "hop",
                otel.kind = "client",
                http.request.method = "POST",
                http.response.status_code = tracing::field::Empty,
                attempt,
            );
            let outcome =
                tokio::time::timeout(remaining, self.attempt(out, &token).instrument(hop)).await;
            let (failure, after, pass_through) = match outcome {
                Err(_) => return Err(Error::Deadline),
                Ok(Err(e)) => return Err(e),
                Ok(Ok(Attempt::Done(up))) => return Ok(up),
                Ok(Ok(Attempt::OwnTokenRefused)) if !token_renewed => {
                    // called stopped accepting the cached token (its key left the key set, say):
                    // drop it — unless another request already did — and try once more with a
                    // fresh one, inside the same deadline.
                    tracing::warn!(
                        "called refused the caller's ID token; fetching a new one and retrying once"
                    );
                    self.tokens.invalidate_if_current(&token);
                    token_renewed = true;
                    continue;
                }
                Ok(Ok(Attempt::OwnTokenRefused)) => return Err(Error::Rejected(401)),
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
        let wait = self
            .tokens
            .get()
            .instrument(shared::trace_span!("token_wait"));
        match tokio::time::timeout_at(deadline, wait).await {
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

    async fn attempt(&self, out: &Outgoing, token: &IdToken) -> Result<Attempt, Error> {
        let mut req = Request::new(Full::new(out.body.clone()));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = self.uri.clone();
        let h = req.headers_mut();
        h.reserve(8);
        let mut bearer = HeaderValue::try_from(format!("Bearer {}", token.value()))
            .map_err(|_| Error::Upstream("the ID token is not a valid header value".into()))?;
        bearer.set_sensitive(true);
        h.insert(header::AUTHORIZATION, bearer);
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert(header::USER_AGENT, USER_AGENT);
        h.insert(
            IDEMPOTENCY_KEY,
            HeaderValue::try_from(out.idempotency_key.as_str())
                .map_err(|_| Error::Upstream("invalid Idempotency-Key".into()))?,
        );
        for (name, value) in &out.propagated {
            h.insert(*name, value.clone());
        }
        // With tracing on, `traceparent` names this attempt's `hop` span (else: as received).
        shared::telemetry::otel::inject_current(h);
        if let Some(value) = &out.forwarded_authorization {
            h.insert(X_FORWARDED_AUTHORIZATION, value.clone());
        }
        let res = match self.hop.send(req).await {
            Ok(res) => res,
            // As before with reqwest: a connect timeout ends the forward as the deadline (504).
            Err(e) if e.timed_out() => return Err(Error::Deadline),
            Err(e) => {
                return Ok(Attempt::Retry {
                    failure: Error::Upstream(e.to_string()),
                    after: None,
                    pass_through: None,
                });
            }
        };
        let (parts, body) = res.into_parts();
        let status = parts.status;
        if shared::telemetry::otel::enabled() {
            tracing::Span::current().record("http.response.status_code", status.as_u16());
        }
        let mut headers = HeaderMap::new();
        for name in [
            header::CONTENT_TYPE,
            header::RETRY_AFTER,
            IDEMPOTENT_REPLAYED,
        ] {
            if let Some(v) = parts.headers.get(&name) {
                headers.insert(name, v.clone());
            }
        }
        let after = retry_after(&parts.headers);
        let up = Upstream {
            status,
            headers,
            body,
        };
        Ok(match status.as_u16() {
            300..=399 => return Err(Error::Redirected(status.as_u16())),
            // The end user's token (X-Forwarded-Authorization) was refused: the client's
            // problem, passed on as called said it, with its WWW-Authenticate.
            401 if refuses_end_user(&parts.headers) => {
                tracing::warn!("called refused the end user's forwarded token");
                let mut up = up;
                if let Some(v) = parts.headers.get(header::WWW_AUTHENTICATE) {
                    up.headers.insert(header::WWW_AUTHENTICATE, v.clone());
                }
                Attempt::Done(up)
            }
            401 => Attempt::OwnTokenRefused,
            403 => return Err(Error::Rejected(403)),
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

/// Whether called's 401 is about the end user's token: its `WWW-Authenticate` says so
/// (`invoker_auth::END_USER_INVALID_TOKEN`).
fn refuses_end_user(headers: &HeaderMap) -> bool {
    headers.get_all(header::WWW_AUTHENTICATE).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.contains("X-Forwarded-Authorization"))
    })
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
    fn an_end_user_refusal_is_told_from_a_refusal_of_the_callers_own_token() {
        let mut h = HeaderMap::new();
        assert!(!refuses_end_user(&h));
        h.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
        assert!(!refuses_end_user(&h));
        h.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(invoker_auth::END_USER_INVALID_TOKEN),
        );
        assert!(refuses_end_user(&h));
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
