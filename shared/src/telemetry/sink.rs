//! Where the log lines go: a writer (stdout or stderr in the services) fed by a background
//! thread in batches, so that a log line costs its request a copy under a short lock — never a
//! `write` system call, and never a wait on a reader.
//!
//! - Lines reach the writer whole and in the order they were appended, within
//!   [`FLUSH_EVERY`] (sooner once [`WAKE_AT`] bytes are waiting).
//! - Only the writer thread writes. It handles partial writes, `EINTR`, and errors such as
//!   `EAGAIN` on a non-blocking output, `EPIPE` or `ENOSPC`, by retrying the rest of its batch
//!   after a short back-off (up to [`RETRY_AT_MOST`]): a line is never torn or written twice.
//! - At most [`MAX_PENDING`] bytes wait besides the batch being written. When the output
//!   cannot keep up, a line that does not fit is dropped and counted, as is a line longer than
//!   [`MAX_LINE`]; the first line queued once there is room again is preceded by one line
//!   reporting how many lines (and bytes) were dropped. Memory stays bounded and the appending
//!   thread (a runtime worker) never waits for the output.
//! - [`Sink::flush_within`] waits, up to a bound, until everything appended so far is written;
//!   the services call it at exit and on a panic ([`crate::telemetry::flush`]). Lines still
//!   unwritten at the bound (an output nobody reads) are lost with the process, as are those of
//!   the last [`FLUSH_EVERY`] on a `SIGKILL`.

