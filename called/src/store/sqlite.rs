//! Embedded SQLite store with group commit.
//!
//! One writer thread owns the only writing connection (`rusqlite`, with cached prepared
//! statements). Inserts queue to it; it takes everything queued (up to `max_batch`), runs the
//! inserts in one transaction and commits once (WAL, `synchronous=FULL`: the commit is on disk
//! when it returns), then answers each request. A 201 is therefore only ever sent for a row in
//! a committed, fsynced transaction, while concurrent requests share one fsync. Migrations and
//! reads use sqlx (a separate pool: WAL readers never block the writer).
//!
//! Why a thread of its own rather than sqlx for writes: sqlx's SQLite driver runs every
//! statement on a worker thread of the connection and hops to it and back through channels,
//! and binds through its own argument types; the writer here calls SQLite directly on the
//! thread that owns the connection (`bench/RESULTS.md` has the before and after).

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rusqlite::{OptionalExtension, params};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, Row, SqliteConnection, SqlitePool};
use tokio::sync::{Mutex, mpsc, oneshot};
use uuid::Uuid;

use super::{Entity, InsertOutcome, NewEntity, StoreError, StoreSettings, parse_body, parse_id};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

type Reply = oneshot::Sender<Result<InsertOutcome, StoreError>>;

enum Msg {
    Insert(Box<NewEntity>, Reply),
    /// Readiness asks the writer whether it can commit again (sent only while it is unhealthy).
    Probe,
    Close(oneshot::Sender<()>),
}

/// SQLite backend (cheap to clone).
#[derive(Clone)]
pub struct SqliteStore {
    tx: mpsc::Sender<Msg>,
    pool: SqlitePool,
    writer: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
    health: Arc<WriterHealth>,
}

/// The writer is unhealthy after this many commits in a row failed...
const UNHEALTHY_AFTER_FAILURES: u32 = 3;
/// ...or when its commits are still failing this long after the first failure, with no
/// success since (a commit that waits out a 5 s busy timeout fails once per 5 s).
const UNHEALTHY_AFTER: Duration = Duration::from_secs(5);

/// What the writer thread's commits last did, for readiness: every commit (a batch, or a probe)
/// records its outcome. Unhealthy after [`UNHEALTHY_AFTER_FAILURES`] failures in a row, or
/// when failures span [`UNHEALTHY_AFTER`] with no success between; healthy again after one
/// success. One isolated failure (a lock held a moment too long) never flips readiness, however
/// long nothing follows it, and a success flips it back at once: it does not flap with
/// sporadic errors.
#[derive(Debug, Default)]
struct WriterHealth {
    state: std::sync::Mutex<HealthState>,
    /// A [`Msg::Probe`] is queued or running: at most one at a time.
    probe_pending: AtomicBool,
}

#[derive(Debug, Default)]
struct HealthState {
    consecutive_failures: u32,
    /// When the current run of failures began, and its latest failure.
    failing: Option<(Instant, Instant)>,
    last_error: String,
}

impl WriterHealth {
    fn lock(&self) -> std::sync::MutexGuard<'_, HealthState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn record_success(&self) {
        let mut s = self.lock();
        if s.consecutive_failures >= UNHEALTHY_AFTER_FAILURES {
            tracing::info!(
                failures = s.consecutive_failures,
                "sqlite writer commits again"
            );
        }
        s.consecutive_failures = 0;
        s.failing = None;
        s.last_error.clear();
    }

    fn record_failure(&self, error: &rusqlite::Error) {
        self.record_failure_at(error, Instant::now());
    }

    fn record_failure_at(&self, error: &rusqlite::Error, now: Instant) {
        let mut s = self.lock();
        s.consecutive_failures = s.consecutive_failures.saturating_add(1);
        let first = s.failing.map_or(now, |(first, _)| first);
        s.failing = Some((first, now));
        s.last_error = error.to_string();
    }

    /// `Err(reason)` while the writer is unhealthy.
    fn check(&self) -> Result<(), String> {
        let s = self.lock();
        let failing_for = s.failing.map_or(Duration::ZERO, |(first, last)| {
            last.saturating_duration_since(first)
        });
        if s.consecutive_failures >= UNHEALTHY_AFTER_FAILURES || failing_for >= UNHEALTHY_AFTER {
            return Err(format!(
                "the sqlite writer cannot commit: {} commits in a row failed over {}ms (last: {})",
                s.consecutive_failures,
                failing_for.as_millis(),
                s.last_error
            ));
        }
        Ok(())
    }
}

