//! PostgreSQL store (Cloud SQL), for deployments with many instances.
//!
//! A pool of connections, one short transaction per insert: PostgreSQL commits concurrent
//! transactions itself (and groups their WAL flushes), so no writer task is needed. The 201 is
//! only sent after `COMMIT` returned; `synchronous_commit` is left at its default (`on`), so a
//! returned `COMMIT` is on disk.
//!
//! Idempotency is the partial unique index on `(idem_scope, idem_user, idem_key)`: `INSERT … ON CONFLICT
//! DO NOTHING` waits for a concurrent insert of the same key (from any instance) and stores
//! nothing if it committed; the stored row is then read back and its body hash compared.
//!
//! Outages: idle connections are pinged before use (`test_before_acquire`), so connections
//! killed by a server restart or `pg_terminate_backend` are replaced without restarting the
//! service. Every operation is bounded by the acquire timeout plus the statement timeout;
//! failures map to [`StoreError::Unavailable`] (503 with `Retry-After`).

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, Row};
use uuid::Uuid;

use super::{
    Entity, InsertOutcome, NewEntity, StoreError, StoreSettings, parse_body, parse_id, redact_url,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// `application_name` reported to the server unless the URL sets one.
const APPLICATION_NAME: &str = "called";

/// Columns of an entity, rendered as the strings the SQLite backend stores, so that both
/// backends answer byte-for-byte alike (`created_at` as in `routes::now_rfc3339`).
const COLUMNS: &str = "id::text AS id, \
     to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS created_at, \
     caller, on_behalf_of, COALESCE(body_text, body::text) AS body";

/// Whether `url` names a PostgreSQL database.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Parses `DATABASE_URL` and applies the settings: statement timeout (as a startup option, so it
/// holds on every pooled connection) and a default `application_name`.
///
/// Errors never contain the URL (the caller adds the redacted form).
pub fn connect_options(
    url: &str,
    settings: &StoreSettings,
) -> Result<PgConnectOptions, StoreError> {
    let mut opts = PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::Unavailable(format!("invalid PostgreSQL URL: {e}")))?;
    if opts.get_application_name().is_none() {
        opts = opts.application_name(APPLICATION_NAME);
    }
    Ok(opts.options([(
        "statement_timeout",
        settings.statement_timeout.as_millis().to_string(),
    )]))
}

/// PostgreSQL backend (cheap to clone).
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    acquire_timeout: Duration,
    /// Upper bound on one whole operation (acquire, statements, commit).
    deadline: Duration,
}

