//! Durable storage of entities, behind one small interface with a backend per database.
//!
//! The store never knows HTTP. Idempotency is enforced by the database's unique index on
//! `(idem_scope, idem_user, idem_key)` — principal, end user, key — so it holds across
//! instances and restarts. Reads are scoped by [`ReadScope`]; pages are bounded by count and
//! by bytes ([`PageQuery`]) and fetched in bounded batches.

mod postgres;
mod sqlite;

use serde::Serialize;
use serde_json::value::RawValue;
use uuid::Uuid;

pub use postgres::{PgStore, connect_options as pg_connect_options, is_postgres_url};
pub use sqlite::{SqliteStore, database_file as sqlite_database_file};

/// A stored entity, as returned to clients.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Entity {
    /// UUIDv7: sortable by creation time.
    pub id: Uuid,
    /// RFC 3339 UTC timestamp of the insert.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// The verified principal that sent it, `null` with `AUTH_MODE=off`.
    pub caller: Option<String>,
    /// The verified end user the principal acted for (a forwarded identity), else `null`.
    pub on_behalf_of: Option<String>,
    /// The whole JSON object exactly as received (every number with all its digits, keys in
    /// their order), without insignificant whitespace.
    #[schema(value_type = Object)]
    pub body: Box<RawValue>,
}

impl PartialEq for Entity {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.created_at == other.created_at
            && self.caller == other.caller
            && self.on_behalf_of == other.on_behalf_of
            && self.body.get() == other.body.get()
    }
}

/// The idempotency record attached to an insert.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    /// Principal the key belongs to (`""` when anonymous).
    pub scope: String,
    /// End user the key belongs to, within the principal (`""` when none).
    pub user: String,
    /// The client's `Idempotency-Key`.
    pub key: String,
    /// Hex SHA-256 of the canonical body (`idempotency::body_hash`).
    pub body_hash: String,
}

/// What to insert.
#[derive(Debug, Clone)]
pub struct NewEntity {
    /// The entity itself.
    pub entity: Entity,
    /// Present when the request carried an `Idempotency-Key`.
    pub idempotency: Option<IdempotencyKey>,
}

/// Outcome of an insert.
#[derive(Debug, Clone, PartialEq)]
pub enum InsertOutcome {
    /// Stored and committed.
    Created(Entity),
    /// The key was used before with the same body: the first entity, nothing new stored.
    Replayed(Entity),
    /// The key was used before with a different body.
    KeyReused,
}

/// Which entities a reader may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadScope {
    /// Every entity (`AUTH_MODE=off`, or a principal in `READ_ALL_PRINCIPALS`).
    All,
    /// Only those whose `caller` is this principal's email.
    StoredBy(String),
}

impl ReadScope {
    /// The `caller` to filter on, `None` for [`ReadScope::All`].
    fn caller(&self) -> Option<&str> {
        match self {
            Self::All => None,
            Self::StoredBy(c) => Some(c),
        }
    }
}

/// One `GET /entities` request.
#[derive(Debug, Clone)]
pub struct PageQuery {
    /// Most entities in the page (1–1000).
    pub limit: u32,
    /// Only entities with a greater id.
    pub after: Option<Uuid>,
    /// Whose entities.
    pub scope: ReadScope,
    /// The page ends before its entities' JSON would pass this many bytes (it always holds at
    /// least one entity, however large).
    pub max_bytes: usize,
}

/// Rows fetched by the first query of a page; later batches are sized from the largest row
/// seen so far so that one batch never holds much more than what is left of the byte budget.
const FIRST_BATCH: u32 = 16;
/// Most rows fetched by one query of a page.
const MAX_BATCH: u32 = 256;

/// A page of entities, oldest first.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Page {
    /// The entities.
    pub items: Vec<Entity>,
    /// Id to pass as `after` for the next page, `null` on the last page.
    pub next: Option<Uuid>,
}

/// Store failures. None of them carries driver text to clients.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or is overloaded right now (503 with Retry-After).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Stored data could not be read back (500).
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::Decode(_)
            | sqlx::Error::ColumnNotFound(_) => Self::Corrupt(e.to_string()),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

