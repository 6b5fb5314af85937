//! The end-users dimension (`BENCH_USERS`): N distinct end users, each with their own ID token
//! minted by the emulator for the caller's audience, written one per line to the file the
//! `wrk` script reads (`BENCH_TOKENS_FILE`) and sends round-robin.
//!
//! The users are Workspace users of `example.com` (`bench-user-<i>@example.com`, `hd:
//! example.com`), so the caller admits them all with the one allow-list entry
//! [`ALLOW_PATTERN`] — the `*@domain` rule, which needs the `hd` claim for user accounts.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use emulator::Emulator;
use serde_json::json;

/// The end users' domain (their `hd` claim).
pub const DOMAIN: &str = "example.com";

/// The caller's allow-list in the benchmark: every user of [`DOMAIN`].
pub const ALLOW_PATTERN: &str = "*@example.com";

/// Parses `BENCH_USERS`: comma-separated counts of distinct end users, each at least 1
/// (duplicates dropped, order kept).
///
/// # Errors
/// When an entry is not a whole number ≥ 1, or the list is empty.
pub fn parse_counts(s: &str) -> anyhow::Result<Vec<usize>> {
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim).filter(|x| !x.is_empty()) {
        let n: usize = item
            .replace('_', "")
            .parse()
            .map_err(|_| anyhow::anyhow!("BENCH_USERS: {item:?} is not a whole number"))?;
        anyhow::ensure!(n >= 1, "BENCH_USERS: {item:?} must be at least 1");
        if !out.contains(&n) {
            out.push(n);
        }
    }
    anyhow::ensure!(!out.is_empty(), "BENCH_USERS is empty");
    Ok(out)
}

/// The email of end user `i`.
pub fn email(i: usize) -> String {
    format!("bench-user-{i}@{DOMAIN}")
}

/// The token of end user `i` for `audience`, valid for `lifetime` from now: the claims the
/// emulator mints for a user (`email_verified: true`) plus `hd`, signed with its current key.
pub fn mint_one(emu: &Emulator, i: usize, audience: &str, lifetime: Duration) -> String {
    let iat = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // A 21-digit numeric subject, shaped like Google's.
    let sub = format!("1{i:020}");
    emu.mint_with(json!({
        "iss": emu.config().issuer,
        "aud": audience,
        "azp": sub,
        "sub": sub,
        "iat": iat,
        "exp": iat.saturating_add(lifetime.as_secs()),
        "email": email(i),
        "email_verified": true,
        "hd": DOMAIN,
    }))
}

/// Tokens of end users `0..n` for `audience`, minted on every core (RSA signing is about a
/// millisecond each).
///
/// # Panics
/// If a minting thread panics (the emulator's signing does not fail with its own key).
pub fn mint(emu: &Emulator, n: usize, audience: &str, lifetime: Duration) -> Vec<String> {
    let workers = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(n.max(1));
    let per = n.div_ceil(workers);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let range = (w * per).min(n)..((w + 1) * per).min(n);
                scope.spawn(move || {
                    range
                        .map(|i| mint_one(emu, i, audience, lifetime))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("minting thread"))
            .collect()
    })
}

/// Writes `tokens` to `path`, one per line (what the `wrk` script reads).
///
/// # Errors
/// When the file cannot be written.
pub fn write_tokens(path: &Path, tokens: &[String]) -> std::io::Result<()> {
    let mut text = String::with_capacity(tokens.iter().map(|t| t.len() + 1).sum());
    for t in tokens {
        let _ = writeln!(text, "{t}");
    }
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        assert_eq!(parse_counts("1,10000").expect("parses"), vec![1, 10_000]);
        assert_eq!(
            parse_counts(" 10_000 , 1,1,").expect("parses"),
            vec![10_000, 1]
        );
        assert!(parse_counts("0").is_err());
        assert!(parse_counts("").is_err());
        assert!(parse_counts("1,many").is_err());
    }

    #[test]
    fn mints_distinct_users_with_hd() {
        let emu = Emulator::new(emulator::EmulatorConfig::default());
        let tokens = mint(&emu, 5, "https://caller.example", Duration::from_secs(60));
        assert_eq!(tokens.len(), 5);
        let mut distinct = tokens.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 5);
        let payload = tokens[3].split('.').nth(1).expect("payload");
        let payload = base64_url_decode(payload);
        let claims: serde_json::Value = serde_json::from_slice(&payload).expect("JSON");
        assert_eq!(claims["email"], email(3));
        assert_eq!(claims["hd"], DOMAIN);
        assert_eq!(claims["aud"], "https://caller.example");

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tokens.txt");
        write_tokens(&path, &tokens).expect("writes");
        let text = std::fs::read_to_string(&path).expect("reads");
        assert_eq!(text.lines().collect::<Vec<_>>(), tokens);
    }

    /// base64url without padding, enough for a test (no extra dependency).
    fn base64_url_decode(s: &str) -> Vec<u8> {
        let val = |c: u8| -> u32 {
            match c {
                b'A'..=b'Z' => u32::from(c - b'A'),
                b'a'..=b'z' => u32::from(c - b'a') + 26,
                b'0'..=b'9' => u32::from(c - b'0') + 52,
                b'-' => 62,
                _ => 63,
            }
        };
        let mut out = Vec::new();
        let (mut acc, mut bits) = (0u32, 0);
        for c in s.bytes() {
            acc = (acc << 6) | val(c);
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push(((acc >> bits) & 0xff) as u8);
            }
        }
        out
    }
}
