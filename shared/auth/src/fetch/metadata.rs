//! ID tokens from the metadata server (Cloud Run, GCE, GKE, or the local emulator).

use std::fmt;
use std::time::Duration;

use super::{IdToken, TokenError, TokenFuture, TokenSource, jwt};

/// The header every metadata request and answer carries (value `Google`).
const METADATA_FLAVOR: &str = "metadata-flavor";

/// The metadata server's host when `GCE_METADATA_HOST` is not set.
pub const DEFAULT_METADATA_HOST: &str = "metadata.google.internal";

/// Fetches ID tokens with
/// `GET http://{host}/computeMetadata/v1/instance/service-accounts/default/identity?audience=AUD&format=full`
/// and header `Metadata-Flavor: Google`, on the shared HTTP client, bounded by a timeout.
///
/// `format=full` makes the token carry `email` and `email_verified`, which the receiving
/// service's allow-list needs.
#[derive(Clone)]
pub struct MetadataSource {
    http: reqwest::Client,
    url: String,
    audience: String,
    timeout: Duration,
}

/// The host part of a `GCE_METADATA_HOST`-style value: an `http://` prefix and trailing `/`
/// are removed (Google's libraries expect a bare `host:port`; people often write a URL).
fn normalize_host(host: &str) -> &str {
    let host = host.trim();
    let host = host
        .strip_prefix("http://")
        .or_else(|| host.strip_prefix("HTTP://"))
        .unwrap_or(host);
    host.trim_end_matches('/')
}

impl MetadataSource {
    /// A source for `audience` on the metadata server at `host` (`host` or `host:port`; an
    /// `http://` prefix is accepted). The URL is built once here; every request carries
    /// `Metadata-Flavor: Google` and is bounded by `timeout` (connect, headers and body).
    ///
    /// An invalid host is not detected here (fetches then fail); see [`MetadataSource::try_new`].
    pub fn new(http: reqwest::Client, host: &str, audience: &str, timeout: Duration) -> Self {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("audience", audience)
            .append_pair("format", "full")
            .finish();
        let url = format!(
            "http://{}/computeMetadata/v1/instance/service-accounts/default/identity?{query}",
            normalize_host(host)
        );
        Self {
            http,
            url,
            audience: audience.to_owned(),
            timeout,
        }
    }

    /// As [`MetadataSource::new`], but checks `host` and `audience` first.
    ///
    /// # Errors
    /// [`TokenError::Config`] when `host` is empty or not a `host[:port]`, or `audience` is empty.
    pub fn try_new(
        http: reqwest::Client,
        host: &str,
        audience: &str,
        timeout: Duration,
    ) -> Result<Self, TokenError> {
        let bare = normalize_host(host);
        let bad = |reason: &str| {
            TokenError::Config(format!(
                "invalid metadata host {host:?} ({reason}); expected host or host:port"
            ))
        };
        if bare.is_empty() {
            return Err(bad("empty"));
        }
        if bare.contains(['/', '?', '#', '@', ' ', '\\']) || bare.contains("://") {
            return Err(bad("not a bare host"));
        }
        let parsed = url::Url::parse(&format!("http://{bare}/")).map_err(|_| bad("unparsable"))?;
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(bad("no host"));
        }
        if audience.trim().is_empty() {
            return Err(TokenError::Config("the token audience is empty".to_owned()));
        }
        Ok(Self::new(http, bare, audience, timeout))
    }

    /// The full identity URL this source requests.
    pub fn url(&self) -> &str {
        &self.url
    }

    async fn fetch_once(&self) -> Result<IdToken, TokenError> {
        let map_err = |e: reqwest::Error| {
            if e.is_timeout() {
                TokenError::Timeout(self.timeout)
            } else {
                TokenError::Unavailable(jwt::sanitize(&error_chain(&e)))
            }
        };
        let mut response = self
            .http
            .get(&self.url)
            .header(METADATA_FLAVOR, "Google")
            .timeout(self.timeout)
            .send()
            .await
            .map_err(map_err)?;
        let status = response.status();
        if status != http::StatusCode::OK {
            return Err(TokenError::Rejected(status));
        }
        // Google's libraries insist on this header: it tells the metadata server from whatever
        // else might answer `metadata.google.internal` (a captive portal, a proxy, a squatter).
        if response
            .headers()
            .get(METADATA_FLAVOR)
            .is_none_or(|v| v.as_bytes() != b"Google")
        {
            return Err(TokenError::Unavailable(format!(
                "{} answered 200 without the Metadata-Flavor: Google response header: not a \
                 metadata server (check GCE_METADATA_HOST)",
                response.url().authority()
            )));
        }
        if response
            .content_length()
            .is_some_and(|n| n > jwt::MAX_TOKEN_BYTES as u64)
        {
            return Err(TokenError::Malformed("token too long"));
        }
        let mut body = Vec::with_capacity(2048);
        while let Some(chunk) = response.chunk().await.map_err(map_err)? {
            if body.len() + chunk.len() > jwt::MAX_TOKEN_BYTES {
                return Err(TokenError::Malformed("token too long"));
            }
            body.extend_from_slice(&chunk);
        }
        let text = std::str::from_utf8(&body)
            .map_err(|_| TokenError::Malformed("not a JWT (body is not UTF-8)"))?;
        jwt::parse_token(text)
    }
}

