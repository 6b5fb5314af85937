//! Assertions the suites share — problem documents, no token in any log line, readiness, recovery
//! after an outage — and
//! [`loud`], for measurements worth seeing in a passing run.

use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Writes a line to the real stderr: `eprintln!` is captured (hidden) for passing tests.
pub fn loud(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// A problem document, as [`assert_problem`] found it.
#[derive(Debug, Clone)]
pub struct Problem {
    /// `detail` (empty when absent).
    pub detail: String,
    /// The whole document.
    pub document: Value,
    /// The `WWW-Authenticate` header.
    pub www_authenticate: Option<String>,
    /// The `Retry-After` header.
    pub retry_after: Option<String>,
}

impl Problem {
    /// Asserts the document is complete — `type`, `title` and `detail` are strings — as the
    /// services write it (one relayed from an upstream may carry less).
    pub fn assert_complete(self) -> Self {
        let v = &self.document;
        assert!(v["title"].is_string() && v["detail"].is_string() && v["type"].is_string());
        self
    }
}

/// Asserts an `application/problem+json` body whose `status` is `status`.
pub fn assert_problem_parts(status: u16, content_type: Option<&str>, body: &[u8]) -> Problem {
    assert_eq!(
        content_type,
        Some("application/problem+json"),
        "a {status} is a problem document"
    );
    let document: Value = serde_json::from_slice(body).expect("problem JSON");
    assert_eq!(document["status"], status);
    Problem {
        detail: document["detail"].as_str().unwrap_or_default().to_owned(),
        document,
        www_authenticate: None,
        retry_after: None,
    }
}

/// Asserts the response is `status` with a problem document ([`assert_problem_parts`]).
pub async fn assert_problem(res: reqwest::Response, status: u16) -> Problem {
    assert_eq!(res.status().as_u16(), status, "unexpected status");
    let header = |n: &str| {
        res.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (content_type, www_authenticate, retry_after) = (
        header("content-type"),
        header("www-authenticate"),
        header("retry-after"),
    );
    let body = res.bytes().await.expect("problem body");
    Problem {
        www_authenticate,
        retry_after,
        ..assert_problem_parts(status, content_type.as_deref(), &body)
    }
}

/// The parts of a JWT that identify it: payload and signature (the header is shared by every
/// token of a key, and is covered by the `eyJ` check).
pub fn secret_parts(token: &str) -> Vec<String> {
    token
        .split('.')
        .skip(1)
        .filter(|p| p.len() >= 16)
        .map(str::to_owned)
        .collect()
}

/// Asserts the capture is real (JSON, trace level, request logs of both outcomes) and that no
/// line holds a JWT or a distinguishing part of any of `tokens`.
pub fn assert_no_tokens(service: &str, lines: &[String], tokens: &[&str]) {
    assert!(
        lines.len() >= 20,
        "{service}: only {} lines captured",
        lines.len()
    );
    let mut statuses = Vec::new();
    let mut debug_lines = 0;
    for line in lines {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{service}: not a JSON log line ({e}): {line}"));
        assert!(v["severity"].is_string(), "{service}: {line}");
        if v["severity"] == "DEBUG" {
            debug_lines += 1;
        }
        if let Some(s) = v["httpRequest"]["status"].as_u64() {
            statuses.push(s);
        }
    }
    assert!(
        debug_lines > 0,
        "{service}: RUST_LOG=trace produced DEBUG lines"
    );
    for s in [201, 401] {
        assert!(
            statuses.contains(&s),
            "{service}: the access log has a {s} ({statuses:?})"
        );
    }
    for line in lines {
        assert!(
            !line.contains("eyJ"),
            "{service}: a log line holds something shaped like a JWT: {line}"
        );
        for token in tokens {
            for part in secret_parts(token) {
                assert!(
                    !line.contains(&part),
                    "{service}: a log line holds part of a token: {line}"
                );
            }
        }
    }
    loud(&format!(
        "{service} at RUST_LOG=trace: {} log lines ({debug_lines} DEBUG), no token in any",
        lines.len()
    ));
}

/// Asserts `GET {base}/health/ready` is a 503 problem document.
pub async fn assert_not_ready(base: &str) -> Problem {
    assert_problem(
        reqwest::get(format!("{base}/health/ready"))
            .await
            .expect("ready"),
        503,
    )
    .await
}

/// Repeats `attempt` until it answers 201, pausing `pause` in between; every other answer must
/// be a 503, and the 201 must come within `within`. `what` names the case in a failure.
pub async fn until_created<F, Fut>(what: &str, within: Duration, pause: Duration, mut attempt: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = reqwest::Response>,
{
    let start = Instant::now();
    loop {
        let res = attempt().await;
        if res.status() == 201 {
            break;
        }
        assert_eq!(res.status(), 503, "{what}");
        assert!(start.elapsed() < within, "{what}: did not recover");
        tokio::time::sleep(pause).await;
    }
}

/// `n` concurrent `GET url`, each of which must answer 200: how long the burst took.
pub async fn probe_burst(url: &str, n: usize) -> Duration {
    let client = reqwest::Client::new();
    let start = Instant::now();
    let probes: Vec<_> = (0..n)
        .map(|_| {
            let (client, url) = (client.clone(), url.to_owned());
            tokio::spawn(async move { client.get(url).send().await.map(|r| r.status()) })
        })
        .collect();
    for p in probes {
        assert_eq!(p.await.expect("join").expect("probe"), 200);
    }
    start.elapsed()
}

/// `{"FIELD":"x","a":[{"":0},…]}` as close to `max` bytes as it gets (at most 16 short): the
/// body of many tiny values that once made a request cost a hundred times its size.
pub fn tiny_objects(field: &str, max: usize) -> String {
    let head = format!(r#"{{"{field}":"x","a":["#);
    let n = (max - head.len() - 1) / 7;
    let mut body = String::with_capacity(max);
    body.push_str(&head);
    for i in 0..n {
        if i > 0 {
            body.push(',');
        }
        body.push_str(r#"{"":0}"#);
    }
    body.push_str("]}");
    assert!(body.len() <= max, "{}", body.len());
    assert!(body.len() > max - 16, "{}", body.len());
    body
}

/// Asserts that `service`'s peak RSS grew from `base` by at most 12 MiB after one megabyte
/// of [`tiny_objects`] (`one`) and by at most 80 MiB after eight more at once (`after`), and
/// says the growth (`before` names what it was before the fix).
pub fn assert_tiny_objects_peak(
    service: &str,
    base: &crate::child::Memory,
    one: &crate::child::Memory,
    after: &crate::child::Memory,
    before: &str,
) {
    const MIB: u64 = 1024;
    let grew_one = one.hwm_kib.saturating_sub(base.hwm_kib);
    let grew_eight = after.hwm_kib.saturating_sub(base.hwm_kib);
    eprintln!(
        "{service} peak RSS: {} KiB at the start; +{grew_one} KiB for one megabyte of tiny \
         objects, +{grew_eight} KiB with eight more at once (was {before})",
        base.hwm_kib
    );
    assert!(
        grew_one <= 12 * MIB,
        "one request raised the peak by {grew_one} KiB"
    );
    assert!(
        grew_eight <= 80 * MIB,
        "eight at once raised the peak by {grew_eight} KiB"
    );
}