/// The configured backend. An enum rather than a trait object: two backends, static dispatch.
#[derive(Clone)]
pub enum Store {
    /// Embedded SQLite (default).
    Sqlite(SqliteStore),
    /// PostgreSQL (Cloud SQL): many instances, one database.
    Postgres(PgStore),
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(_) => f.write_str("Store::Sqlite"),
            Self::Postgres(_) => f.write_str("Store::Postgres"),
        }
    }
}

impl Store {
    /// Opens the store named by `DATABASE_URL` and runs its migrations.
    pub async fn open(url: &str, settings: &StoreSettings) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            return Ok(Self::Sqlite(SqliteStore::open(url, settings).await?));
        }
        if is_postgres_url(url) {
            return Ok(Self::Postgres(PgStore::open(url, settings).await?));
        }
        Err(StoreError::Unavailable(format!(
            "unsupported DATABASE_URL scheme in {}",
            redact_url(url)
        )))
    }

    /// Inserts durably: returns only after the commit that holds the row.
    ///
    /// With tracing on, inside a `store_write` span (for SQLite: the wait for the writer
    /// thread's commit).
    pub async fn insert(&self, new: NewEntity) -> Result<InsertOutcome, StoreError> {
        use tracing::Instrument;
        match self {
            Self::Sqlite(s) => {
                let span = shared::trace_span!("store_write", db.system = "sqlite");
                s.insert(new).instrument(span).await
            }
            Self::Postgres(s) => {
                let span = shared::trace_span!("store_write", db.system = "postgresql");
                s.insert(new).instrument(span).await
            }
        }
    }

    /// One entity by id, if it exists and `scope` may see it (else `None`: a reader learns
    /// nothing about entities it may not see).
    pub async fn get(&self, id: Uuid, scope: &ReadScope) -> Result<Option<Entity>, StoreError> {
        match self {
            Self::Sqlite(s) => s.get(id, scope.caller()).await,
            Self::Postgres(s) => s.get(id, scope.caller()).await,
        }
    }

    /// Up to `limit` entities `scope` may see with id greater than `after`, oldest first.
    async fn batch(
        &self,
        limit: u32,
        after: Option<Uuid>,
        scope: &ReadScope,
    ) -> Result<Vec<Entity>, StoreError> {
        match self {
            Self::Sqlite(s) => s.list(limit, after, scope.caller()).await,
            Self::Postgres(s) => s.list(limit, after, scope.caller()).await,
        }
    }

    /// A page: at most `limit` entities, ending before their JSON passes `max_bytes` (but at
    /// least one), oldest first; `next` is the last one's id when more follow.
    ///
    /// Rows are fetched in bounded batches, so memory stays about `max_bytes` plus one batch
    /// whatever `limit` is and however large the entities are.
    pub async fn list(&self, q: &PageQuery) -> Result<Page, StoreError> {
        let limit = q.limit.max(1) as usize;
        let mut items: Vec<Entity> = Vec::new();
        let mut bytes = 0usize;
        let mut largest = 0usize;
        let mut after = q.after;
        let mut want = FIRST_BATCH.min(q.limit.saturating_add(1));
        loop {
            let rows = self.batch(want, after, &q.scope).await?;
            let exhausted = rows.len() < want as usize;
            for entity in rows {
                let size = json_len(&entity);
                if items.len() == limit || (!items.is_empty() && bytes + size > q.max_bytes) {
                    // A row exists past this page: it continues after the last one kept.
                    let next = items.last().map(|e| e.id);
                    return Ok(Page { items, next });
                }
                bytes += size;
                largest = largest.max(size);
                after = Some(entity.id);
                items.push(entity);
            }
            if exhausted {
                return Ok(Page { items, next: None });
            }
            // One more than fits, by count and by bytes, so the next batch can end the page.
            let by_count = limit - items.len() + 1;
            let by_bytes = q.max_bytes.saturating_sub(bytes) / largest.max(1) + 1;
            want = u32::try_from(by_count.min(by_bytes))
                .unwrap_or(MAX_BATCH)
                .clamp(1, MAX_BATCH);
        }
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.ping().await,
            Self::Postgres(s) => s.ping().await,
        }
    }

    /// Whether writes commit. SQLite: `Err` once its writer thread's commits keep failing
    /// (another process holds the write lock, the disk is full; see
    /// [`SqliteStore::writer_health`]), `Ok` again after one commit. PostgreSQL: every request
    /// commits on its own connection, so [`Store::ping`] already says it.
    pub fn writes_commit(&self) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.writer_health(),
            Self::Postgres(_) => Ok(()),
        }
    }

    /// Flushes pending writes and closes connections.
    pub async fn close(&self) {
        match self {
            Self::Sqlite(s) => s.close().await,
            Self::Postgres(s) => s.close().await,
        }
    }
}