/// An error and its sources, joined with `: ` (reqwest's top-level message alone is vague).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !msg.contains(&part) {
            msg.push_str(": ");
            msg.push_str(&part);
        }
        source = s.source();
    }
    msg
}

impl fmt::Debug for MetadataSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetadataSource")
            .field("url", &self.url)
            .field("audience", &self.audience)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl TokenSource for MetadataSource {
    fn fetch(&self) -> TokenFuture<'_> {
        Box::pin(async move {
            // reqwest's timeout covers the body too; this outer bound is a belt for the braces.
            match tokio::time::timeout(self.timeout, self.fetch_once()).await {
                Ok(result) => result,
                Err(_) => Err(TokenError::Timeout(self.timeout)),
            }
        })
    }

    fn kind(&self) -> &'static str {
        "metadata"
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::extract::{RawQuery, State};
    use axum::http::{HeaderMap, StatusCode, Uri};
    use axum::response::IntoResponse;
    use axum::routing::get;

    use super::*;
    use crate::fetch::jwt::tests::jwt_expiring_in;

    /// A request the fake saw: path, raw query, `Metadata-Flavor` header.
    type Seen = (String, Option<String>, Option<String>);

    #[derive(Clone, Default)]
    struct Fake {
        /// Scripted answers, first one first; the last one repeats.
        answers: Arc<Mutex<Vec<(StatusCode, String)>>>,
        /// Requests seen.
        seen: Arc<Mutex<Vec<Seen>>>,
        stall: bool,
        /// Answer without `Metadata-Flavor: Google` (something that is not a metadata server).
        impostor: bool,
    }

    async fn identity(
        State(fake): State<Fake>,
        uri: Uri,
        RawQuery(query): RawQuery,
        headers: HeaderMap,
    ) -> axum::response::Response {
        let flavor = headers
            .get("metadata-flavor")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        fake.seen
            .lock()
            .expect("lock")
            .push((uri.path().to_owned(), query, flavor.clone()));
        if fake.stall {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        let answer = if flavor.as_deref() == Some("Google") {
            let mut answers = fake.answers.lock().expect("lock");
            if answers.len() > 1 {
                answers.remove(0)
            } else {
                answers
                    .first()
                    .cloned()
                    .unwrap_or((StatusCode::NOT_FOUND, String::new()))
            }
        } else {
            (StatusCode::FORBIDDEN, "missing Metadata-Flavor".to_owned())
        };
        if fake.impostor {
            answer.into_response()
        } else {
            ([("metadata-flavor", "Google")], answer).into_response()
        }
    }

    async fn serve(fake: Fake) -> String {
        let app = Router::new()
            .route(
                "/computeMetadata/v1/instance/service-accounts/default/identity",
                get(identity),
            )
            .with_state(fake);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        addr.to_string()
    }

    fn fake_with(answers: Vec<(StatusCode, String)>) -> Fake {
        Fake {
            answers: Arc::new(Mutex::new(answers)),
            ..Fake::default()
        }
    }

    const AUD: &str = "https://called-abc.a.run.app/x?y=1&z=a b";

    #[tokio::test]
    async fn fetches_with_the_right_request() {
        let jwt = jwt_expiring_in(3600);
        let fake = fake_with(vec![(StatusCode::OK, format!("{jwt}\n"))]);
        let host = serve(fake.clone()).await;
        let source = MetadataSource::try_new(
            reqwest::Client::new(),
            &format!("http://{host}/"),
            AUD,
            Duration::from_secs(2),
        )
        .expect("valid host");
        let token = source.fetch().await.expect("token");
        assert_eq!(token.value(), jwt);
        assert!(token.remaining() > Duration::from_secs(3500));
        assert_eq!(source.kind(), "metadata");

        let seen = fake.seen.lock().expect("lock").clone();
        assert_eq!(seen.len(), 1);
        let (path, query, flavor) = &seen[0];
        assert_eq!(
            path,
            "/computeMetadata/v1/instance/service-accounts/default/identity"
        );
        assert_eq!(flavor.as_deref(), Some("Google"));
        let query = query.clone().expect("query");
        assert!(
            query.contains("audience=https%3A%2F%2Fcalled-abc.a.run.app%2Fx%3Fy%3D1%26z%3Da+b"),
            "{query}"
        );
        let pairs: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(pairs.get("audience").map(String::as_str), Some(AUD));
        assert_eq!(pairs.get("format").map(String::as_str), Some("full"));
        // Debug shows where, never the token
        let dbg = format!("{source:?} {token:?}");
        assert!(!dbg.contains(&jwt), "{dbg}");
    }

    #[tokio::test]
    async fn maps_bad_answers_to_errors() {
        let expired = jwt_expiring_in(-60);
        let fake = fake_with(vec![
            (StatusCode::FORBIDDEN, "nope".to_owned()),
            (StatusCode::NOT_FOUND, String::new()),
            (StatusCode::SERVICE_UNAVAILABLE, String::new()),
            (StatusCode::OK, "<html>garbage</html>".to_owned()),
            (StatusCode::OK, expired),
            (StatusCode::OK, "x".repeat(jwt::MAX_TOKEN_BYTES + 10)),
            (StatusCode::OK, jwt_expiring_in(3600)),
        ]);
        let host = serve(fake).await;
        let source =
            MetadataSource::new(reqwest::Client::new(), &host, "aud", Duration::from_secs(2));
        for want in [403, 404, 503] {
            match source.fetch().await {
                Err(TokenError::Rejected(status)) => assert_eq!(status.as_u16(), want),
                other => panic!("expected Rejected({want}), got {other:?}"),
            }
        }
        for what in ["garbage", "expired", "too long"] {
            let err = source.fetch().await.expect_err(what);
            assert!(matches!(err, TokenError::Malformed(_)), "{what}: {err:?}");
        }
        // and it recovers at once: nothing is poisoned
        source.fetch().await.expect("good token after bad ones");
    }

    #[tokio::test]
    async fn a_200_without_metadata_flavor_is_never_a_token() {
        // Something else answers the metadata host (a captive portal, a proxy, a squatter on
        // `metadata.google.internal`) with a perfectly valid-looking JWT: Google's libraries
        // refuse such answers, and so does this source.
        let fake = Fake {
            impostor: true,
            ..fake_with(vec![(StatusCode::OK, jwt_expiring_in(3600))])
        };
        let host = serve(fake.clone()).await;
        let source =
            MetadataSource::new(reqwest::Client::new(), &host, "aud", Duration::from_secs(2));
        let err = source.fetch().await.expect_err("impostor");
        assert!(matches!(err, TokenError::Unavailable(_)), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("Metadata-Flavor: Google"), "{msg}");
        assert!(msg.contains(&host), "{msg}");
        assert_eq!(fake.seen.lock().expect("lock").len(), 1);
    }

    #[tokio::test]
    async fn times_out_against_a_stalling_server() {
        let fake = Fake {
            stall: true,
            ..fake_with(vec![(StatusCode::OK, jwt_expiring_in(3600))])
        };
        let host = serve(fake).await;
        let source = MetadataSource::new(
            reqwest::Client::new(),
            &host,
            "aud",
            Duration::from_millis(300),
        );
        let started = std::time::Instant::now();
        let err = source.fetch().await.expect_err("stalled");
        assert!(matches!(err, TokenError::Timeout(_)), "{err:?}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn unreachable_server_is_unavailable() {
        // bind then drop, so the port is (very likely) closed
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let source = MetadataSource::new(
            reqwest::Client::new(),
            &addr.to_string(),
            "aud",
            Duration::from_secs(2),
        );
        let err = source.fetch().await.expect_err("refused");
        assert!(matches!(err, TokenError::Unavailable(_)), "{err:?}");
    }

    #[test]
    fn host_validation() {
        let http = reqwest::Client::new();
        let t = Duration::from_secs(1);
        for ok in [
            "metadata.google.internal",
            "127.0.0.1:8181",
            "http://127.0.0.1:8181",
            "http://localhost:8181/",
            "[::1]:8181",
        ] {
            let s = MetadataSource::try_new(http.clone(), ok, "aud", t).expect(ok);
            assert!(s.url().starts_with("http://"), "{}", s.url());
            assert!(!s.url().starts_with("http://http"), "{}", s.url());
        }
        for bad in ["", "http://", "https://x:1", "a/b", "a b", "user@host"] {
            assert!(
                MetadataSource::try_new(http.clone(), bad, "aud", t).is_err(),
                "{bad:?} should be refused"
            );
        }
    }
}
