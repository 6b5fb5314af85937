//! Driving `wrk`: the Lua script (a `POST /` with a JSON body, a bearer token taken round-robin
//! from a file and a unique `Idempotency-Key` per request) and the parser of the one-line
//! report its `done` hook prints.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

/// The Lua script. `BENCH_TOKENS_FILE` (optional) names a file of bearer tokens, one per line:
/// each request carries the next one as `Authorization: Bearer …` (round-robin; wrk thread `t`
/// of `BENCH_THREADS` starts at offset `(t − 1) × count / threads`, so the threads do not send
/// the same user at the same time). The `Bearer …` values are built once, when the script is
/// loaded, so a request costs the same whatever the number of tokens. `BENCH_KEY_PREFIX` makes
/// idempotency keys unique across runs: `PREFIX-THREAD-N`; `BENCH_FIELD` names the body's one
/// field (`foo` for `caller`, `bar` for `called`). `done` prints one line `WRKJSON {…}` with
/// the counters and latency percentiles (µs).
pub const SCRIPT: &str = r#"-- written by bench-harness: POST / with a token round-robin and a unique Idempotency-Key per request
local prefix = os.getenv("BENCH_KEY_PREFIX") or "k"
local body = '{"' .. (os.getenv("BENCH_FIELD") or "foo") .. '":"hello from wrk"}'
local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1") or 1
local auth = {}
local tokens_file = os.getenv("BENCH_TOKENS_FILE") or ""
if tokens_file ~= "" then
  local f = assert(io.open(tokens_file, "r"))
  for line in f:lines() do
    if line ~= "" then
      auth[#auth + 1] = "Bearer " .. line
    end
  end
  f:close()
end
local count = #auth
local threads = 0
local n = 0
local next_token = nil

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function request()
  n = n + 1
  local headers = {}
  headers["Content-Type"] = "application/json"
  headers["Idempotency-Key"] = prefix .. "-" .. tostring(tid) .. "-" .. n
  if count > 0 then
    if next_token == nil then
      next_token = math.floor(((tid or 1) - 1) * count / nthreads) % count
    end
    next_token = next_token + 1
    if next_token > count then
      next_token = 1
    end
    headers["Authorization"] = auth[next_token]
  end
  return wrk.format("POST", "/", headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
"#;

/// What one `wrk` run measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WrkReport {
    /// Completed requests (any status).
    pub requests: u64,
    /// Length of the run.
    pub duration: Duration,
    /// Answers with status ≥ 400 (`wrk`'s "Non-2xx or 3xx responses").
    pub non_2xx: u64,
    /// Connect, read, write errors and timeouts.
    pub socket_errors: u64,
    /// Median latency, µs.
    pub p50_us: u64,
    /// 90th percentile latency, µs.
    pub p90_us: u64,
    /// 99th percentile latency, µs.
    pub p99_us: u64,
    /// Slowest request, µs.
    pub max_us: u64,
}

impl WrkReport {
    /// Completed requests per second.
    pub fn throughput(&self) -> f64 {
        let secs = self.duration.as_secs_f64();
        if secs > 0.0 {
            self.requests as f64 / secs
        } else {
            0.0
        }
    }

    /// Non-2xx answers plus socket errors.
    pub fn errors(&self) -> u64 {
        self.non_2xx + self.socket_errors
    }

    /// Parses the `WRKJSON {…}` line out of `wrk`'s standard output.
    ///
    /// # Errors
    /// When the line is missing or malformed.
    pub fn parse(stdout: &str) -> anyhow::Result<Self> {
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix("WRKJSON "))
            .ok_or_else(|| anyhow::anyhow!("wrk printed no WRKJSON line:\n{stdout}"))?;
        let v: Value = serde_json::from_str(line)?;
        let n = |k: &str| -> anyhow::Result<u64> {
            v.get(k)
                .and_then(Value::as_u64)
                .ok_or_else(|| anyhow::anyhow!("wrk report lacks {k}: {line}"))
        };
        Ok(Self {
            requests: n("requests")?,
            duration: Duration::from_micros(n("duration_us")?),
            non_2xx: n("status")?,
            socket_errors: n("connect")? + n("read")? + n("write")? + n("timeout")?,
            p50_us: n("p50_us")?,
            p90_us: n("p90_us")?,
            p99_us: n("p99_us")?,
            max_us: n("max_us")?,
        })
    }
}

/// Load settings of one run.
#[derive(Debug, Clone)]
pub struct Load {
    /// `wrk -t`.
    pub threads: u32,
    /// `wrk -c`.
    pub connections: u32,
    /// `wrk -d`.
    pub duration: Duration,
}

/// What each request carries.
#[derive(Debug, Clone)]
pub struct Request {
    /// File of bearer tokens, one per line, sent round-robin; `None`: no `Authorization`.
    pub tokens_file: Option<PathBuf>,
    /// Prefix of the idempotency keys (unique per run).
    pub key_prefix: String,
    /// The body's field: `{"FIELD":"hello from wrk"}`.
    pub field: String,
}

/// Runs `wrk` against `url` with the script at `script` and returns its report. The request's
/// tokens file, key prefix and field, and the thread count, reach the script by environment.
///
/// # Errors
/// When `wrk` cannot be started, fails, or prints no report.
pub fn run(url: &str, script: &Path, load: &Load, req: &Request) -> anyhow::Result<WrkReport> {
    let out = Command::new("wrk")
        .arg(format!("-t{}", load.threads))
        .arg(format!("-c{}", load.connections))
        .arg(format!("-d{}s", load.duration.as_secs().max(1)))
        .arg("--timeout")
        .arg("10s")
        .arg("-s")
        .arg(script)
        .arg(url)
        .env(
            "BENCH_TOKENS_FILE",
            req.tokens_file.as_deref().unwrap_or(Path::new("")),
        )
        .env("BENCH_THREADS", load.threads.to_string())
        .env("BENCH_KEY_PREFIX", &req.key_prefix)
        .env("BENCH_FIELD", &req.field)
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run wrk (apt-get install -y wrk): {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        anyhow::bail!(
            "wrk failed ({}): {}{}",
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    WrkReport::parse(&stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_done_line() {
        let out = "Running 5s test @ http://127.0.0.1:1/\n  2 threads and 64 connections\n\
                   WRKJSON {\"requests\":5000,\"duration_us\":2500000,\"bytes\":1,\"connect\":0,\"read\":1,\"write\":0,\"status\":3,\"timeout\":2,\"p50_us\":900,\"p90_us\":1500,\"p99_us\":4000,\"max_us\":9000,\"mean_us\":1000.5}\n";
        let r = WrkReport::parse(out).expect("parses");
        assert_eq!(r.requests, 5000);
        assert_eq!(r.non_2xx, 3);
        assert_eq!(r.socket_errors, 3);
        assert_eq!(r.errors(), 6);
        assert_eq!(r.p99_us, 4000);
        assert!((r.throughput() - 2000.0).abs() < 1e-9);
        assert!(WrkReport::parse("no report").is_err());
    }
}