/// The database file a `sqlite://PATH` or `sqlite:PATH` URL names, exactly as sqlx reads it
/// (percent-decoded), so the writer thread and sqlx's readers open the same file.
///
/// # Errors
/// A reason when the URL cannot hold acknowledged rows in one shared file: an in-memory
/// database (lost at restart, and never shared between the writer and the readers), or a
/// parameter that makes the file read-only, immutable or served by another VFS. Only `mode=rw`,
/// `mode=rwc` and `cache=…` are accepted.
///
/// Every check is made on the percent-decoded form, the one SQLite is given: sqlx decodes the
/// path (`%3F` becomes `?`) and opens it with `SQLITE_OPEN_URI`, so a decoded path that starts
/// with `file:` is a SQLite URI with parameters of its own (`sqlite://file:/p%3Fmode=memory`
/// is an in-memory database), and the query is read as form-encoded pairs.
pub fn database_file(url: &str) -> Result<std::path::PathBuf, String> {
    let opts = SqliteConnectOptions::from_str(url).map_err(|e| format!("not a SQLite URL: {e}"))?;
    let query = url.split_once('?').map_or("", |(_, q)| q);
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match (&*name, &*value) {
            ("mode", "rw" | "rwc") | ("cache", _) => {}
            ("mode", "memory") => return Err(IN_MEMORY.into()),
            (name, value) => {
                return Err(format!(
                    "the parameter {name}={value} is not supported: the store needs one writable file (accepted: mode=rw, mode=rwc, cache=…)"
                ));
            }
        }
    }
    let path = opts.get_filename();
    let decoded = path.to_string_lossy();
    if decoded == ":memory:" || decoded.starts_with("file:sqlx-in-memory-") {
        return Err(IN_MEMORY.into());
    }
    if decoded
        .get(..5)
        .is_some_and(|p| p.eq_ignore_ascii_case("file:"))
    {
        return Err(format!(
            "the path {decoded:?} is a SQLite URI (file:…), whose own parameters could make the database in-memory or read-only; name the file itself (sqlite://PATH, parameters after an unencoded ?)"
        ));
    }
    if path.as_os_str().is_empty() {
        return Err("the URL names no file (expected sqlite://PATH)".into());
    }
    Ok(path.to_path_buf())
}

const IN_MEMORY: &str = "an in-memory SQLite database would lose every acknowledged row at restart (expected sqlite://PATH)";

