//! The results of a run and their Markdown rendering: the chain against the floor per number
//! of end users, the main table, per-service costs, and the targets with verdicts.

use std::fmt::Write as _;
use std::time::Duration;

use crate::wrk::WrkReport;

/// Costs of one process during a scenario.
#[derive(Debug, Clone)]
pub struct ServiceStats {
    /// `caller`, `called`, `floor-front`, …
    pub name: String,
    /// CPU time (user + system) during the measured run divided by completed requests, µs.
    pub cpu_us_per_req: f64,
    /// Context switches of all its threads during the measured run per request.
    pub switches_per_req: f64,
    /// `VmHWM` at the end of the scenario (warm-up and measured run), KiB.
    pub peak_rss_kib: u64,
    /// Process start to the first `200` on `/health/ready`.
    pub start_to_ready: Duration,
}

/// One measured scenario (the chain, the floor, …).
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Its name in tables (`chain`, `floor`, an ablation step, …).
    pub name: String,
    /// Distinct end-user tokens the load sent round-robin (`BENCH_USERS`); `None` when the
    /// scenario has no end users (`called` alone: the caller's service-account token).
    pub users: Option<usize>,
    /// What `wrk` measured.
    pub wrk: WrkReport,
    /// Each process involved.
    pub services: Vec<ServiceStats>,
    /// Identity-token fetches on the emulator during the measured run (`None`: not applicable).
    pub token_fetches: Option<u64>,
    /// Key-set fetches on the emulator during the measured run (`None`: not applicable).
    pub key_fetches: Option<u64>,
}

impl Scenario {
    /// Its name with its end users, for the chart: `chain · 10000 users`.
    pub fn label(&self) -> String {
        match self.users {
            Some(1) => format!("{} · 1 user", self.name),
            Some(n) => format!("{} · {n} users", self.name),
            None => self.name.clone(),
        }
    }

    /// CPU µs per request summed over its processes.
    pub fn cpu_us_per_req(&self) -> f64 {
        self.services.iter().map(|s| s.cpu_us_per_req).sum()
    }

    fn per_request(&self, n: Option<u64>) -> String {
        match n {
            None => "—".into(),
            Some(n) if self.wrk.requests == 0 => format!("{n} / 0"),
            Some(n) => format!("{:.4} ({n} total)", n as f64 / self.wrk.requests as f64),
        }
    }
}

/// A release binary and its size.
#[derive(Debug, Clone)]
pub struct BinarySize {
    /// File name.
    pub name: String,
    /// Size in bytes (`None` when it was not built).
    pub bytes: Option<u64>,
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

fn users(n: Option<usize>) -> String {
    n.map_or_else(|| "—".into(), |n| n.to_string())
}

/// `per(service)` for each process: `caller 37 · called 39`.
fn per_service(sc: &Scenario, per: impl Fn(&ServiceStats) -> String) -> String {
    sc.services
        .iter()
        .map(|p| format!("{} {}", p.name, per(p)))
        .collect::<Vec<_>>()
        .join(" · ")
}

/// The chain (scenario `chain`) and the floor (`floor`) measured with `users` end users.
pub fn chain_and_floor(
    scenarios: &[Scenario],
    users: usize,
) -> (Option<&Scenario>, Option<&Scenario>) {
    let find = |name: &str| {
        scenarios
            .iter()
            .find(|sc| sc.name == name && sc.users == Some(users))
    };
    (find("chain"), find("floor"))
}

/// The end-users table (issue 21): one row per number of end users, the chain against the
/// floor driven by the same script with the same tokens.
pub fn users_table(scenarios: &[Scenario]) -> String {
    let mut s = String::from(
        "| end users | chain req/s | floor req/s | chain / floor | p99 ms chain / floor | CPU µs/req chain | CPU µs/req floor | peak RSS MiB chain | peak RSS MiB floor | token fetches/req | key-set fetches/req |\n\
         |---:|---:|---:|---:|---:|---|---|---|---|---:|---:|\n",
    );
    let mut counts: Vec<usize> = Vec::new();
    for n in scenarios.iter().filter_map(|sc| sc.users) {
        if !counts.contains(&n) {
            counts.push(n);
        }
    }
    for n in counts {
        let (Some(chain), floor) = chain_and_floor(scenarios, n) else {
            continue;
        };
        let dash = || "—".to_owned();
        let cpu = |sc: &Scenario| per_service(sc, |p| format!("{:.0}", p.cpu_us_per_req));
        let rss = |sc: &Scenario| per_service(sc, |p| mib(p.peak_rss_kib));
        let _ = writeln!(
            s,
            "| {n} | {:.0} | {} | {} | {} / {} | {} | {} | {} | {} | {} | {} |",
            chain.wrk.throughput(),
            floor.map_or_else(dash, |f| format!("{:.0}", f.wrk.throughput())),
            floor.map_or_else(dash, |f| format!(
                "**{:.2}**",
                chain.wrk.throughput() / f.wrk.throughput().max(f64::MIN_POSITIVE)
            )),
            ms(chain.wrk.p99_us),
            floor.map_or_else(dash, |f| ms(f.wrk.p99_us)),
            cpu(chain),
            floor.map_or_else(dash, cpu),
            rss(chain),
            floor.map_or_else(dash, rss),
            chain.per_request(chain.token_fetches),
            chain.per_request(chain.key_fetches),
        );
    }
    s
}

/// The main table: one row per scenario.
pub fn scenario_table(scenarios: &[Scenario]) -> String {
    let mut s = String::from(
        "| scenario | end users | req/s | p50 ms | p90 ms | p99 ms | max ms | requests | errors (non-2xx + socket) | CPU µs/req (all services) | token fetches/req | key-set fetches/req |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for sc in scenarios {
        let w = &sc.wrk;
        let _ = writeln!(
            s,
            "| {} | {} | {:.0} | {} | {} | {} | {} | {} | {} ({} + {}) | {:.0} | {} | {} |",
            sc.name,
            users(sc.users),
            w.throughput(),
            ms(w.p50_us),
            ms(w.p90_us),
            ms(w.p99_us),
            ms(w.max_us),
            w.requests,
            w.errors(),
            w.non_2xx,
            w.socket_errors,
            sc.cpu_us_per_req(),
            sc.per_request(sc.token_fetches),
            sc.per_request(sc.key_fetches),
        );
    }
    s
}

/// Per-process costs: CPU per request, peak RSS, start to ready.
pub fn service_table(scenarios: &[Scenario]) -> String {
    let mut s = String::from(
        "| scenario | end users | process | CPU µs/req | context switches/req | peak RSS MiB | start → ready ms |\n|---|---:|---|---:|---:|---:|---:|\n",
    );
    for sc in scenarios {
        for p in &sc.services {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.0} | {:.2} | {} | {:.1} |",
                sc.name,
                users(sc.users),
                p.name,
                p.cpu_us_per_req,
                p.switches_per_req,
                mib(p.peak_rss_kib),
                p.start_to_ready.as_secs_f64() * 1000.0
            );
        }
    }
    s
}