impl PgStore {
    /// Connects, runs the migrations (under sqlx's advisory lock, so concurrent starts are safe)
    /// and builds the pool.
    pub async fn open(url: &str, settings: &StoreSettings) -> Result<Self, StoreError> {
        let mut opts = connect_options(url, settings)?;
        let mut conn = connect_with_retry(&opts, settings.acquire_timeout).await?;
        // Migrations (and waiting for another instance's) are not bounded by the per-request
        // statement timeout.
        sqlx::query("SET statement_timeout = 0")
            .execute(&mut conn)
            .await?;
        // `run_direct`, not `run`: `run`'s `Acquire` bound is not general enough for the `Send`
        // check of callers that spawn this future. It takes `pg_advisory_lock` first.
        let migrated = MIGRATOR
            .run_direct(&mut conn)
            .await
            .map_err(|e| StoreError::Unavailable(format!("migration failed: {e}")));
        let sync_commit = match migrated {
            Ok(()) => sqlx::query_scalar::<_, String>("SHOW synchronous_commit")
                .fetch_one(&mut conn)
                .await
                .map_err(StoreError::from),
            Err(e) => Err(e),
        };
        // Closing the session also releases the advisory lock if the migration failed.
        let _ = conn.close().await;
        if sync_commit? == "off" {
            // A 201 promises a committed, flushed row: never acknowledge from memory.
            tracing::warn!("synchronous_commit is off for this role/database; forcing it on");
            opts = opts.options([("synchronous_commit", "on")]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections.max(1))
            .min_connections(0)
            .acquire_timeout(settings.acquire_timeout)
            .test_before_acquire(true)
            .connect_lazy_with(opts);
        tracing::info!(
            url = %redact_url(url),
            max_connections = settings.max_connections,
            "PostgreSQL store ready"
        );
        Ok(Self {
            pool,
            acquire_timeout: settings.acquire_timeout,
            deadline: settings.acquire_timeout + settings.statement_timeout,
        })
    }

    /// Inserts in one transaction; returns only after `COMMIT` returned.
    pub async fn insert(&self, new: NewEntity) -> Result<InsertOutcome, StoreError> {
        if new.entity.body.get().contains('\0') {
            // text cannot hold a NUL byte (valid JSON text never has one; escaped it is fine).
            return Err(StoreError::Corrupt(
                "the body contains a NUL byte, which PostgreSQL text cannot store".into(),
            ));
        }
        self.bounded(insert_one(&self.pool, &new)).await
    }

    /// One entity by id, stored by `caller` unless that is `None` (everything).
    pub async fn get(&self, id: Uuid, caller: Option<&str>) -> Result<Option<Entity>, StoreError> {
        self.bounded(async {
            let row = sqlx::query(&format!(
                "SELECT {COLUMNS} FROM entities \
                 WHERE id = $1::uuid AND ($2::text IS NULL OR caller = $2)"
            ))
            .bind(id.to_string())
            .bind(caller)
            .fetch_optional(&self.pool)
            .await?;
            row.map(|r| entity_from_row(&r)).transpose()
        })
        .await
    }

    /// Up to `limit` entities after `after` stored by `caller` (any when `None`), oldest first.
    pub async fn list(
        &self,
        limit: u32,
        after: Option<Uuid>,
        caller: Option<&str>,
    ) -> Result<Vec<Entity>, StoreError> {
        // The nil UUID sorts before every UUIDv7.
        let after = after.unwrap_or_else(Uuid::nil).to_string();
        self.bounded(async {
            // Two statements rather than `($3 IS NULL OR caller = $3)`: a generic plan of the
            // latter could not use the (caller, id) index.
            let sql = match caller {
                Some(_) => format!(
                    "SELECT {COLUMNS} FROM entities \
                     WHERE caller = $1 AND id > $2::uuid ORDER BY id LIMIT $3"
                ),
                None => format!(
                    "SELECT {COLUMNS} FROM entities WHERE id > $1::uuid ORDER BY id LIMIT $2"
                ),
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
        })
        .await
    }

    /// `SELECT 1` on a pooled connection, within the acquire timeout.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match tokio::time::timeout(
            self.acquire_timeout,
            sqlx::query("SELECT 1").execute(&self.pool),
        )
        .await
        {
            Ok(result) => result.map(|_| ()).map_err(StoreError::from),
            Err(_) => Err(StoreError::Unavailable(
                "the database did not answer within the acquire timeout".into(),
            )),
        }
    }

    /// Closes every connection (nothing is queued: every insert commits before it returns).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn bounded<T>(
        &self,
        op: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.deadline, op)
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Unavailable(format!(
                    "the database did not answer within {} ms",
                    self.deadline.as_millis()
                )))
            })
    }
}