/// Tuning shared by the backends.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// Upper bound on pooled connections (SQLite: readers; PostgreSQL: all connections).
    pub max_connections: u32,
    /// How long to wait for a connection or a lock before answering 503.
    pub acquire_timeout: std::time::Duration,
    /// Server-side limit on one statement (PostgreSQL `statement_timeout`).
    pub statement_timeout: std::time::Duration,
    /// Most inserts committed in one transaction (SQLite group commit).
    pub max_batch: usize,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            max_connections: 4,
            acquire_timeout: std::time::Duration::from_secs(5),
            statement_timeout: std::time::Duration::from_secs(5),
            max_batch: 256,
        }
    }
}

/// `scheme://user:***@host/...`: the URL with any password replaced, for logs and errors.
///
/// Covers the userinfo password and query parameters such as `password=` / `sslpassword=`
/// (which sqlx accepts). A URL that does not parse as `scheme://host…` keeps only what follows
/// its last `@`, without its query.
pub fn redact_url(url: &str) -> String {
    let secret = |k: &str| {
        let k = k.to_ascii_lowercase();
        k.contains("pass") || k.contains("secret") || k.contains("token")
    };
    if let Ok(mut u) = url::Url::parse(url)
        && u.has_host()
    {
        if u.password().is_some() {
            let _ = u.set_password(Some("***"));
        }
        if u.query_pairs().any(|(k, _)| secret(&k)) {
            let pairs: Vec<(String, String)> = u
                .query_pairs()
                .map(|(k, v)| {
                    let v = if secret(&k) {
                        "***".into()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            u.query_pairs_mut().clear().extend_pairs(pairs);
        }
        return u.to_string();
    }
    let rest = url.rsplit_once('@').map_or(url, |(_, rest)| rest);
    let (base, query) = rest
        .split_once('?')
        .map_or((rest, false), |(b, _)| (b, true));
    let prefix = if rest.len() < url.len() { "***@" } else { "" };
    let suffix = if query { "?***" } else { "" };
    format!("{prefix}{base}{suffix}")
}

/// Length of `entity` as JSON, without building the text.
fn json_len(entity: &Entity) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut n = Count(0);
    let _ = serde_json::to_writer(&mut n, entity);
    n.0
}

fn parse_id(s: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(s).map_err(|e| StoreError::Corrupt(format!("bad id {s:?}: {e}")))
}

fn parse_body(s: String) -> Result<Box<RawValue>, StoreError> {
    RawValue::from_string(s).map_err(|e| StoreError::Corrupt(format!("bad body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:secret@localhost/db?host=/cloudsql/p:r:i"),
            "postgres://u:***@localhost/db?host=/cloudsql/p:r:i"
        );
        assert_eq!(
            redact_url("sqlite://data/called.db"),
            "sqlite://data/called.db"
        );
        assert!(!redact_url("garbage:secret@x y").contains("secret"));
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1:5432/test"),
            "postgres://postgres@127.0.0.1:5432/test",
            "no password: the user stays visible"
        );
        let q =
            redact_url("postgresql://u@h/db?password=hunter2&sslpassword=pw2&application_name=a");
        assert!(!q.contains("hunter2") && !q.contains("pw2") && q.contains("application_name=a"));
        for unparseable in [
            "postgres://u:hunter2@h:notaport/db",
            "postgres://h:notaport/db?password=hunter2",
        ] {
            let r = redact_url(unparseable);
            assert!(!r.contains("hunter2"), "{r}");
            assert!(r.contains("h:notaport/db"), "{r}");
        }
        assert_eq!(redact_url("sqlite::memory:"), "sqlite::memory:");
    }
}
