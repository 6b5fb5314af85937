//! The results of a run and their Markdown rendering: the main table, per-service costs, and
//! the targets with verdicts.

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
    /// Its name in tables and the chart.
    pub name: String,
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

/// The main table: one row per scenario.
pub fn scenario_table(scenarios: &[Scenario]) -> String {
    let mut s = String::from(
        "| scenario | req/s | p50 ms | p90 ms | p99 ms | max ms | requests | errors (non-2xx + socket) | CPU µs/req (all services) | token fetches/req | key-set fetches/req |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for sc in scenarios {
        let w = &sc.wrk;
        let _ = writeln!(
            s,
            "| {} | {:.0} | {} | {} | {} | {} | {} | {} ({} + {}) | {:.0} | {} | {} |",
            sc.name,
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
        "| scenario | process | CPU µs/req | context switches/req | peak RSS MiB | start → ready ms |\n|---|---|---:|---:|---:|---:|\n",
    );
    for sc in scenarios {
        for p in &sc.services {
            let _ = writeln!(
                s,
                "| {} | {} | {:.0} | {:.2} | {} | {:.1} |",
                sc.name,
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

/// The performance issue's targets (issue 15) checked against the chain and the floor of this run.
/// `called_starts` are extra start-to-ready samples of `called` with a fresh SQLite file.
pub fn verdicts(chain: &Scenario, floor: &Scenario, called_starts: &[Duration]) -> Vec<Verdict> {
    let mut v = Vec::new();
    let ratio = chain.wrk.throughput() / floor.wrk.throughput().max(f64::MIN_POSITIVE);
    v.push(Verdict {
        target: "throughput ≥ 45 % of the floor (stretch: 60 %)".into(),
        measured: format!(
            "{:.0} / {:.0} req/s = {:.0} %",
            chain.wrk.throughput(),
            floor.wrk.throughput(),
            ratio * 100.0
        ),
        met: ratio >= 0.45,
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
        assert!(table.contains("| chain | 700 |"));
    }
}
