//! Where the JSON log lines go: a writer (stdout in the services) fed by a background thread
//! in batches, so that a log line costs its request a copy under a short lock, not a `write`
//! system call.
//!
//! - Lines reach the writer whole and in the order they were appended, within
//!   [`FLUSH_EVERY`] (sooner once [`WAKE_AT`] bytes are waiting).
//! - At most [`MAX_PENDING`] bytes wait: beyond that the appending thread writes the batch
//!   itself — back-pressure from a slow reader, as with unbuffered writes, and bounded memory.
//! - [`Sink::flush`] writes whatever is waiting; the services call it at exit and on a panic
//!   ([`crate::telemetry::flush`]). Only a `SIGKILL` can lose lines: those of the last
//!   [`FLUSH_EVERY`].

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Longest a line waits before it is written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(20);
/// Waiting bytes that wake the writer thread before [`FLUSH_EVERY`].
pub const WAKE_AT: usize = 32 * 1024;
/// Most bytes waiting; the appending thread writes them itself beyond this.
pub const MAX_PENDING: usize = 1024 * 1024;

/// A batching line writer; see the module documentation. Cheap to share (`&'static` or
/// through the `Arc` inside).
pub struct Sink {
    shared: Arc<Shared>,
}

struct Shared {
    /// Lines not yet taken by a writer.
    pending: Mutex<Vec<u8>>,
    wake: Condvar,
    /// The output, and the batch being written: held while a batch is taken and written, so
    /// batches reach the output in order.
    out: Mutex<Out>,
}

struct Out {
    writer: Box<dyn Write + Send>,
    batch: Vec<u8>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Sink {
    /// A sink writing to `writer`, with its writer thread started. Should the thread not
    /// start, lines are written when [`MAX_PENDING`] is reached and at [`Sink::flush`].
    pub fn start(writer: Box<dyn Write + Send>) -> Self {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Vec::with_capacity(64 * 1024)),
            wake: Condvar::new(),
            out: Mutex::new(Out {
                writer,
                batch: Vec::with_capacity(64 * 1024),
            }),
        });
        let worker = Arc::downgrade(&shared);
        let spawned = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || {
                // Ends when the sink is dropped (never, for stdout's).
                while let Some(shared) = worker.upgrade() {
                    let waiting = {
                        let pending = lock(&shared.pending);
                        let (pending, _) = shared
                            .wake
                            .wait_timeout_while(pending, FLUSH_EVERY, |p| p.len() < WAKE_AT)
                            .unwrap_or_else(PoisonError::into_inner);
                        !pending.is_empty()
                    };
                    if waiting {
                        shared.write_batch();
                    }
                }
            });
        if let Err(e) = spawned {
            eprintln!(
                "log writer thread not started ({e}); log lines are written in batches of {MAX_PENDING} bytes and at exit"
            );
        }
        Self { shared }
    }

    /// Queues one complete line (with its newline).
    pub fn append(&self, line: &[u8]) {
        let full = {
            let mut pending = lock(&self.shared.pending);
            let before = pending.len();
            pending.extend_from_slice(line);
            if before < WAKE_AT && pending.len() >= WAKE_AT {
                self.shared.wake.notify_one();
            }
            pending.len() >= MAX_PENDING
        };
        if full {
            self.shared.write_batch();
        }
    }

    /// Writes everything waiting now, and flushes the writer.
    pub fn flush(&self) {
        self.shared.write_batch();
        let _ = lock(&self.shared.out).writer.flush();
    }
}

impl Shared {
    /// Takes what is waiting and writes it, in order with every other batch.
    fn write_batch(&self) {
        let mut out = lock(&self.out);
        let Out { writer, batch } = &mut *out;
        std::mem::swap(&mut *lock(&self.pending), batch);
        if !batch.is_empty() {
            let _ = writer.write_all(batch);
            batch.clear();
        }
        if batch.capacity() > 4 * MAX_PENDING {
            batch.shrink_to(64 * 1024);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// A writer into memory the test can read.
    #[derive(Clone, Default)]
    struct Memory(Arc<Mutex<Vec<u8>>>);

    impl Write for Memory {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            lock(&self.0).extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Memory {
        fn text(&self) -> String {
            String::from_utf8(lock(&self.0).clone()).expect("utf-8")
        }
    }

    #[test]
    fn lines_from_many_threads_arrive_whole_once_and_in_each_threads_order() {
        let out = Memory::default();
        let sink = Arc::new(Sink::start(Box::new(out.clone())));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let sink = Arc::clone(&sink);
                std::thread::spawn(move || {
                    for i in 0..20_000 {
                        // Long enough that the batches pass WAKE_AT and MAX_PENDING.
                        sink.append(format!("{t} {i:06} {}\n", "x".repeat(40)).as_bytes());
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        sink.flush();
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
        let sink = Sink::start(Box::new(out.clone()));
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
        let sink = Sink::start(Box::new(out.clone()));
        sink.append(b"a\n");
        sink.append(b"b\n");
        sink.flush();
        assert_eq!(out.text(), "a\nb\n");
    }
}