/// Release binary sizes.
pub fn size_table(sizes: &[BinarySize]) -> String {
    let mut s = String::from("| binary | size MiB |\n|---|---:|\n");
    for b in sizes {
        let size = b.bytes.map_or("not built".into(), |n| {
            format!("{:.2}", n as f64 / (1024.0 * 1024.0))
        });
        let _ = writeln!(s, "| {} | {size} |", b.name);
    }
    s
}

/// One of the targets and whether the run met it.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// What is required.
    pub target: String,
    /// What was measured.
    pub measured: String,
    /// Met or not.
    pub met: bool,
}

/// The chain/floor throughput the end-users issue (21) asks for with `users` end users: 0.60
/// with one, 0.45 with more (the issue names 10,000).
pub fn ratio_target(users: Option<usize>) -> f64 {
    if users.unwrap_or(1) <= 1 { 0.60 } else { 0.45 }
}

/// The performance targets (issues 15 and 21) checked against the chain and the floor of this
/// run with the same end users. `called_starts` are extra start-to-ready samples of `called`
/// with a fresh SQLite file.
pub fn verdicts(chain: &Scenario, floor: &Scenario, called_starts: &[Duration]) -> Vec<Verdict> {
    let mut v = Vec::new();
    let ratio = chain.wrk.throughput() / floor.wrk.throughput().max(f64::MIN_POSITIVE);
    let target = ratio_target(chain.users);
    v.push(Verdict {
        target: format!(
            "throughput ≥ {:.0} % of the floor ({} end user{})",
            target * 100.0,
            users(chain.users),
            if chain.users == Some(1) { "" } else { "s" }
        ),
        measured: format!(
            "{:.0} / {:.0} req/s = {:.0} %",
            chain.wrk.throughput(),
            floor.wrk.throughput(),
            ratio * 100.0
        ),
        met: ratio >= target,
    });
    let p99 = chain.wrk.p99_us as f64 / (floor.wrk.p99_us.max(1)) as f64;
    v.push(Verdict {
        target: "p99 ≤ 2 × the floor's p99".into(),
        measured: format!(
            "{} / {} ms = {p99:.2} ×",
            ms(chain.wrk.p99_us),
            ms(floor.wrk.p99_us)
        ),
        met: p99 <= 2.0,
    });
    v.push(Verdict {
        target: "zero errors".into(),
        measured: format!("{} errors", chain.wrk.errors()),
        met: chain.wrk.errors() == 0,
    });
    let fetches = chain.token_fetches.unwrap_or(0) + chain.key_fetches.unwrap_or(0);
    v.push(Verdict {
        target: "0 token and 0 key-set fetches per request (steady state)".into(),
        measured: format!(
            "{} token + {} key-set fetches in {} requests",
            chain.token_fetches.unwrap_or(0),
            chain.key_fetches.unwrap_or(0),
            chain.wrk.requests
        ),
        met: fetches == 0,
    });
    for p in &chain.services {
        v.push(Verdict {
            target: format!("peak RSS of {} ≤ 30 MiB", p.name),
            measured: format!("{} MiB", mib(p.peak_rss_kib)),
            met: p.peak_rss_kib <= 30 * 1024,
        });
    }
    let mut starts: Vec<Duration> = called_starts.to_vec();
    if let Some(c) = chain.services.iter().find(|p| p.name == "called") {
        starts.push(c.start_to_ready);
    }
    starts.sort();
    if let Some(median) = starts.get(starts.len() / 2) {
        let list: Vec<String> = starts
            .iter()
            .map(|d| format!("{:.1}", d.as_secs_f64() * 1000.0))
            .collect();
        v.push(Verdict {
            target: "called (SQLite) start → first 200 on /health/ready ≤ 20 ms".into(),
            measured: format!(
                "median {:.1} ms of [{}]",
                median.as_secs_f64() * 1000.0,
                list.join(", ")
            ),
            met: *median <= Duration::from_millis(20),
        });
    }
    v
}

