//! `bench-harness`: measures the full chain against the floor on loopback and prints the
//! tables of `bench/RESULTS.md`. Run it through `bash bench/run.sh`, which builds the release
//! binaries first.
//!
//! The metadata-server emulator runs inside this process (its token and key-set counters are
//! read directly); `called`, `caller`, `floor-front` and `floor-back` are the release binaries,
//! started on free loopback ports and stopped (SIGTERM, then SIGKILL) when the harness ends,
//! fails or is interrupted. Settings (environment):
//!
//! - `BENCH_USERS` (`1,10000`): the end-users dimension. For each count N the floor, the chain
//!   and the ablation run with N distinct end users: N tokens minted by the in-process emulator
//!   for the caller's audience (`bench-user-<i>@example.com`, Workspace users of
//!   `example.com`: `hd` set, admitted by the caller's one allow-list entry `*@example.com`),
//!   written one per line to a file the `wrk` script sends round-robin (`BENCH_TOKENS_FILE`;
//!   each `wrk` thread starts at its own offset). The floor ignores the tokens but is driven
//!   by the same script with the same file, so both pay the same load-generator cost.
//!   `called` and `python` run once, with the first count.
//! - `BENCH_DURATION_SECS` (5): measured `wrk` run per scenario; `BENCH_WARMUP_SECS` (2) before it.
//! - `BENCH_THREADS` (2), `BENCH_CONNECTIONS` (64): `wrk -t -c`.
//! - `BENCH_SERVICE_BIN_DIR` (`BENCH_BIN_DIR`): where `caller` and `called` are. `bench/run.sh`
//!   sets it to the output of the Dockerfile's build (its target and `RUSTFLAGS`, a cargo
//!   invocation of their own), so that the shipped binaries are measured, not ones built next
//!   to the tools (whose features cargo would unify into them).
//! - `BENCH_BIN_DIR` (`target/release`): where the other binaries (`floor-front`, `floor-back`,
//!   `metadata-emulator`, `local`) are.
//! - `BENCH_SVG` (`bench/results.svg`): the chart (the floor and the chain per count of end
//!   users; the ablation is in the tables only).
//! - `BENCH_RUST_LOG` (`info`) and `BENCH_LOG_FORMAT` (`json`, as on Cloud Run): the services'
//!   logging, written to files in the run's temporary folder.
//! - `BENCH_STARTS` (3): extra start-to-ready samples of `called` with a fresh SQLite file.
//! - `BENCH_SCENARIOS` (`floor,chain,ablation`): `chain` is the chain as `terraform/` deploys it
//!   (both services verifying, the end user's token forwarded and verified, JSON request logs
//!   at `info`, SQLite); `ablation` runs it with the costs switched on one by one (auth off,
//!   then caller verifying, called verifying, the forwarded token, request logs) and on
//!   PostgreSQL (`BENCH_DATABASE_URL`, else `TEST_DATABASE_URL`, else the local server's
//!   `test` database; a fresh schema made with `psql`); `called` measures `called` alone (`wrk`
//!   straight to it with the service account's token), which splits the chain's cost per hop.
//! - `BENCH_PYTHON_BIN`: a folder with `gunicorn` (a virtualenv's `bin`, see
//!   `bench/python/requirements.txt`); needed by the `python` scenario, the article's pair
//!   (`bench/python/main.py`, gunicorn 1 worker × 8 threads, no authentication).
//! - `BENCH_SERVICE_ENV`: extra `NAME=value` pairs (space-separated) for every process started,
//!   for experiments, e.g. `LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use bench::chart::{self, Bar};
use bench::procfs;
use bench::report::{self, BinarySize, Scenario, ServiceStats};
use bench::users;
use bench::wrk::{self, Load, WrkReport};
use emulator::{Emulator, EmulatorConfig};
use testkit::child::{Proc, Spec, free_port};
use testkit::wiring;

/// The caller's audience: its end users' tokens are minted for it (once per run, for every
/// chain started), and `called` accepts it on forwarded tokens. A fixed name shaped like a
/// Cloud Run URL (the caller's loopback port changes with every start).
const CALLER_AUDIENCE: &str = "https://caller-bench-uc.a.run.app";

