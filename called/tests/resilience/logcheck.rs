//! The check both services' log tests share: the capture is real, and no line holds a token.

use serde_json::Value;

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
    crate::loud(&format!(
        "{service} at RUST_LOG=trace: {} log lines ({debug_lines} DEBUG), no token in any",
        lines.len()
    ));
}