impl SqliteStore {
    /// Opens (creating the file and its folder), migrates, and starts the writer.
    pub async fn open(url: &str, settings: &StoreSettings) -> Result<Self, StoreError> {
        let file = database_file(url).map_err(StoreError::Unavailable)?;
        if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Unavailable(format!("invalid sqlite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(settings.acquire_timeout)
            .foreign_keys(true);
        let mut conn = SqliteConnection::connect_with(&opts).await?;
        // `run_direct`, not `run`: `run`'s `Acquire` bound is not general enough for the `Send`
        // check of callers that spawn this future.
        MIGRATOR
            .run_direct(&mut conn)
            .await
            .map_err(|e| StoreError::Unavailable(format!("migration failed: {e}")))?;
        conn.close().await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(settings.max_connections.max(1))
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(opts)
            .await?;
        let writer_conn = open_writer(&file, settings.acquire_timeout)?;
        let (tx, rx) = mpsc::channel(8192);
        let max_batch = settings.max_batch.max(1);
        let health = Arc::new(WriterHealth::default());
        let writer_health = Arc::clone(&health);
        let writer = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || write_loop(writer_conn, rx, max_batch, &writer_health))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the writer: {e}")))?;
        Ok(Self {
            tx,
            pool,
            writer: Arc::new(Mutex::new(Some(writer))),
            health,
        })
    }

    /// Queues the insert and waits for the commit that holds it.
    pub async fn insert(&self, new: NewEntity) -> Result<InsertOutcome, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Insert(Box::new(new), reply))
            .await
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("the writer stopped before committing".into()))?
    }

    /// One entity by id, stored by `caller` unless that is `None` (everything).
    pub async fn get(&self, id: Uuid, caller: Option<&str>) -> Result<Option<Entity>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM entities WHERE id = ?1 AND (?2 IS NULL OR caller = ?2)"
        ))
        .bind(id.to_string())
        .bind(caller)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| entity_from_row(&r)).transpose()
    }

    /// Up to `limit` entities after `after` stored by `caller` (any when `None`), oldest first.
    pub async fn list(
        &self,
        limit: u32,
        after: Option<Uuid>,
        caller: Option<&str>,
    ) -> Result<Vec<Entity>, StoreError> {
        let after = after.map(|u| u.to_string()).unwrap_or_default();
        // Two statements rather than `(? IS NULL OR caller = ?)`, so that SQLite's planner
        // uses the (caller, id) index for scoped pages.
        let sql = match caller {
            Some(_) => format!(
                "SELECT {COLUMNS} FROM entities WHERE caller = ? AND id > ? ORDER BY id LIMIT ?"
            ),
            None => format!("SELECT {COLUMNS} FROM entities WHERE id > ? ORDER BY id LIMIT ?"),
        };
        let mut query = sqlx::query(&sql);
        if let Some(caller) = caller {
            query = query.bind(caller);
        }
        let rows = query
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(entity_from_row).collect()
    }

    /// The database answers and the writer runs.
    pub async fn ping(&self) -> Result<(), StoreError> {
        if self.tx.is_closed() {
            return Err(StoreError::Unavailable("the writer has stopped".into()));
        }
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Whether the writer commits: `Err` after repeated commit failures (another process holds
    /// the write lock, the disk is full…), `Ok` again after its next successful commit. While
    /// unhealthy, each call also asks the writer for one probe commit (at most one queued), so
    /// it recovers even when no write arrives (an instance out of rotation gets none).
    pub fn writer_health(&self) -> Result<(), StoreError> {
        if self.tx.is_closed() {
            return Err(StoreError::Unavailable("the writer has stopped".into()));
        }
        let unhealthy = self.health.check();
        if unhealthy.is_err()
            && !self.health.probe_pending.swap(true, Ordering::AcqRel)
            && self.tx.try_send(Msg::Probe).is_err()
        {
            self.health.probe_pending.store(false, Ordering::Release);
        }
        unhealthy.map_err(StoreError::Unavailable)
    }

    /// Commits everything queued, stops the writer and closes the pool.
    pub async fn close(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Close(done)).await.is_ok() {
            let _ = wait.await;
        }
        if let Some(handle) = self.writer.lock().await.take() {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
        self.pool.close().await;
    }
}

/// The columns of an entity, in [`entity_from_row`]'s terms.
const COLUMNS: &str = "id, created_at, caller, on_behalf_of, body";

fn entity_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Entity, StoreError> {
    let id: String = row.try_get("id")?;
    let body: String = row.try_get("body")?;
    Ok(Entity {
        id: parse_id(&id)?,
        created_at: row.try_get("created_at")?,
        caller: row.try_get("caller")?,
        on_behalf_of: row.try_get("on_behalf_of")?,
        body: parse_body(body)?,
    })
}

/// The writer's connection: the same file and the same durability as the pool's
/// (WAL, `synchronous=FULL`, a busy timeout, foreign keys).
fn open_writer(
    path: &std::path::Path,
    busy_timeout: std::time::Duration,
) -> Result<rusqlite::Connection, StoreError> {
    let unavailable = |e: rusqlite::Error| StoreError::Unavailable(format!("sqlite writer: {e}"));
    let conn = rusqlite::Connection::open(path).map_err(unavailable)?;
    conn.busy_timeout(busy_timeout).map_err(unavailable)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
    )
    .map_err(unavailable)?;
    conn.set_prepared_statement_cache_capacity(8);
    Ok(conn)
}