/// Lifetime of the end users' tokens: Google's (the verifiers' maximum).
const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// One value of the end-users dimension.
struct Users {
    /// Distinct end users (tokens).
    count: usize,
    /// Their tokens, one per line (`BENCH_TOKENS_FILE` of the `wrk` script).
    file: PathBuf,
    /// The first of them, for the sanity request.
    first: String,
}

struct Settings {
    bin_dir: PathBuf,
    service_bin_dir: PathBuf,
    load: Load,
    warmup: Duration,
    svg: PathBuf,
    rust_log: String,
    log_format: String,
    starts: usize,
    scenarios: Vec<String>,
    users: Vec<usize>,
    python_bin: Option<PathBuf>,
    service_env: Vec<(String, String)>,
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn env_num(name: &str, default: u64) -> anyhow::Result<u64> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .with_context(|| format!("{name} must be a whole number, got {v:?}")),
        Err(_) => Ok(default),
    }
}

impl Settings {
    fn from_env() -> anyhow::Result<Self> {
        let bin_dir = env_or("BENCH_BIN_DIR", "target/release");
        Ok(Self {
            service_bin_dir: PathBuf::from(env_or("BENCH_SERVICE_BIN_DIR", &bin_dir)),
            bin_dir: PathBuf::from(bin_dir),
            load: Load {
                threads: u32::try_from(env_num("BENCH_THREADS", 2)?)?,
                connections: u32::try_from(env_num("BENCH_CONNECTIONS", 64)?)?,
                duration: Duration::from_secs(env_num("BENCH_DURATION_SECS", 5)?.max(1)),
            },
            warmup: Duration::from_secs(env_num("BENCH_WARMUP_SECS", 2)?),
            svg: PathBuf::from(env_or("BENCH_SVG", "bench/results.svg")),
            rust_log: env_or("BENCH_RUST_LOG", "info"),
            log_format: env_or("BENCH_LOG_FORMAT", "json"),
            starts: usize::try_from(env_num("BENCH_STARTS", 3)?)?,
            scenarios: env_or("BENCH_SCENARIOS", "floor,chain,ablation")
                .split(',')
                .map(|x| x.trim().to_owned())
                .filter(|x| !x.is_empty())
                .collect(),
            users: users::parse_counts(&env_or("BENCH_USERS", "1,10000"))?,
            python_bin: std::env::var_os("BENCH_PYTHON_BIN").map(PathBuf::from),
            service_env: env_or("BENCH_SERVICE_ENV", "")
                .split_whitespace()
                .map(|kv| {
                    kv.split_once('=')
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .ok_or_else(|| {
                            anyhow::anyhow!("BENCH_SERVICE_ENV: {kv:?} is not NAME=value")
                        })
                })
                .collect::<anyhow::Result<_>>()?,
        })
    }
}

impl Settings {
    /// `exe` as `name`, with the services' logging, `PATH`, `BENCH_SERVICE_ENV` and `envs`, its
    /// output in `dir/NAME.log`; stopped (SIGTERM, up to 5 s, then SIGKILL) when dropped.
    fn spec(&self, name: &str, exe: PathBuf, dir: &Path, envs: &[(&str, String)]) -> Spec {
        let mut spec = Spec::new(exe, &[])
            .named(name)
            .log_to(dir.join(format!("{name}.log")))
            .stop_gracefully(Duration::from_secs(5))
            .with("PATH", env_or("PATH", "/usr/bin:/bin"))
            .with("RUST_LOG", self.rust_log.clone())
            .with("LOG_FORMAT", self.log_format.clone())
            .with_all(envs);
        for (k, v) in &self.service_env {
            spec = spec.with(k, v.clone());
        }
        spec
    }

    /// Where the release binary `name` is: `caller` and `called` in `BENCH_SERVICE_BIN_DIR`,
    /// the rest in `BENCH_BIN_DIR`.
    fn exe(&self, name: &str) -> PathBuf {
        match name {
            "caller" | "called" => self.service_bin_dir.join(name),
            _ => self.bin_dir.join(name),
        }
    }

