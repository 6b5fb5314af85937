//! Embedded SQLite store with group commit.
//!
//! One writer task owns the only writing connection. Inserts queue to it; it takes everything
//! queued (up to `max_batch`), runs the inserts in one transaction and commits once
//! (WAL, `synchronous=FULL`: the commit is on disk when it returns), then answers each request.
//! A 201 is therefore only ever sent for a row in a committed, fsynced transaction, while
//! concurrent requests share one fsync. Reads use a separate pool (WAL readers never block the
//! writer).

use std::str::FromStr;
use std::sync::Arc;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, Row, SqliteConnection, SqlitePool};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::{Entity, InsertOutcome, NewEntity, StoreError, StoreSettings, parse_body, parse_id};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

type Reply = oneshot::Sender<Result<InsertOutcome, StoreError>>;

enum Msg {
    Insert(Box<NewEntity>, Reply),
    Close(oneshot::Sender<()>),
}

/// SQLite backend (cheap to clone).
#[derive(Clone)]
pub struct SqliteStore {
    tx: mpsc::Sender<Msg>,
    pool: SqlitePool,
    writer: Arc<Mutex<Option<JoinHandle<()>>>>,
}

/// The file path inside a `sqlite://PATH` or `sqlite:PATH` URL.
fn file_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then_some(path)
}

