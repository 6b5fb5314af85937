//! The real binaries as child processes: start on a port with a clean environment, wait until
//! they answer ([`crate::ready`]), send SIGTERM / SIGKILL, keep their logs, read their memory.
//! Every wait is bounded.

use std::path::PathBuf;
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

/// Where a child's stdout and stderr go.
#[derive(Clone, Debug)]
pub enum Output {
    /// Discarded (inherited when `TEST_LOG` is set).
    Quiet,
    /// Kept as lines ([`Proc::into_logs`]).
    Capture,
    /// Written to this file.
    File(PathBuf),
    /// stdout piped and left unread until [`Proc::take_stdout`] (a pipe holds 64 KiB: a
    /// stdout nobody reads); stderr kept as lines.
    Unread,
}

/// How to start a binary.
#[derive(Clone, Debug)]
pub struct Spec {
    /// Path of the executable (`env!("CARGO_BIN_EXE_…")`).
    pub exe: PathBuf,
    /// Its name in messages (the executable's file name unless set).
    pub name: String,
    /// Command-line arguments.
    pub args: Vec<String>,
    /// Environment besides `PORT` (the rest is cleared). `RUST_LOG` defaults to `warn`.
    pub env: Vec<(String, String)>,
    /// Path polled until it answers 200.
    pub ready_path: &'static str,
    /// Where stdout and stderr go.
    pub output: Output,
    /// When dropped: SIGTERM and up to this long to exit before SIGKILL (zero: SIGKILL).
    pub stop_grace: Duration,
}

impl Spec {
    /// `exe` with the environment `env`.
    pub fn new(exe: impl Into<PathBuf>, env: &[(&str, &str)]) -> Self {
        let exe = exe.into();
        let name = exe.file_name().map_or_else(
            || exe.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        Self {
            exe,
            name,
            args: Vec::new(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ready_path: "/health/ready",
            output: Output::Quiet,
            stop_grace: Duration::ZERO,
        }
    }

    /// Sets one environment variable (replacing an earlier value).
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.env.retain(|(k, _)| k != name);
        self.env.push((name.to_owned(), value.into()));
        self
    }

    /// Sets every pair of `pairs` ([`Spec::with`]).
    pub fn with_all(self, pairs: &[(&str, String)]) -> Self {
        pairs
            .iter()
            .fold(self, |spec, (k, v)| spec.with(k, v.clone()))
    }

    /// Keeps stdout and stderr lines.
    pub fn capture(mut self) -> Self {
        self.output = Output::Capture;
        self
    }

    /// Leaves stdout unread ([`Output::Unread`]).
    pub fn stdout_unread(mut self) -> Self {
        self.output = Output::Unread;
        self
    }

    /// Writes stdout and stderr to `file`.
    pub fn log_to(mut self, file: impl Into<PathBuf>) -> Self {
        self.output = Output::File(file.into());
        self
    }

    /// Polls `path` instead of `/health/ready`.
    pub fn ready_path(mut self, path: &'static str) -> Self {
        self.ready_path = path;
        self
    }

    /// Names the process in messages.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Command-line arguments.
    pub fn args(mut self, args: impl IntoIterator<Item = String>) -> Self {
        self.args = args.into_iter().collect();
        self
    }

    /// Stopped with SIGTERM and up to `grace` to exit (then SIGKILL) when dropped.
    pub fn stop_gracefully(mut self, grace: Duration) -> Self {
        self.stop_grace = grace;
        self
    }
}

/// A running child; killed when dropped (see [`Spec::stop_gracefully`]).
pub struct Proc {
    /// The process.
    pub child: Child,
    /// Its process id.
    pub pid: u32,
    /// Its name ([`Spec::name`]).
    pub name: String,
    /// Its port.
    pub port: u16,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// From the spawn to the first 200 of the ready path.
    pub start_to_ready: Duration,
    lines: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
    unread: Option<tokio::process::ChildStdout>,
    log_file: Option<PathBuf>,
    stop_grace: Duration,
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
    /// Starts `spec` on `port` and waits until `spec.ready_path` answers 200. Panics if the
    /// process exits first or is not ready within [`crate::ready::READY_WITHIN`].
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
        panic!("{} did not start on any of three ports: {last}", spec.name);
    }