    /// The release binary `name` ([`Settings::exe`], [`Settings::spec`]).
    fn binary(&self, name: &str, dir: &Path, envs: &[(&str, String)]) -> Spec {
        self.spec(name, self.exe(name), dir, envs)
    }
}

/// Starts `spec` on `port` and waits until it is ready (the kit's one readiness wait).
async fn start(spec: &Spec, port: u16) -> anyhow::Result<Proc> {
    Proc::try_start(spec, port).await.map_err(|e| {
        anyhow::anyhow!(
            "{e}
(run bench/run.sh, which builds the binaries)"
        )
    })
}

/// One request before the load, so a misconfiguration fails loudly instead of as errors.
async fn sanity(url: &str, token: &str, field: &str) -> anyhow::Result<()> {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("idempotency-key", "bench-sanity")
        .body(format!(r#"{{"{field}":"sanity"}}"#));
    if !token.is_empty() {
        req = req.bearer_auth(token);
    }
    let res = req.send().await?;
    let status = res.status();
    let body = res.text().await.unwrap_or_default();
    anyhow::ensure!(
        status.as_u16() == 201,
        "POST {url} answered {status}: {body}"
    );
    Ok(())
}

struct Measured {
    wrk: WrkReport,
    cpu: Vec<Duration>,
    /// Context switches of each process during the measured run.
    switches: Vec<u64>,
    /// Emulator identity-token fetches during the measured run (not the warm-up).
    token_fetches: u64,
    /// Emulator key-set fetches during the measured run.
    key_fetches: u64,
}

/// What one scenario drives load against.
struct Target<'a> {
    /// `POST` URL.
    url: &'a str,
    /// Bearer tokens sent round-robin, one per line (`None`: no `Authorization`).
    tokens_file: Option<&'a Path>,
    /// Scenario name (prefix of idempotency keys).
    label: &'a str,
    /// The body's field (`foo` for caller and the floor, `bar` for called).
    field: &'a str,
    /// Processes whose CPU time is measured.
    pids: Vec<u32>,
    /// Emulator whose fetch counters are read, if any.
    emu: Option<&'a Emulator>,
}

/// Warm-up run, then the measured run with CPU deltas of the target's processes.
async fn drive(
    s: &Settings,
    script: &Path,
    ticks: u64,
    target: Target<'_>,
) -> anyhow::Result<Measured> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos();
    let Target {
        url,
        tokens_file,
        label,
        field,
        pids,
        emu,
    } = target;
    let request = |phase: &str| wrk::Request {
        tokens_file: tokens_file.map(Path::to_path_buf),
        key_prefix: format!("{label}-{phase}-{stamp}"),
        field: field.to_owned(),
    };
    let counters = || emu.map_or((0, 0), |e| (e.identity_requests(), e.jwks_requests()));
    if !s.warmup.is_zero() {
        let warm = Load {
            duration: s.warmup,
            ..s.load.clone()
        };
        let (url, script, req) = (url.to_owned(), script.to_owned(), request("warm"));
        tokio::task::spawn_blocking(move || wrk::run(&url, &script, &warm, &req)).await??;
    }
    let switches_before: Vec<u64> = pids
        .iter()
        .map(|p| tree_switches(*p))
        .collect::<anyhow::Result<_>>()?;
    let before: Vec<Duration> = pids
        .iter()
        .map(|p| tree_cpu(*p, ticks))
        .collect::<anyhow::Result<_>>()?;
    let fetched_before = counters();
    let load = s.load.clone();
    let (url, script, req) = (url.to_owned(), script.to_owned(), request("run"));
    let wrk = tokio::task::spawn_blocking(move || wrk::run(&url, &script, &load, &req)).await??;
    let cpu = pids
        .iter()
        .zip(before)
        .map(|(p, b)| Ok(tree_cpu(*p, ticks)?.saturating_sub(b)))
        .collect::<anyhow::Result<_>>()?;
    let switches = pids
        .iter()
        .zip(switches_before)
        .map(|(p, b)| Ok(tree_switches(*p)?.saturating_sub(b)))
        .collect::<anyhow::Result<_>>()?;
    let fetched_after = counters();
    Ok(Measured {
        wrk,
        cpu,
        switches,
        token_fetches: fetched_after.0 - fetched_before.0,
        key_fetches: fetched_after.1 - fetched_before.1,
    })
}