/// Connects once for the migrations, retrying I/O failures (a server or socket that is still
/// starting) until `timeout`; authentication or configuration errors fail at once.
async fn connect_with_retry(
    opts: &PgConnectOptions,
    timeout: Duration,
) -> Result<PgConnection, StoreError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut backoff = Duration::from_millis(50);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let err = match tokio::time::timeout(left, PgConnection::connect_with(opts)).await {
            Ok(Ok(conn)) => return Ok(conn),
            Ok(Err(e)) => e,
            Err(_) => {
                return Err(StoreError::Unavailable(format!(
                    "no connection within {} ms",
                    timeout.as_millis()
                )));
            }
        };
        let retry =
            matches!(err, sqlx::Error::Io(_)) && tokio::time::Instant::now() + backoff < deadline;
        if !retry {
            return Err(StoreError::Unavailable(format!("cannot connect: {err}")));
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

async fn insert_one(pool: &PgPool, new: &NewEntity) -> Result<InsertOutcome, StoreError> {
    let e = &new.entity;
    let idem = new.idempotency.as_ref();
    // READ COMMITTED whatever the server's default: the read-back below needs a fresh snapshot
    // to see a conflicting row committed by another transaction.
    let mut tx = pool
        .begin_with("BEGIN ISOLATION LEVEL READ COMMITTED")
        .await?;
    let inserted = sqlx::query(
        "INSERT INTO entities \
         (id, created_at, caller, on_behalf_of, body_text, idem_scope, idem_user, idem_key, body_hash) \
         VALUES ($1::uuid, $2::timestamptz, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (idem_scope, idem_user, idem_key) WHERE idem_key IS NOT NULL DO NOTHING",
    )
    .bind(e.id.to_string())
    .bind(&e.created_at)
    .bind(&e.caller)
    .bind(&e.on_behalf_of)
    .bind(e.body.get())
    .bind(idem.map(|k| k.scope.as_str()))
    .bind(idem.map_or("", |k| k.user.as_str()))
    .bind(idem.map(|k| k.key.as_str()))
    .bind(idem.map(|k| k.body_hash.as_str()))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 1 {
        tx.commit().await?;
        return Ok(InsertOutcome::Created(e.clone()));
    }
    let Some(k) = idem else {
        return Err(StoreError::Unavailable(
            "insert without idempotency key stored nothing".into(),
        ));
    };
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS}, body_hash FROM entities \
         WHERE idem_scope = $1 AND idem_user = $2 AND idem_key = $3"
    ))
    .bind(&k.scope)
    .bind(&k.user)
    .bind(&k.key)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    let Some(row) = row else {
        return Err(StoreError::Unavailable(
            "the row holding this idempotency key vanished".into(),
        ));
    };
    let hash: Option<String> = row.try_get("body_hash")?;
    if hash.as_deref() != Some(k.body_hash.as_str()) {
        return Ok(InsertOutcome::KeyReused);
    }
    Ok(InsertOutcome::Replayed(entity_from_row(&row)?))
}

fn entity_from_row(row: &PgRow) -> Result<Entity, StoreError> {
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn schemes() {
        assert!(is_postgres_url("postgres://u@h/db"));
        assert!(is_postgres_url("postgresql://u@h/db"));
        assert!(!is_postgres_url("sqlite://data/called.db"));
        assert!(!is_postgres_url("mysql://u@h/db"));
    }

    #[test]
    fn cloud_sql_socket_url() {
        let url = "postgres://user:pa%40ss@localhost/db?host=/cloudsql/PROJECT:REGION:INSTANCE";
        let opts = connect_options(url, &StoreSettings::default()).expect("parses");
        assert_eq!(
            opts.get_socket().map(|p| p.as_path()),
            Some(Path::new("/cloudsql/PROJECT:REGION:INSTANCE"))
        );
        assert_eq!(opts.get_port(), 5432, "socket file is .s.PGSQL.5432");
        assert_eq!(opts.get_username(), "user");
        assert_eq!(opts.get_database(), Some("db"));
        assert_eq!(opts.get_application_name(), Some("called"));
        assert_eq!(opts.get_options(), Some("-c statement_timeout=5000"));
        assert_eq!(
            redact_url(url),
            "postgres://user:***@localhost/db?host=/cloudsql/PROJECT:REGION:INSTANCE"
        );
    }

    #[test]
    fn url_options_are_kept_and_extended() {
        let settings = StoreSettings {
            statement_timeout: Duration::from_millis(1234),
            ..StoreSettings::default()
        };
        let opts = connect_options(
            "postgresql://u@127.0.0.1:6543/test?options=-c%20search_path%3Dt_1&application_name=mine",
            &settings,
        )
        .expect("parses");
        assert_eq!(opts.get_host(), "127.0.0.1");
        assert_eq!(opts.get_port(), 6543);
        assert_eq!(opts.get_socket(), None);
        assert_eq!(opts.get_application_name(), Some("mine"));
        assert_eq!(
            opts.get_options(),
            Some("-c search_path=t_1 -c statement_timeout=1234")
        );
    }

    #[test]
    fn parse_errors_do_not_leak_the_password() {
        let err = connect_options("postgres://u:hunter2@host:notaport/db", &Default::default())
            .expect_err("invalid");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}