use std::io::{ErrorKind, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Longest a line waits before it is written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(20);
/// Waiting bytes that wake the writer thread before [`FLUSH_EVERY`].
pub const WAKE_AT: usize = 32 * 1024;
/// Most bytes waiting besides the batch being written; lines beyond are dropped and counted.
pub const MAX_PENDING: usize = 1024 * 1024;
/// Longest line accepted, newline included; longer ones are dropped and counted. Cloud Logging
/// refuses entries over 256 KiB; the JSON layer truncates its lines below this.
pub const MAX_LINE: usize = 64 * 1024;
/// Longest back-off between two attempts to write to an output that refused.
pub const RETRY_AT_MOST: Duration = Duration::from_millis(50);

/// Formats the line that reports `lines` dropped lines of `bytes` bytes in all (with its
/// newline).
pub type Report = fn(lines: u64, bytes: u64) -> Vec<u8>;

/// A batching line writer; see the module documentation. Cheap to share (`&'static` or
/// through the `Arc` inside).
pub struct Sink {
    shared: Arc<Shared>,
    /// Whether the writer thread runs; without it [`Sink::flush_within`] writes itself.
    threaded: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    /// Wakes the writer thread: [`WAKE_AT`] bytes waiting, or a flush asked for.
    wake: Condvar,
    /// Wakes those waiting in [`Sink::flush_within`]: a batch was written.
    progress: Condvar,
    /// The output, used by one writer at a time (the writer thread, or a flush without it).
    out: Mutex<Box<dyn Write + Send>>,
    report: Report,
    /// Set when the sink is dropped: the writer thread stops retrying and ends.
    closed: AtomicBool,
}

/// What waits, and the counters; all under one short lock.
struct Queue {
    /// Lines not yet taken by the writer.
    pending: Vec<u8>,
    /// Bytes ever queued (lines and reports).
    queued: u64,
    /// Bytes ever written in full (the batch that ended at `queued` so far).
    written: u64,
    /// Lines dropped (and their bytes) since the last report.
    dropped_lines: u64,
    dropped_bytes: u64,
    /// Lines dropped since the start.
    dropped_total: u64,
    /// A line was dropped for want of room: every line is dropped until the writer takes what
    /// waits (the output flowed), so that the gap is one, reported once.
    full: bool,
    /// Someone waits in [`Sink::flush_within`]: write without waiting for [`WAKE_AT`].
    flush_asked: bool,
}

impl Queue {
    fn push(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        self.queued += bytes.len() as u64;
    }

    fn drop_line(&mut self, len: usize) {
        self.dropped_lines += 1;
        self.dropped_bytes += len as u64;
        self.dropped_total += 1;
    }

    /// Queues the report of the lines dropped so far, if any — when `then` is given, only if
    /// it fits in [`MAX_PENDING`] with `then` more bytes after it; false if it does not fit.
    fn report_dropped(&mut self, report: Report, then: Option<usize>) -> bool {
        if self.dropped_lines == 0 {
            return true;
        }
        let line = report(self.dropped_lines, self.dropped_bytes);
        if then.is_some_and(|then| self.pending.len() + line.len() + then > MAX_PENDING) {
            return false;
        }
        self.push(&line);
        self.dropped_lines = 0;
        self.dropped_bytes = 0;
        true
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Sink {
    /// A sink writing to `writer`, with its writer thread started; `report` formats the line
    /// that counts dropped lines. Should the thread not start, lines wait (up to
    /// [`MAX_PENDING`]) for [`Sink::flush_within`].
    pub fn start(writer: Box<dyn Write + Send>, report: Report) -> Self {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                pending: Vec::with_capacity(64 * 1024),
                queued: 0,
                written: 0,
                dropped_lines: 0,
                dropped_bytes: 0,
                dropped_total: 0,
                full: false,
                flush_asked: false,
            }),
            wake: Condvar::new(),
            progress: Condvar::new(),
            out: Mutex::new(writer),
            report,
            closed: AtomicBool::new(false),
        });
        let worker = Arc::downgrade(&shared);
        let spawned = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || {
                let mut batch = Vec::with_capacity(64 * 1024);
                // Ends when the sink is dropped (never, for stdout's).
                while let Some(shared) = worker.upgrade() {
                    if shared.closed.load(Ordering::Relaxed) {
                        break;
                    }
                    let upto = {
                        let queue = lock(&shared.queue);
                        let (mut queue, _) = shared
                            .wake
                            .wait_timeout_while(queue, FLUSH_EVERY, |q| {
                                q.pending.len() < WAKE_AT && !q.flush_asked
                            })
                            .unwrap_or_else(PoisonError::into_inner);
                        shared.take(&mut queue, &mut batch)
                    };
                    if let Some(upto) = upto {
                        let mut out = lock(&shared.out);
                        shared.write_all(&mut **out, &batch, None);
                        let _ = out.flush();
                        drop(out);
                        shared.written(upto);
                    }
                    batch.clear();
                    if batch.capacity() > 4 * MAX_PENDING {
                        batch.shrink_to(64 * 1024);
                    }
                }
            });
        if let Err(e) = &spawned {
            eprintln!(
                "log writer thread not started ({e}); at most {MAX_PENDING} bytes of log lines wait for the exit"
            );
        }
        Self {
            shared,
            threaded: spawned.is_ok(),
        }
    }

    /// Queues one complete line (with its newline), or drops and counts it when it is longer
    /// than [`MAX_LINE`] or [`MAX_PENDING`] bytes are already waiting. Never waits for the
    /// output.
    pub fn append(&self, line: &[u8]) {
        let mut queue = lock(&self.shared.queue);
        if line.len() > MAX_LINE {
            queue.drop_line(line.len());
            return;
        }
        if queue.full
            || queue.pending.len() + line.len() > MAX_PENDING
            || !queue.report_dropped(self.shared.report, Some(line.len()))
        {
            queue.full = true;
            queue.drop_line(line.len());
            return;
        }
        let before = queue.pending.len();
        queue.push(line);
        if before < WAKE_AT && queue.pending.len() >= WAKE_AT {
            self.shared.wake.notify_one();
        }
    }

    /// Lines dropped since the start.
    pub fn dropped(&self) -> u64 {
        lock(&self.shared.queue).dropped_total
    }

    /// Waits until every line appended so far (and the report of any dropped since the last
    /// one) is written, or `limit` has passed; true if all was written.
    pub fn flush_within(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut queue = lock(&self.shared.queue);
        let _ = queue.report_dropped(self.shared.report, None);
        let target = queue.queued;
        if !self.threaded {
            let mut batch = Vec::new();
            let upto = self.shared.take(&mut queue, &mut batch);
            drop(queue);
            if let Some(upto) = upto {
                let mut out = lock(&self.shared.out);
                let done = self.shared.write_all(&mut **out, &batch, Some(deadline));
                let _ = out.flush();
                if done {
                    drop(out);
                    self.shared.written(upto);
                }
            }
            return lock(&self.shared.queue).written >= target;
        }
        while queue.written < target {
            let now = Instant::now();
            if now >= deadline {
                queue.flush_asked = false;
                return false;
            }
            queue.flush_asked = true;
            self.shared.wake.notify_one();
            queue = self
                .shared
                .progress
                .wait_timeout(queue, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Relaxed);
        self.shared.wake.notify_one();
    }
}

