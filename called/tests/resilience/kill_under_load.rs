//! Fault test: SIGKILL the real `called` binary three times while a few hundred requests per
//! second flow through caller, restarting it each time on the same port and SQLite file.
//! Nothing acknowledged is lost, nothing is stored twice, caller's retries hide the outages,
//! and whatever failed failed fast with a problem document.
//!
//! Soak variant: `RESILIENCE_SOAK_SECS=300 cargo test -p called --test resilience kill` keeps
//! the load (and a kill every 1.1 s) going for five minutes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::time::MissedTickBehavior;

use testkit::checks::assert_problem_parts;
use testkit::child::{Proc, free_port};
use testkit::emu::Emu;
use testkit::in_process::{spawn_caller, sqlite_store};

use crate::helpers::{called_verifying, duplicated_keys, rows};

/// Requests per second sent to caller.
const RATE: u64 = 250;

/// How long the load lasts: 4 s, or `RESILIENCE_SOAK_SECS` (the long soak variant).
fn drive() -> Duration {
    let secs = std::env::var("RESILIENCE_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|s| (1..=3600).contains(s))
        .unwrap_or(4);
    Duration::from_secs(secs)
}

/// When called is killed (from the start of the load) and how long it stays down before the
/// restart begins (the restart adds its own start-up time): every 1.1 s from 0.8 s, down for
/// 100, 200 or 300 ms, the last one at least half a second before the load ends. Three kills
/// for the default 4 s.
fn kills(drive: Duration) -> Vec<(Duration, Duration)> {
    (0u64..)
        .map(|k| {
            (
                Duration::from_millis(800 + 1100 * k),
                Duration::from_millis(100 + 100 * (k % 3)),
            )
        })
        .take_while(|(at, _)| *at + Duration::from_millis(500) <= drive)
        .collect()
}

/// caller's deadline for one forward, retries included.
const CALL_TIMEOUT: Duration = Duration::from_millis(8000);

/// What one client request ended with.
struct Outcome {
    key: String,
    /// The `"foo"` sent, stored as `"bar"`.
    value: String,
    /// Offset of the send from the start of the load.
    sent_at: Duration,
    took: Duration,
    /// `Err` = no HTTP answer (transport error or the client's own timeout: a hang).
    answer: Result<(u16, Option<String>, Vec<u8>), String>,
    /// `Idempotent-Replayed: true`: an attempt was stored but its answer lost, and caller's
    /// retry with the same key got the stored entity back.
    replayed: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_repeated_sigkill_under_load_through_caller() {
    let emu = Emu::start().await;
    let (database_url, _dir) = sqlite_store();
    let port = free_port();
    let spec = called_verifying(&emu, port, &database_url);
    let mut called = Proc::start(&spec, port).await;
    let caller = spawn_caller(
        &emu,
        &called.base,
        &[
            ("CALL_TIMEOUT_MS", "8000"),
            ("CALL_MAX_ATTEMPTS", "10"),
            ("MAX_CONCURRENT_REQUESTS", "4096"),
            ("AUTH_MODE", "off"),
        ],
    )
    .await;
    testkit::ready::wait_ready(&caller.base).await;
    let client = testkit::ready::client_with_timeout(CALL_TIMEOUT * 2 + Duration::from_secs(4));

    let drive = drive();
    let kills = kills(drive);
    assert!(!kills.is_empty());
    let start = Instant::now();
    // The killer: SIGKILL, stay down, restart on the same port and file, wait until ready.
    let killer = tokio::spawn(async move {
        let mut outages = Vec::new();
        for (at, down) in kills {
            tokio::time::sleep_until((start + at).into()).await;
            let killed = start.elapsed();
            called.sigkill().await;
            tokio::time::sleep(down).await;
            called = Proc::start(&spec, port).await;
            outages.push((killed, start.elapsed()));
        }
        (called, outages)
    });

    // The load: RATE requests per second, each with its own Idempotency-Key.
    let total = RATE * drive.as_secs();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let url = Arc::new(format!("{}/", caller.base));
    let mut requests = Vec::with_capacity(total as usize);
    for i in 0..total {
        tick.tick().await;
        let (client, url) = (client.clone(), url.clone());
        let key = format!("kill-load-{i}");
        let value = format!("value {i}");
        requests.push(tokio::spawn(async move {
            let sent_at = start.elapsed();
            let t = Instant::now();
            let mut replayed = false;
            let answer = match client
                .post(url.as_str())
                .header("idempotency-key", &key)
                .json(&json!({"foo": value}))
                .send()
                .await
            {
                Ok(res) => {
                    let status = res.status().as_u16();
                    replayed = res.headers().get("idempotent-replayed").is_some();
                    let ct = res
                        .headers()
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    match res.bytes().await {
                        Ok(body) => Ok((status, ct, body.to_vec())),
                        Err(e) => Err(format!("reading the body: {e}")),
                    }
                }
                Err(e) => Err(e.to_string()),
            };
            Outcome {
                key,
                value,
                sent_at,
                took: t.elapsed(),
                answer,
                replayed,
            }
        }));
    }
    let drive_took = start.elapsed();
    let mut outcomes = Vec::with_capacity(requests.len());
    for r in requests {
        outcomes.push(r.await.expect("request task"));
    }
    let (mut called, outages) = tokio::time::timeout(Duration::from_secs(60), killer)
        .await
        .expect("the killer finishes")
        .expect("killer task");
    called.sigterm().await;
    let (exit, _) = called.wait_exit(Duration::from_secs(15)).await;
    assert_eq!(exit.code(), Some(0), "the last called exits cleanly");

    // Every request got an HTTP answer, in time.
    let slowest = outcomes.iter().map(|o| o.took).max().unwrap_or_default();
    for o in &outcomes {
        if let Err(e) = &o.answer {
            panic!("{}: no answer (a hang or a dropped connection): {e}", o.key);
        }
        assert!(
            o.took <= CALL_TIMEOUT + Duration::from_secs(3),
            "{} took {:?}, beyond CALL_TIMEOUT_MS",
            o.key,
            o.took
        );
    }

    // What the store holds after the last restart.
    let stored = rows(&database_url).await;
    let by_key: HashMap<String, String> = stored
        .iter()
        .map(|(id, key)| (key.clone().expect("caller always sends a key"), id.clone()))
        .collect();
    assert_eq!(by_key.len(), stored.len(), "one row per key");
    assert!(
        duplicated_keys(&database_url).await.is_empty(),
        "no idempotency key has two rows"
    );
    let sent: HashSet<&str> = outcomes.iter().map(|o| o.key.as_str()).collect();
    assert!(
        by_key.keys().all(|k| sent.contains(k.as_str())),
        "every row comes from a request of this test"
    );

    let mut acked = 0usize;
    let mut failed: HashMap<u16, usize> = HashMap::new();
    for o in &outcomes {
        let Ok((status, ct, body)) = &o.answer else {
            unreachable!()
        };
        if *status == 201 {
            acked += 1;
            let v: Value = serde_json::from_slice(body).expect("201 body is JSON");
            let id = v["id"].as_str().expect("201 carries the entity id");
            assert_eq!(
                by_key.get(&o.key).map(String::as_str),
                Some(id),
                "{}: acknowledged as {id} but the store has {:?}",
                o.key,
                by_key.get(&o.key)
            );
            assert_eq!(v["body"], json!({"bar": o.value}), "{}: stored body", o.key);
        } else {
            assert!(
                matches!(status, 502..=504),
                "{}: {status} is not a gateway failure: {}",
                o.key,
                String::from_utf8_lossy(body)
            );
            assert_problem_parts(*status, ct.as_deref(), body).assert_complete();
            *failed.entry(*status).or_default() += 1;
        }
    }

    // The retries hide the outages: requests sent while called was down still end 201.
    let mut during = 0usize;
    let mut during_ok = 0usize;
    for o in &outcomes {
        if outages
            .iter()
            .any(|(down, up)| o.sent_at >= *down && o.sent_at <= *up)
        {
            during += 1;
            if matches!(o.answer, Ok((201, _, _))) {
                during_ok += 1;
            }
        }
    }
    let replayed = outcomes.iter().filter(|o| o.replayed).count();
    let report = format!(
        "kill-under-load: {total} requests in {drive_took:?}, {acked} acknowledged \
         ({replayed} of them replays of a write whose answer a kill cut off), failed {failed:?}, \
         {} rows; outages {outages:?}; {during_ok}/{during} sent during an outage ended 201; \
         slowest answer {slowest:?}",
        stored.len()
    );
    testkit::checks::loud(&report);
    assert!(
        during >= 30 * outages.len() / 3,
        "the load overlapped the outages: {report}"
    );
    assert!(
        during_ok * 100 >= during * 95,
        "retries hide short outages: {report}"
    );
    assert!(acked * 100 >= outcomes.len() * 95, "{report}");
}