    /// [`Proc::start`], with an error (and the end of the log) instead of a panic.
    pub async fn try_start(spec: &Spec, port: u16) -> Result<Self, String> {
        let mut cmd = Command::new(&spec.exe);
        cmd.args(&spec.args)
            .env_clear()
            .env("PORT", port.to_string())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        for (k, v) in &spec.env {
            cmd.env(k, v);
        }
        let mut log_file = None;
        match &spec.output {
            Output::Capture | Output::Unread => {
                cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
            }
            Output::File(path) => {
                let out = std::fs::File::create(path)
                    .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
                let err = out.try_clone().map_err(|e| format!("log file: {e}"))?;
                cmd.stdout(out).stderr(err);
                log_file = Some(path.clone());
            }
            Output::Quiet if std::env::var_os("TEST_LOG").is_some() => {
                cmd.stdout(Stdio::inherit()).stderr(Stdio::inherit());
            }
            Output::Quiet => {
                cmd.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", spec.exe.display()))?;
        let pid = child.id().ok_or("the child has no pid")?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        let mut unread = None;
        if let Some(out) = child.stdout.take() {
            if matches!(spec.output, Output::Unread) {
                unread = Some(out);
            } else {
                readers.push(collect(out, lines.clone()));
            }
        }
        if let Some(err) = child.stderr.take() {
            readers.push(collect(err, lines.clone()));
        }
        let mut p = Self {
            child,
            pid,
            name: spec.name.clone(),
            port,
            base: format!("http://127.0.0.1:{port}"),
            addr: format!("127.0.0.1:{port}"),
            start_to_ready: Duration::ZERO,
            lines,
            readers,
            unread,
            log_file,
            stop_grace: spec.stop_grace,
        };
        let url = format!("{}{}", p.base, spec.ready_path);
        let waited = crate::ready::poll_status(&url, 200, || match p.child.try_wait() {
            Ok(Some(status)) => Some(format!(
                "the process exited with {status} before it was ready"
            )),
            _ => None,
        })
        .await;
        match waited {
            Ok(_) => {
                p.start_to_ready = started.elapsed();
                Ok(p)
            }
            Err(e) => Err(format!("{}: {e}\n{}", p.name, p.log_tail())),
        }
    }

    /// The last 20 lines of its log (captured or written to a file).
    pub fn log_tail(&self) -> String {
        let lines: Vec<String> = match &self.log_file {
            Some(path) => std::fs::read_to_string(path)
                .unwrap_or_default()
                .lines()
                .map(str::to_owned)
                .collect(),
            None => self.lines.lock().expect("lock").clone(),
        };
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// The stdout left unread ([`Spec::stdout_unread`]), to read at the test's pace; `None`
    /// after the first call or with another [`Output`].
    pub fn take_stdout(&mut self) -> Option<tokio::process::ChildStdout> {
        self.unread.take()
    }

    /// Sends SIGTERM (with the `kill` utility: `unsafe` is forbidden).
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

    /// Without waiting on the runtime: SIGTERM and up to `grace` to exit, then SIGKILL (at
    /// once when `grace` is zero). Nothing happens if it has exited already.
    pub fn stop(&mut self, grace: Duration) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        if !grace.is_zero() {
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(self.pid.to_string())
                .status();
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if matches!(self.child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let _ = self.child.start_kill();
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

    /// SIGTERM, then the exit with status 0 (within 15 s), then every captured line
    /// ([`Proc::into_logs`]).
    pub async fn stop_cleanly(mut self) -> Vec<String> {
        self.sigterm().await;
        let (exit, _) = self.wait_exit(Duration::from_secs(15)).await;
        assert_eq!(exit.code(), Some(0));
        self.into_logs().await
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

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop(self.stop_grace);
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