fn write_loop(
    mut conn: rusqlite::Connection,
    mut rx: mpsc::Receiver<Msg>,
    max_batch: usize,
    health: &WriterHealth,
) {
    let mut batch: Vec<(NewEntity, Reply)> = Vec::with_capacity(max_batch);
    let mut closing = None;
    while closing.is_none() {
        let mut probe = false;
        match rx.blocking_recv() {
            Some(Msg::Insert(new, reply)) => batch.push((*new, reply)),
            Some(Msg::Probe) => probe = true,
            Some(Msg::Close(done)) => closing = Some(done),
            None => break,
        }
        while batch.len() < max_batch && closing.is_none() {
            match rx.try_recv() {
                Ok(Msg::Insert(new, reply)) => batch.push((*new, reply)),
                Ok(Msg::Probe) => probe = true,
                Ok(Msg::Close(done)) => closing = Some(done),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            // The batch's own commit says what a probe would.
            commit_batch(&mut conn, &mut batch, health);
        } else if probe {
            match probe_commit(&mut conn) {
                Ok(()) => health.record_success(),
                Err(e) => {
                    tracing::warn!(error = %e, "sqlite writer probe failed");
                    health.record_failure(&e);
                }
            }
        }
        if probe {
            health.probe_pending.store(false, Ordering::Release);
        }
    }
    rx.close();
    // Anything that raced the close still gets an answer (never a silent drop).
    while let Some(msg) = rx.blocking_recv() {
        if let Msg::Insert(_, reply) = msg {
            let _ = reply.send(Err(StoreError::Unavailable(
                "the store is shutting down".into(),
            )));
        }
    }
    if let Err((_, e)) = conn.close() {
        tracing::warn!(error = %e, "closing the sqlite writer connection failed");
    }
    if let Some(done) = closing {
        let _ = done.send(());
    }
}

/// The smallest durable commit: takes the write lock and rewrites the database header's
/// `user_version` (unused by the schema; its value unchanged), so the commit appends a frame to
/// the WAL and fsyncs it, as an insert's would: it fails while another process holds the
/// write lock or the disk is full, and succeeds once a batch would.
fn probe_commit(conn: &mut rusqlite::Connection) -> Result<(), rusqlite::Error> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    tx.execute_batch(&format!("PRAGMA user_version = {version}"))?;
    tx.commit()
}

#[tracing::instrument(level = "debug", skip_all, fields(batch = batch.len()))]
fn commit_batch(
    conn: &mut rusqlite::Connection,
    batch: &mut Vec<(NewEntity, Reply)>,
    health: &WriterHealth,
) {
    match run_batch(conn, batch) {
        Ok(outcomes) => {
            health.record_success();
            for ((new, reply), outcome) in batch.drain(..).zip(outcomes) {
                let outcome = outcome.unwrap_or(InsertOutcome::Created(new.entity));
                let _ = reply.send(Ok(outcome));
            }
        }
        Err(e) => {
            health.record_failure(&e);
            tracing::error!(error = %e, batch = batch.len(), "batch insert failed; nothing in it was committed");
            for (_, reply) in batch.drain(..) {
                let _ = reply.send(Err(StoreError::Unavailable(e.to_string())));
            }
        }
    }
}

/// One row; a row the unique index refuses is not inserted (and is looked up instead).
const INSERT: &str = "INSERT INTO entities \
     (id, created_at, caller, on_behalf_of, body, idem_scope, idem_user, idem_key, body_hash) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
     ON CONFLICT (idem_scope, idem_user, idem_key) WHERE idem_key IS NOT NULL DO NOTHING";

/// The row that holds a key, with its body hash.
const BY_KEY: &str = "SELECT id, created_at, caller, on_behalf_of, body, body_hash FROM entities \
     WHERE idem_scope = ?1 AND idem_user = ?2 AND idem_key = ?3";

/// One transaction for the whole batch, one prepared (cached) INSERT per row: SQLite is
/// called directly on this thread, so a statement costs no round trip. Rows the unique index
/// refused are looked up by key: replay or 422. Any error rolls the whole batch back.
/// `None` for a row inserted as it was sent (its entity is moved into the answer, not copied).
fn run_batch(
    conn: &mut rusqlite::Connection,
    batch: &[(NewEntity, Reply)],
) -> Result<Vec<Option<InsertOutcome>>, rusqlite::Error> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut outcomes = Vec::with_capacity(batch.len());
    {
        let mut insert = tx.prepare_cached(INSERT)?;
        let mut id = Uuid::encode_buffer();
        for (new, _) in batch {
            let e = &new.entity;
            let idem = new.idempotency.as_ref();
            let inserted = insert.execute(params![
                &*e.id.hyphenated().encode_lower(&mut id),
                e.created_at,
                e.caller,
                e.on_behalf_of,
                e.body.get(),
                idem.map(|k| k.scope.as_str()),
                idem.map_or("", |k| k.user.as_str()),
                idem.map(|k| k.key.as_str()),
                idem.map(|k| k.body_hash.as_str()),
            ])?;
            outcomes.push(if inserted == 1 {
                None
            } else {
                Some(existing(&tx, new)?)
            });
        }
    }
    tx.commit()?;
    Ok(outcomes)
}