/// CPU time of a process and its descendants.
fn tree_cpu(pid: u32, ticks: u64) -> anyhow::Result<Duration> {
    procfs::process_tree(pid)
        .into_iter()
        .map(|p| procfs::cpu_time(p, ticks))
        .sum()
}

/// Context switches of a process and its descendants.
fn tree_switches(pid: u32) -> anyhow::Result<u64> {
    procfs::process_tree(pid)
        .into_iter()
        .map(procfs::context_switches)
        .sum()
}

fn stats(procs: &[&Proc], m: &Measured) -> anyhow::Result<Vec<ServiceStats>> {
    procs
        .iter()
        .zip(m.cpu.iter().zip(&m.switches))
        .map(|(p, (cpu, switches))| {
            let requests = m.wrk.requests.max(1) as f64;
            Ok(ServiceStats {
                name: p.name.clone(),
                cpu_us_per_req: cpu.as_secs_f64() * 1e6 / requests,
                switches_per_req: *switches as f64 / requests,
                peak_rss_kib: procfs::process_tree(p.pid)
                    .into_iter()
                    .map(procfs::peak_rss_kib)
                    .sum::<anyhow::Result<u64>>()?,
                start_to_ready: p.start_to_ready,
            })
        })
        .collect()
}

/// A front → back pair without authentication or storage, driven through its front with the
/// end users' tokens (which it ignores): `spec(role, port)` is how to start the `"back"` and
/// the `"front"` (which also gets `BACK_URL`). `label` prefixes idempotency keys and log lines;
/// `name` names the scenario.
async fn pair(
    s: &Settings,
    script: &Path,
    ticks: u64,
    users: &Users,
    label: &str,
    name: &str,
    spec: impl Fn(&str, u16) -> Spec,
) -> anyhow::Result<Scenario> {
    let (back_port, front_port) = (free_port(), free_port());
    let back = start(&spec("back", back_port), back_port).await?;
    let front_spec =
        spec("front", front_port).with("BACK_URL", format!("http://127.0.0.1:{back_port}/"));
    let front = start(&front_spec, front_port).await?;
    let url = format!("http://127.0.0.1:{front_port}/");
    sanity(&url, "", "foo").await?;
    println!(
        "{label} ({}): {} :{front_port} → {} :{back_port}; driving wrk…",
        end_users(users.count),
        front.name,
        back.name
    );
    let target = Target {
        url: &url,
        tokens_file: Some(&users.file),
        label,
        field: "foo",
        pids: vec![front.pid, back.pid],
        emu: None,
    };
    let m = drive(s, script, ticks, target).await?;
    let services = stats(&[&front, &back], &m)?;
    Ok(Scenario {
        name: name.into(),
        users: Some(users.count),
        wrk: m.wrk,
        services,
        token_fetches: None,
        key_fetches: None,
    })
}

/// The floor: `floor-front` → `floor-back`.
async fn floor(
    s: &Settings,
    dir: &Path,
    script: &Path,
    ticks: u64,
    users: &Users,
) -> anyhow::Result<Scenario> {
    let label = format!("floor-{}u", users.count);
    pair(s, script, ticks, users, &label, "floor", |role, _| {
        s.binary(&format!("floor-{role}"), dir, &[])
    })
    .await
}

fn called_env(port: u16, db: &Path, emu: SocketAddr, sa: &str) -> wiring::Pairs {
    let mut env = wiring::called_verifying(&format!("http://127.0.0.1:{port}"), sa, emu);
    env.push(("DATABASE_URL", format!("sqlite://{}", db.display())));
    env
}

/// Start-to-ready samples of `called` with a fresh SQLite file each.
async fn called_starts(
    s: &Settings,
    dir: &Path,
    emu: SocketAddr,
    sa: &str,
) -> anyhow::Result<Vec<Duration>> {
    let mut out = Vec::new();
    for i in 0..s.starts {
        let port = free_port();
        let db = dir.join(format!("start-{i}.db"));
        let p = start(
            &s.binary("called", dir, &called_env(port, &db, emu, sa)),
            port,
        )
        .await?;
        out.push(p.start_to_ready);
        drop(p);
    }
    Ok(out)
}

