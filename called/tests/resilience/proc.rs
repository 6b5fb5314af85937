//! The real service binaries as child processes: start on a port with a clean environment,
//! wait until they answer, send SIGTERM / SIGKILL, capture their logs, read their memory.
//! Every wait is bounded.
#![allow(dead_code)]

use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// How to start a binary.
#[derive(Clone)]
pub struct Spec {
    /// Path of the executable (`env!("CARGO_BIN_EXE_…")`).
    pub exe: &'static str,
    /// Environment besides `PORT` (the rest is cleared). `RUST_LOG` defaults to `warn`.
    pub env: Vec<(String, String)>,
    /// Path polled until it answers 200.
    pub ready_path: &'static str,
    /// Keep stdout and stderr lines (else discarded, or inherited with `TEST_LOG`).
    pub capture: bool,
}

impl Spec {
    pub fn new(exe: &'static str, env: &[(&str, &str)]) -> Self {
        Self {
            exe,
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ready_path: "/health/ready",
            capture: false,
        }
    }

    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.env.retain(|(k, _)| k != name);
        self.env.push((name.to_owned(), value.into()));
        self
    }

    pub fn capture(mut self) -> Self {
        self.capture = true;
        self
    }

    pub fn ready_path(mut self, path: &'static str) -> Self {
        self.ready_path = path;
        self
    }
}

/// A running child.
pub struct Proc {
    pub child: Child,
    pub pid: u32,
    pub port: u16,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    lines: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
}

/// Memory of a process from `/proc/PID/status`, in KiB.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    /// Resident set size now.
    pub rss_kib: u64,
    /// Peak resident set size.
    pub hwm_kib: u64,
}

impl Proc {
    /// Starts `spec` on `port` and waits until `spec.ready_path` answers 200 (at most 15 s).
    /// Panics if the process exits first.
    pub async fn start(spec: &Spec, port: u16) -> Self {
        Self::try_start(spec, port)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts `spec` on a free port, trying another one if the first was taken meanwhile.
    pub async fn start_anywhere(spec: &Spec) -> Self {
        let mut last = String::new();
        for _ in 0..3 {
            match Self::try_start(spec, free_port()).await {
                Ok(p) => return p,
                Err(e) => last = e,
            }
        }
        panic!("{} did not start on any of three ports: {last}", spec.exe);
    }

    async fn try_start(spec: &Spec, port: u16) -> Result<Self, String> {
        let mut cmd = Command::new(spec.exe);
        cmd.env_clear()
            .env("PORT", port.to_string())
            .env("RUST_LOG", "warn")
            .kill_on_drop(true);
        for (k, v) in &spec.env {
            cmd.env(k, v);
        }
        let verbose = std::env::var_os("TEST_LOG").is_some();
        if spec.capture {
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        } else if verbose {
            cmd.stdout(Stdio::inherit()).stderr(Stdio::inherit());
        } else {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        }
        let mut child = cmd.spawn().expect("spawn the service binary");
        let pid = child.id().expect("pid");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        if spec.capture {
            if let Some(out) = child.stdout.take() {
                readers.push(collect(out, lines.clone()));
            }
            if let Some(err) = child.stderr.take() {
                readers.push(collect(err, lines.clone()));
            }
        }
        let mut p = Self {
            child,
            pid,
            port,
            base: format!("http://127.0.0.1:{port}"),
            addr: format!("127.0.0.1:{port}"),
            lines,
            readers,
        };
        p.wait_ready(spec.ready_path).await?;
        Ok(p)
    }

    async fn wait_ready(&mut self, path: &str) -> Result<(), String> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("client");
        let url = format!("{}{path}", self.base);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(15) {
            if let Ok(r) = client.get(&url).send().await
                && r.status() == 200
            {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                let logs = self.lines.lock().expect("lock").join("\n");
                return Err(format!(
                    "{url}: the process exited with {status} before it was ready\n{logs}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(format!("{url} never answered 200 within 15 s"))
    }

    /// Sends SIGTERM (with the `kill` utility: tests forbid `unsafe`).
    pub async fn sigterm(&self) {
        let ok = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status()
            .await
            .expect("run kill")
            .success();
        assert!(ok, "kill -TERM {} failed", self.pid);
    }

    /// SIGKILL, then reaps the process.
    pub async fn sigkill(&mut self) {
        self.child.start_kill().expect("SIGKILL");
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("a SIGKILLed process is reaped at once");
    }

    /// Waits for the exit (panics after `limit`): the status and how long it took from now.
    pub async fn wait_exit(&mut self, limit: Duration) -> (ExitStatus, Duration) {
        let start = Instant::now();
        let status = tokio::time::timeout(limit, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("pid {} still running after {limit:?}", self.pid))
            .expect("wait");
        (status, start.elapsed())
    }

    /// Current and peak resident memory.
    pub fn memory(&self) -> Memory {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .expect("read /proc/PID/status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("{name} missing from /proc/PID/status"))
        };
        Memory {
            rss_kib: field("VmRSS:"),
            hwm_kib: field("VmHWM:"),
        }
    }

    /// Every captured stdout and stderr line, after the process has exited and both streams
    /// reached their end.
    pub async fn into_logs(mut self) -> Vec<String> {
        for r in self.readers.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(10), r).await;
        }
        self.lines.lock().expect("lock").clone()
    }
}

fn collect<R>(stream: R, into: Arc<Mutex<Vec<String>>>) -> JoinHandle<()>
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            into.lock().expect("lock").push(line);
        }
    })
}