/// The outcome for a row the unique index refused: the first entity (same body) or 422.
fn existing(
    conn: &rusqlite::Connection,
    new: &NewEntity,
) -> Result<InsertOutcome, rusqlite::Error> {
    let Some(k) = new.idempotency.as_ref() else {
        return Err(rusqlite::Error::QueryReturnedNoRows);
    };
    let mut stmt = conn.prepare_cached(BY_KEY)?;
    let row = stmt
        .query_row(params![k.scope, k.user, k.key], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, Option<String>>(5)?,
            ))
        })
        .optional()?;
    let Some((id, created_at, caller, on_behalf_of, body, hash)) = row else {
        return Err(rusqlite::Error::QueryReturnedNoRows);
    };
    if hash.as_deref() != Some(k.body_hash.as_str()) {
        return Ok(InsertOutcome::KeyReused);
    }
    let corrupt = |e: StoreError| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    };
    Ok(InsertOutcome::Replayed(Entity {
        id: parse_id(&id).map_err(corrupt)?,
        created_at,
        caller,
        on_behalf_of,
        body: parse_body(body).map_err(corrupt)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn writer_health_turns_after_repeated_failures_and_back_after_one_success() {
        let health = WriterHealth::default();
        let busy = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        );
        let t0 = Instant::now();
        assert!(health.check().is_ok());
        // One or two failures in a row: still healthy (no flapping on a moment's contention)...
        health.record_failure_at(&busy, t0);
        assert!(health.check().is_ok(), "one isolated failure, however old");
        health.record_failure_at(&busy, t0 + Duration::from_secs(1));
        assert!(health.check().is_ok());
        // ...unless the failures span UNHEALTHY_AFTER with no success between.
        health.record_success();
        health.record_failure_at(&busy, t0);
        health.record_failure_at(&busy, t0 + UNHEALTHY_AFTER);
        assert!(health.check().is_err());
        health.record_success();
        assert!(health.check().is_ok());
        for _ in 0..UNHEALTHY_AFTER_FAILURES {
            health.record_failure(&busy);
        }
        let reason = health.check().expect_err("unhealthy");
        assert!(reason.contains("3 commits in a row"), "{reason}");
        health.record_success();
        assert!(health.check().is_ok());
    }

    #[test]
    fn paths() {
        let ok = |url: &str| database_file(url).expect(url);
        assert_eq!(
            ok("sqlite://data/called.db"),
            PathBuf::from("data/called.db")
        );
        assert_eq!(
            ok("sqlite:///tmp/x.db?mode=rwc"),
            PathBuf::from("/tmp/x.db")
        );
        // Percent-decoded as sqlx does: the writer and the readers open one file.
        assert_eq!(
            ok("sqlite:///tmp/my%20db.db"),
            PathBuf::from("/tmp/my db.db")
        );
    }

    #[test]
    fn urls_that_cannot_hold_acknowledged_rows_are_refused() {
        for url in [
            "sqlite::memory:",
            "sqlite://data/x.db?mode=memory",
            "sqlite://data/x.db?mode=ro",
            "sqlite://data/x.db?immutable=true",
            "sqlite://data/x.db?vfs=unix-none",
            // Percent-encoded: SQLite is given the decoded form.
            "sqlite://file:/p%3Fmode=memory",
            "sqlite://file:data/x.db%3Fmode=ro",
            "sqlite://FILE:/p%3Fimmutable=1",
            "sqlite://%3Amemory%3A",
            "sqlite://data/x.db?mo%64e=memory",
            "sqlite://data/x.db?mode=%6Demory",
        ] {
            assert!(database_file(url).is_err(), "{url} accepted");
        }
    }
}