/// The article's Python pair (no authentication), served by gunicorn like Cloud Functions.
async fn python(
    s: &Settings,
    dir: &Path,
    script: &Path,
    ticks: u64,
    users: &Users,
) -> anyhow::Result<Scenario> {
    let bin = s.python_bin.as_ref().ok_or_else(|| {
        anyhow::anyhow!("the python scenario needs BENCH_PYTHON_BIN (bash bench/run.sh sets it with BENCH_PYTHON=1)")
    })?;
    let source = std::env::current_dir()?.join("bench/python/main.py");
    let gunicorn = |port: u16, target: &str| -> Vec<String> {
        vec![
            "--workers".into(),
            "1".into(),
            "--threads".into(),
            "8".into(),
            "--bind".into(),
            format!("127.0.0.1:{port}"),
            format!(
                "functions_framework:create_app(target={target:?}, source={:?})",
                source.display().to_string()
            ),
        ]
    };
    let exe = bin.join("gunicorn");
    pair(
        s,
        script,
        ticks,
        users,
        "python",
        "python (no auth)",
        |role, port| {
            s.spec(&format!("python-{role}"), exe.clone(), dir, &[])
                .args(gunicorn(port, role))
        },
    )
    .await
}

/// `called` alone: `wrk` straight to it with the emulator service account's token.
async fn called_only(
    s: &Settings,
    dir: &Path,
    script: &Path,
    emu: &Emulator,
    emu_addr: SocketAddr,
    ticks: u64,
) -> anyhow::Result<Scenario> {
    let sa = emu.config().service_account.clone();
    let port = free_port();
    let db = dir.join("called-only.db");
    let called = start(
        &s.binary("called", dir, &called_env(port, &db, emu_addr, &sa)),
        port,
    )
    .await?;
    let url = format!("http://127.0.0.1:{port}/");
    let token = emu.mint(
        &sa,
        &format!("http://127.0.0.1:{port}"),
        Duration::from_secs(3600),
    );
    sanity(&url, &token, "bar").await?;
    let tokens_file = dir.join("tokens-called.txt");
    users::write_tokens(&tokens_file, std::slice::from_ref(&token))?;
    println!(
        "called alone: called :{port} (SQLite {}); driving wrk…",
        db.display()
    );
    let target = Target {
        url: &url,
        tokens_file: Some(&tokens_file),
        label: "called",
        field: "bar",
        pids: vec![called.pid],
        emu: Some(emu),
    };
    let m = drive(s, script, ticks, target).await?;
    let services = stats(&[&called], &m)?;
    Ok(Scenario {
        name: "called alone".into(),
        users: None,
        wrk: m.wrk,
        services,
        token_fetches: Some(m.token_fetches),
        key_fetches: Some(m.key_fetches),
    })
}

/// One configuration of the chain: which checks and which costs are on. The full one (every
/// switch on, SQLite) is what `terraform/` deploys; the ablation switches them on one by one.
#[derive(Debug, Clone, Copy)]
struct Variant {
    /// Scenario name in the tables.
    name: &'static str,
    /// `caller` verifies its client's token (`AUTH_MODE=verify`), else `off`.
    caller_verifies: bool,
    /// `called` verifies the caller's token (`AUTH_MODE=verify`), else `off`.
    called_verifies: bool,
    /// `called` trusts the caller as a forwarder and verifies the end user's token too.
    forwarded: bool,
    /// Request logs as on Cloud Run (the harness's `BENCH_LOG_FORMAT`/`BENCH_RUST_LOG`,
    /// `json`/`info` by default); else `RUST_LOG=warn` (no request logs).
    request_logs: bool,
    /// PostgreSQL (`BENCH_DATABASE_URL`) instead of the SQLite file.
    postgres: bool,
}

/// The chain as deployed: every check on, request logs, SQLite.
const FULL: Variant = Variant {
    name: "chain",
    caller_verifies: true,
    called_verifies: true,
    forwarded: true,
    request_logs: true,
    postgres: false,
};