impl Shared {
    /// Moves what waits into `batch` (empty), with the report of lines dropped since the last
    /// one; the count of bytes queued up to its end, or `None` if there is nothing to write.
    fn take(&self, queue: &mut Queue, batch: &mut Vec<u8>) -> Option<u64> {
        queue.flush_asked = false;
        queue.full = false;
        let _ = queue.report_dropped(self.report, None);
        if queue.pending.is_empty() {
            return None;
        }
        std::mem::swap(&mut queue.pending, batch);
        if queue.pending.capacity() < 64 * 1024 {
            queue.pending.reserve(64 * 1024);
        }
        Some(queue.queued)
    }

    /// Records that everything queued up to `upto` is written.
    fn written(&self, upto: u64) {
        let mut queue = lock(&self.queue);
        queue.written = queue.written.max(upto);
        drop(queue);
        self.progress.notify_all();
    }

    /// Writes all of `batch`, the rest after a partial write, retrying after a back-off when
    /// the output refuses; gives up only at `deadline` or when the sink is dropped. True when
    /// all was written.
    fn write_all(&self, out: &mut dyn Write, batch: &[u8], deadline: Option<Instant>) -> bool {
        let mut rest = batch;
        let mut backoff = Duration::from_millis(1);
        while !rest.is_empty() {
            match out.write(rest) {
                Ok(n) if n > 0 => {
                    rest = &rest[n.min(rest.len())..];
                    backoff = Duration::from_millis(1);
                    continue;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // Zero bytes, EAGAIN on a non-blocking output, EPIPE, ENOSPC …: the rest is
                // kept (never torn) and tried again; new lines are counted as dropped
                // meanwhile once MAX_PENDING bytes wait.
                Ok(_) | Err(_) => {}
            }
            if self.closed.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d)
            {
                return false;
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(RETRY_AT_MOST);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer into memory the test can read, which can be made to refuse (`EAGAIN`) or to
    /// take at most a few bytes per call.
    #[derive(Clone, Default)]
    struct Memory {
        data: Arc<Mutex<Vec<u8>>>,
        blocked: Arc<AtomicBool>,
        dribble: Option<usize>,
    }

    impl Write for Memory {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.blocked.load(Ordering::SeqCst) {
                return Err(ErrorKind::WouldBlock.into());
            }
            let n = self.dribble.map_or(buf.len(), |d| d.min(buf.len()));
            lock(&self.data).extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Memory {
        fn text(&self) -> String {
            String::from_utf8(lock(&self.data).clone()).expect("utf-8")
        }
    }

    fn report(lines: u64, bytes: u64) -> Vec<u8> {
        format!("dropped {lines} {bytes}\n").into_bytes()
    }

    #[test]
    fn lines_from_many_threads_arrive_whole_once_and_in_each_threads_order() {
        let out = Memory {
            // Partial writes on every call: lines must still arrive whole.
            dribble: Some(4093),
            ..Memory::default()
        };
        let sink = Arc::new(Sink::start(Box::new(out.clone()), report));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let sink = Arc::clone(&sink);
                std::thread::spawn(move || {
                    for i in 0..20_000 {
                        // Long enough that the batches pass WAKE_AT.
                        sink.append(format!("{t} {i:06} {}\n", "x".repeat(40)).as_bytes());
                        if i % 1000 == 0 {
                            // Room for the writer: this test is about order, not drops.
                            while lock(&sink.shared.queue).pending.len() > MAX_PENDING / 2 {
                                std::thread::sleep(Duration::from_millis(1));
                            }
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        assert!(sink.flush_within(Duration::from_secs(30)));
        assert_eq!(sink.dropped(), 0);
        let text = out.text();
        let mut next = [0usize; 4];
        for line in text.lines() {
            let mut parts = line.split(' ');
            let t: usize = parts.next().and_then(|p| p.parse().ok()).expect("thread");
            let i: usize = parts.next().and_then(|p| p.parse().ok()).expect("index");
            assert_eq!(
                parts.next().map(str::len),
                Some(40),
                "a torn line: {line:?}"
            );
            assert_eq!(i, next[t], "thread {t}'s lines out of order or repeated");
            next[t] += 1;
        }
        assert_eq!(next, [20_000; 4], "every line, once");
    }

    #[test]
    fn a_line_is_written_without_a_flush_within_a_few_intervals() {
        let out = Memory::default();
        let sink = Sink::start(Box::new(out.clone()), report);
        sink.append(b"one line\n");
        let deadline = Instant::now() + 50 * FLUSH_EVERY;
        while out.text().is_empty() {
            assert!(
                Instant::now() < deadline,
                "the writer thread never wrote the line"
            );
            std::thread::sleep(FLUSH_EVERY / 4);
        }
        assert_eq!(out.text(), "one line\n");
    }

    #[test]
    fn flush_writes_what_is_waiting_at_once() {
        let out = Memory::default();
        let sink = Sink::start(Box::new(out.clone()), report);
        sink.append(b"a\n");
        sink.append(b"b\n");
        assert!(sink.flush_within(Duration::from_secs(5)));
        assert_eq!(out.text(), "a\nb\n");
    }

    #[test]
    fn a_refusing_output_never_blocks_append_and_drops_are_reported_once_it_flows() {
        let out = Memory::default();
        out.blocked.store(true, Ordering::SeqCst);
        let sink = Sink::start(Box::new(out.clone()), report);
        let line = format!("{}\n", "y".repeat(999));
        let started = Instant::now();
        for _ in 0..5_000 {
            sink.append(line.as_bytes());
        }
        // 5 MB offered to an output that takes nothing: appends return at once.
        assert!(started.elapsed() < Duration::from_secs(5));
        let dropped = sink.dropped();
        assert!(dropped >= 2_000, "only {dropped} dropped");
        // The flush gives up at its bound while the output refuses.
        let t = Instant::now();
        assert!(!sink.flush_within(Duration::from_millis(200)));
        assert!(t.elapsed() < Duration::from_secs(5));
        // An oversized line is dropped too, and counted.
        sink.append(&vec![b'z'; MAX_LINE + 1]);
        out.blocked.store(false, Ordering::SeqCst);
        assert!(sink.flush_within(Duration::from_secs(10)));
        sink.append(b"after\n");
        assert!(sink.flush_within(Duration::from_secs(10)));
        let text = out.text();
        let lines: Vec<&str> = text.lines().collect();
        let written = lines.iter().filter(|l| l.len() == 999).count() as u64;
        let reported: u64 = lines
            .iter()
            .filter_map(|l| l.strip_prefix("dropped "))
            .map(|l| {
                l.split(' ')
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .expect("count")
            })
            .sum();
        assert_eq!(reported, dropped + 1, "every drop reported");
        // A report for the gap and one for the long line — or one for both, when the writer
        // thread had not reported the gap yet as the long line came (a race the test does not
        // control).
        let reports = lines.iter().filter(|l| l.starts_with("dropped ")).count();
        assert!((1..=2).contains(&reports), "report lines: {reports}");
        assert_eq!(reported, sink.dropped());
        assert_eq!(written + reported, 5_001, "every line written or counted");
        assert_eq!(
            lines.last(),
            Some(&"after"),
            "the report precedes later lines"
        );
        assert!(
            lines
                .iter()
                .all(|l| l.len() == 999 || l.starts_with("dropped ") || *l == "after")
        );
    }
}