impl SqliteStore {
    /// Opens (creating the file and its folder), migrates, and starts the writer.
    pub async fn open(url: &str, settings: &StoreSettings) -> Result<Self, StoreError> {
        if let Some(parent) = file_path(url)
            .and_then(|p| std::path::Path::new(p).parent())
            .filter(|p| !p.as_os_str().is_empty())
        {
            {
                std::fs::create_dir_all(parent).map_err(|e| {
                    StoreError::Unavailable(format!("cannot create {}: {e}", parent.display()))
                })?;
            }
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
        let pool = SqlitePoolOptions::new()
            .max_connections(settings.max_connections.max(1))
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(opts)
            .await?;
        let (tx, rx) = mpsc::channel(8192);
        let max_batch = settings.max_batch.max(1);
        let writer = tokio::spawn(write_loop(conn, rx, max_batch));
        Ok(Self {
            tx,
            pool,
            writer: Arc::new(Mutex::new(Some(writer))),
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

    /// Commits everything queued, stops the writer and closes the pool.
    pub async fn close(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Close(done)).await.is_ok() {
            let _ = wait.await;
        }
        if let Some(handle) = self.writer.lock().await.take() {
            let _ = handle.await;
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

async fn write_loop(mut conn: SqliteConnection, mut rx: mpsc::Receiver<Msg>, max_batch: usize) {
    let mut batch: Vec<(NewEntity, Reply)> = Vec::with_capacity(max_batch);
    let mut closing = None;
    while closing.is_none() {
        match rx.recv().await {
            Some(Msg::Insert(new, reply)) => batch.push((*new, reply)),
            Some(Msg::Close(done)) => closing = Some(done),
            None => break,
        }
        while batch.len() < max_batch && closing.is_none() {
            match rx.try_recv() {
                Ok(Msg::Insert(new, reply)) => batch.push((*new, reply)),
                Ok(Msg::Close(done)) => closing = Some(done),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            commit_batch(&mut conn, &mut batch).await;
        }
    }
    rx.close();
    // Anything that raced the close still gets an answer (never a silent drop).
    while let Some(msg) = rx.recv().await {
        if let Msg::Insert(_, reply) = msg {
            let _ = reply.send(Err(StoreError::Unavailable(
                "the store is shutting down".into(),
            )));
        }
    }
    let _ = conn.close().await;
    if let Some(done) = closing {
        let _ = done.send(());
    }
}

#[tracing::instrument(skip_all, fields(batch = batch.len()))]
async fn commit_batch(conn: &mut SqliteConnection, batch: &mut Vec<(NewEntity, Reply)>) {
    match run_batch(conn, batch).await {
        Ok(outcomes) => {
            for ((_, reply), outcome) in batch.drain(..).zip(outcomes) {
                let _ = reply.send(Ok(outcome));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "batch insert failed; nothing in it was committed");
            for (_, reply) in batch.drain(..) {
                let _ = reply.send(Err(StoreError::Unavailable(e.to_string())));
            }
        }
    }
}

/// Rows per multi-row INSERT (9 parameters each, far below SQLite's 32 766 limit).
const CHUNK: usize = 128;

/// One transaction for the whole batch; one multi-row `INSERT … RETURNING id` per chunk (each
/// statement is a round trip to sqlx's SQLite worker thread, so fewer statements means fewer
/// thread wake-ups). Rows the unique index refused are looked up by key: replay or 422.
async fn run_batch(
    conn: &mut SqliteConnection,
    batch: &[(NewEntity, Reply)],
) -> Result<Vec<InsertOutcome>, sqlx::Error> {
    let mut tx = conn.begin().await?;
    let mut outcomes = Vec::with_capacity(batch.len());
    for chunk in batch.chunks(CHUNK) {
        let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO entities \
             (id, created_at, caller, on_behalf_of, body, idem_scope, idem_user, idem_key, body_hash) ",
        );
        insert.push_values(chunk, |mut row, (new, _)| {
            let e = &new.entity;
            let idem = new.idempotency.as_ref();
            row.push_bind(e.id.to_string())
                .push_bind(e.created_at.clone())
                .push_bind(e.caller.clone())
                .push_bind(e.on_behalf_of.clone())
                .push_bind(e.body.get().to_owned())
                .push_bind(idem.map(|k| k.scope.clone()))
                .push_bind(idem.map_or_else(String::new, |k| k.user.clone()))
                .push_bind(idem.map(|k| k.key.clone()))
                .push_bind(idem.map(|k| k.body_hash.clone()));
        });
        insert.push(
            " ON CONFLICT (idem_scope, idem_user, idem_key) WHERE idem_key IS NOT NULL \
             DO NOTHING RETURNING id",
        );
        let rows = insert.build().fetch_all(&mut *tx).await?;
        let mut inserted = std::collections::HashSet::with_capacity(rows.len());
        for r in &rows {
            inserted.insert(r.try_get::<String, _>("id")?);
        }
        for (new, _) in chunk {
            if inserted.contains(&new.entity.id.to_string()) {
                outcomes.push(InsertOutcome::Created(new.entity.clone()));
            } else {
                outcomes.push(existing(&mut tx, new).await?);
            }
        }
    }
    tx.commit().await?;
    Ok(outcomes)
}

/// The outcome for a row the unique index refused: the first entity (same body) or 422.
async fn existing(
    conn: &mut SqliteConnection,
    new: &NewEntity,
) -> Result<InsertOutcome, sqlx::Error> {
    let Some(k) = new.idempotency.as_ref() else {
        return Err(sqlx::Error::Protocol(
            "insert without idempotency key stored nothing".into(),
        ));
    };
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS}, body_hash FROM entities \
         WHERE idem_scope = ? AND idem_user = ? AND idem_key = ?"
    ))
    .bind(&k.scope)
    .bind(&k.user)
    .bind(&k.key)
    .fetch_one(&mut *conn)
    .await?;
    let hash: Option<String> = row.try_get("body_hash")?;
    if hash.as_deref() != Some(k.body_hash.as_str()) {
        return Ok(InsertOutcome::KeyReused);
    }
    match entity_from_row(&row) {
        Ok(first) => Ok(InsertOutcome::Replayed(first)),
        Err(err) => Err(sqlx::Error::Protocol(err.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::file_path;

    #[test]
    fn paths() {
        assert_eq!(file_path("sqlite://data/called.db"), Some("data/called.db"));
        assert_eq!(file_path("sqlite:///tmp/x.db?mode=rwc"), Some("/tmp/x.db"));
        assert_eq!(file_path("sqlite::memory:"), None);
    }
}