/// The ablation, cheapest first; each row adds one cost to the row above it (the last swaps
/// the store).
const ABLATION: &[Variant] = &[
    Variant {
        name: "chain, auth off",
        caller_verifies: false,
        called_verifies: false,
        forwarded: false,
        request_logs: false,
        postgres: false,
    },
    Variant {
        name: "+ caller verifies",
        caller_verifies: true,
        ..ABLATION_BASE
    },
    Variant {
        name: "+ called verifies",
        caller_verifies: true,
        called_verifies: true,
        ..ABLATION_BASE
    },
    Variant {
        name: "+ forwarded end-user token",
        caller_verifies: true,
        called_verifies: true,
        forwarded: true,
        ..ABLATION_BASE
    },
    Variant {
        name: "+ request logs (= chain)",
        ..FULL
    },
    Variant {
        name: "chain on PostgreSQL",
        postgres: true,
        ..FULL
    },
];

const ABLATION_BASE: Variant = Variant {
    name: "",
    caller_verifies: false,
    called_verifies: false,
    forwarded: false,
    request_logs: false,
    postgres: false,
};

/// A fresh PostgreSQL schema for one run: `BENCH_DATABASE_URL` (else `TEST_DATABASE_URL`)
/// with `options=-c search_path=…`, created with `psql`.
fn postgres_url(label: &str) -> anyhow::Result<String> {
    let base = std::env::var("BENCH_DATABASE_URL")
        .or_else(|_| std::env::var("TEST_DATABASE_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let schema = format!(
        "bench_{}_{}",
        label
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>(),
        std::process::id()
    );
    let out = Command::new("psql")
        .args([base.as_str(), "-q", "-c"])
        .arg(format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        ))
        .output()
        .context("the PostgreSQL scenario runs psql")?;
    anyhow::ensure!(
        out.status.success(),
        "psql {base}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sep = if base.contains('?') { '&' } else { '?' };
    Ok(format!("{base}{sep}options=-c%20search_path%3D{schema}"))
}

/// `1 end user`, `10000 end users`.
fn end_users(n: usize) -> String {
    if n == 1 {
        "1 end user".into()
    } else {
        format!("{n} end users")
    }
}

/// Where a chain scenario runs.
struct Bed<'a> {
    s: &'a Settings,
    dir: &'a Path,
    script: &'a Path,
    emu: &'a Emulator,
    emu_addr: SocketAddr,
    ticks: u64,
}