/// The verdicts as a table.
pub fn verdict_table(verdicts: &[Verdict]) -> String {
    let mut s = String::from("| target | measured | met |\n|---|---|---|\n");
    for v in verdicts {
        let _ = writeln!(
            s,
            "| {} | {} | {} |",
            v.target,
            v.measured,
            if v.met { "yes" } else { "**no**" }
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(name: &str, requests: u64, p99_us: u64, rss: u64) -> Scenario {
        Scenario {
            name: name.into(),
            users: Some(1),
            wrk: WrkReport {
                requests,
                duration: Duration::from_secs(1),
                non_2xx: 0,
                socket_errors: 0,
                p50_us: p99_us / 2,
                p90_us: p99_us,
                p99_us,
                max_us: p99_us * 2,
            },
            services: vec![ServiceStats {
                name: "called".into(),
                cpu_us_per_req: 100.0,
                switches_per_req: 1.0,
                peak_rss_kib: rss,
                start_to_ready: Duration::from_millis(20),
            }],
            token_fetches: Some(0),
            key_fetches: Some(0),
        }
    }

    #[test]
    fn verdicts_compare_chain_and_floor() {
        let floor = scenario("floor", 1000, 10_000, 8_000);
        let good = scenario("chain", 700, 20_000, 20_000);
        assert!(verdicts(&good, &floor, &[]).iter().all(|v| v.met));
        let bad = scenario("chain", 400, 40_000, 40_000);
        let failed: Vec<_> = verdicts(&bad, &floor, &[])
            .into_iter()
            .filter(|v| !v.met)
            .map(|v| v.target)
            .collect();
        assert_eq!(failed.len(), 3, "{failed:?}");
        let table = scenario_table(&[good, floor]);
        assert_eq!(table.lines().count(), 4);
        assert!(table.contains("| chain | 1 | 700 |"));
    }

    #[test]
    fn many_users_have_their_own_target() {
        let floor = Scenario {
            users: Some(10_000),
            ..scenario("floor", 1000, 10_000, 8_000)
        };
        let chain = Scenario {
            users: Some(10_000),
            ..scenario("chain", 500, 20_000, 20_000)
        };
        assert!(verdicts(&chain, &floor, &[]).iter().all(|v| v.met));
        let one = scenario("chain", 500, 20_000, 20_000);
        let one_floor = scenario("floor", 1000, 10_000, 8_000);
        assert!(
            !verdicts(&one, &one_floor, &[])[0].met,
            "0.50 < 0.60 with one user"
        );
    }

    #[test]
    fn users_table_pairs_chain_and_floor_by_users() {
        let with = |sc: Scenario, n| Scenario {
            users: Some(n),
            ..sc
        };
        let scenarios = [
            with(scenario("floor", 1000, 4_000, 8_000), 1),
            with(scenario("chain", 600, 6_000, 16_000), 1),
            with(scenario("floor", 900, 5_000, 8_000), 10_000),
            with(scenario("chain", 450, 9_000, 20_000), 10_000),
            with(scenario("+ caller verifies", 450, 9_000, 20_000), 10_000),
        ];
        let table = users_table(&scenarios);
        assert_eq!(table.lines().count(), 4, "{table}");
        assert!(
            table.contains("| 1 | 600 | 1000 | **0.60** | 6.00 / 4.00 |"),
            "{table}"
        );
        assert!(
            table.contains("| 10000 | 450 | 900 | **0.50** | 9.00 / 5.00 |"),
            "{table}"
        );
        assert!(table.contains("called 100"), "{table}");
        assert!(table.contains("| 0.0000 (0 total) |"), "{table}");
        assert_eq!(scenarios[3].label(), "chain · 10000 users");
    }
}