/// The chain in configuration `v`, driven with `users`' tokens.
async fn chain(bed: &Bed<'_>, users: &Users, v: Variant) -> anyhow::Result<Scenario> {
    let Bed {
        s,
        dir,
        script,
        emu,
        emu_addr,
        ticks,
    } = *bed;
    let sa = emu.config().service_account.clone();
    let (called_port, caller_port) = (free_port(), free_port());
    let caller_url = format!("http://127.0.0.1:{caller_port}");
    let label = format!(
        "{}-{}u",
        v.name
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>(),
        users.count
    );
    let db = dir.join(format!("{label}.db"));
    let mut called_env = called_env(called_port, &db, emu_addr, &sa);
    // The caller admits every end user of the bench's domain (`*@example.com`: Workspace users,
    // whose tokens carry `hd`), at its fixed audience.
    let mut caller_env = wiring::caller_verifying(
        CALLER_AUDIENCE,
        users::ALLOW_PATTERN,
        emu_addr,
        &format!("http://127.0.0.1:{called_port}"),
    );
    let store = if v.postgres {
        let url = postgres_url(&label)?;
        called_env.push(("DATABASE_URL", url));
        "PostgreSQL".to_owned()
    } else {
        format!("SQLite {}", db.display())
    };
    if !v.called_verifies {
        called_env.push(("AUTH_MODE", "off".to_owned()));
    }
    if !v.caller_verifies {
        caller_env.push(("AUTH_MODE", "off".to_owned()));
    }
    if v.forwarded {
        called_env.extend(wiring::forwarding(&sa, CALLER_AUDIENCE));
    }
    let quiet = [("RUST_LOG", "warn".to_owned())];
    let logs: &[(&str, String)] = if v.request_logs { &[] } else { &quiet };
    let called_spec = s.binary("called", dir, &called_env).with_all(logs);
    let called = start(&called_spec, called_port).await?;
    let caller_spec = s.binary("caller", dir, &caller_env).with_all(logs);
    let caller = start(&caller_spec, caller_port).await?;
    let url = format!("{caller_url}/");
    sanity(&url, &users.first, "foo").await?;
    println!(
        "{} ({}): caller :{caller_port} → called :{called_port} ({store}), emulator {emu_addr}; driving wrk…",
        v.name,
        end_users(users.count)
    );
    let target = Target {
        url: &url,
        tokens_file: Some(&users.file),
        label: &label,
        field: "foo",
        pids: vec![caller.pid, called.pid],
        emu: Some(emu),
    };
    let m = drive(s, script, ticks, target).await;
    let m = m.map_err(|e| {
        anyhow::anyhow!(
            "{e:#}\ncaller log:\n{}\ncalled log:\n{}",
            caller.log_tail(),
            called.log_tail()
        )
    })?;
    let services = stats(&[&caller, &called], &m)?;
    Ok(Scenario {
        name: v.name.into(),
        users: Some(users.count),
        wrk: m.wrk,
        services,
        token_fetches: Some(m.token_fetches),
        key_fetches: Some(m.key_fetches),
    })
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")?
                    .split_once(':')
                    .map(|(_, m)| m.trim().to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    format!("{date} · {cpus} CPUs ({model})")
}

/// The end users of every count in `BENCH_USERS`: the tokens of the largest count, minted once
/// for the caller's audience (on every core), and one file per count with the first N of them.
async fn mint_users(s: &Settings, dir: &Path, emu: &Emulator) -> anyhow::Result<Vec<Users>> {
    let most = s.users.iter().copied().max().unwrap_or(1);
    let started = std::time::Instant::now();
    let tokens = {
        let emu = emu.clone();
        tokio::task::spawn_blocking(move || {
            users::mint(&emu, most, CALLER_AUDIENCE, TOKEN_LIFETIME)
        })
        .await?
    };
    println!(
        "minted {most} end-user tokens ({} bytes each) in {:.1} s",
        tokens.first().map_or(0, String::len),
        started.elapsed().as_secs_f64()
    );
    s.users
        .iter()
        .map(|&count| {
            let file = dir.join(format!("tokens-{count}.txt"));
            users::write_tokens(&file, &tokens[..count])
                .with_context(|| format!("cannot write {}", file.display()))?;
            Ok(Users {
                count,
                file,
                first: tokens[0].clone(),
            })
        })
        .collect()
}

async fn run(s: Settings) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("invoker-bench-")
        .tempdir()?;
    let script = dir.path().join("post.lua");
    std::fs::write(&script, wrk::SCRIPT)?;
    let ticks = procfs::ticks_per_sec();
    let machine = machine();
    println!(
        "invoker bench · {machine}\nwrk -t{} -c{} -d{}s (after {}s warm-up) · services log {} at {} into {}",
        s.load.threads,
        s.load.connections,
        s.load.duration.as_secs(),
        s.warmup.as_secs(),
        s.log_format,
        s.rust_log,
        dir.path().display()
    );

    let emu = Emulator::new(EmulatorConfig::default());
    let (emu_addr, _server) = emu
        .clone()
        .spawn(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await?;
    let sa = emu.config().service_account.clone();

    for name in &s.scenarios {
        anyhow::ensure!(
            ["chain", "ablation", "floor", "called", "python"].contains(&name.as_str()),
            "BENCH_SCENARIOS: unknown scenario {name:?} (chain, floor, ablation, called, python)"
        );
    }
    let dims = mint_users(&s, dir.path(), &emu).await?;

    let starts = called_starts(&s, dir.path(), emu_addr, &sa).await?;
    let bed = Bed {
        s: &s,
        dir: dir.path(),
        script: &script,
        emu: &emu,
        emu_addr,
        ticks,
    };
    let mut scenarios = Vec::new();
    for (i, users) in dims.iter().enumerate() {
        for name in &s.scenarios {
            let sc = match name.as_str() {
                "chain" => chain(&bed, users, FULL).await?,
                "ablation" => {
                    for v in ABLATION {
                        scenarios.push(chain(&bed, users, *v).await?);
                    }
                    continue;
                }
                "floor" => floor(&s, dir.path(), &script, ticks, users).await?,
                // No end users (the caller's own token), or too slow to repeat: once.
                "called" if i == 0 => {
                    called_only(&s, dir.path(), &script, &emu, emu_addr, ticks).await?
                }
                "python" if i == 0 => python(&s, dir.path(), &script, ticks, users).await?,
                _ => continue,
            };
            scenarios.push(sc);
        }
    }

    println!(
        "\n## End users: the chain against the floor\n\n{}",
        report::users_table(&scenarios)
    );
    println!(
        "## Throughput and latency\n\n{}",
        report::scenario_table(&scenarios)
    );
    println!("## Per process\n\n{}", report::service_table(&scenarios));
    for users in &dims {
        let (Some(chain), Some(floor)) = report::chain_and_floor(&scenarios, users.count) else {
            continue;
        };
        println!(
            "chain/floor with {}: throughput {:.0} %, p50 {:.2} ×, p99 {:.2} ×, CPU per request {:.2} ×\n",
            end_users(users.count),
            100.0 * chain.wrk.throughput() / floor.wrk.throughput().max(f64::MIN_POSITIVE),
            chain.wrk.p50_us as f64 / floor.wrk.p50_us.max(1) as f64,
            chain.wrk.p99_us as f64 / floor.wrk.p99_us.max(1) as f64,
            chain.cpu_us_per_req() / floor.cpu_us_per_req().max(f64::MIN_POSITIVE),
        );
        println!(
            "## Targets (issues 15 and 21), {}\n\n{}",
            end_users(users.count),
            report::verdict_table(&report::verdicts(chain, floor, &starts))
        );
    }
    let find = |n: &str| scenarios.iter().find(|sc| sc.name == n);
    if let (Some(chain), Some(py)) = (find("chain"), find("python (no auth)")) {
        println!(
            "chain/python: throughput {:.1} × (issue 6 target: ≥ 40 × the article's pair; this Python pair neither authenticates nor stores, so it is an upper bound for Python)\n",
            chain.wrk.throughput() / py.wrk.throughput().max(f64::MIN_POSITIVE)
        );
    }
    let sizes: Vec<BinarySize> = [
        "caller",
        "called",
        "metadata-emulator",
        "local",
        "floor-front",
        "floor-back",
    ]
    .into_iter()
    .map(|name| BinarySize {
        name: name.to_owned(),
        bytes: std::fs::metadata(s.exe(name)).ok().map(|m| m.len()),
    })
    .collect();
    println!("## Release binaries\n\n{}", report::size_table(&sizes));
    println!(
        "emulator totals for the whole run: {} identity-token fetches, {} key-set fetches\n",
        emu.identity_requests(),
        emu.jwks_requests()
    );

    // The chart: the floor and the chain for each count of end users (and `called` alone,
    // Python); the ablation's steps are in the tables only (16 bars would not be readable).
    let bars: Vec<Bar> = scenarios
        .iter()
        .filter(|sc| !ABLATION.iter().any(|v| v.name == sc.name))
        .map(|sc| Bar {
            name: sc.label(),
            throughput: sc.wrk.throughput(),
            p50_ms: sc.wrk.p50_us as f64 / 1000.0,
            p99_ms: sc.wrk.p99_us as f64 / 1000.0,
        })
        .collect();
    let subtitle = format!(
        "{machine} · wrk -t{} -c{} -d{}s",
        s.load.threads,
        s.load.connections,
        s.load.duration.as_secs()
    );
    std::fs::write(&s.svg, chart::render(&bars, &subtitle))
        .with_context(|| format!("cannot write {}", s.svg.display()))?;
    println!("chart written to {}", s.svg.display());
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let s = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bench-harness: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    // Interrupted or failed: returning drops every `Proc`, which stops what was started.
    let outcome = tokio::select! {
        r = run(s) => r,
        _ = shared::shutdown::signal() => Err(anyhow::anyhow!("interrupted")),
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-harness: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
