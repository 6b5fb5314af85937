//! Upgrading a database written by the previous release (schema `0001` only): its rows stay
//! readable (with `on_behalf_of` null), its idempotency keys still replay, new rows carry the
//! end user.

use called::store::{InsertOutcome, ReadScope, Store, StoreSettings};
use serde_json::json;
use sqlx::Connection;
use sqlx::migrate::Migrator;

use crate::backend_tests;
use crate::helpers::{Backend, fresh_store, new_entity_at};

backend_tests!(a_database_from_the_previous_release_keeps_its_rows_and_keys);

const CALLER: &str = "old@p.iam.gserviceaccount.com";

/// The previous release's migrations: exactly the files it shipped (`0001_*`), applied with
/// sqlx's migrator so `_sqlx_migrations` holds what that release recorded.
fn previous_release(backend: Backend) -> (tempfile::TempDir, std::path::PathBuf) {
    let sub = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(sub);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = "0001_entities.sql";
    std::fs::copy(src.join(file), dir.path().join(file)).expect("copy 0001");
    let path = dir.path().to_owned();
    (dir, path)
}

/// Rows as the previous release's code inserted them: `(id, caller, body, key, hash)`.
const OLD_INSERT: &str =
    "INSERT INTO entities (id, created_at, caller, body, idem_scope, idem_key, body_hash) ";

async fn a_database_from_the_previous_release_keeps_its_rows_and_keys(backend: Backend) {
    let (url, _scratch) = fresh_store(backend).await;
    let (_old_dir, old_migrations) = previous_release(backend);
    let migrator = Migrator::new(old_migrations.as_path())
        .await
        .expect("old migrations");
    let old_body = json!({"bar": "written by the old release", "n": 1});
    let hash = called::idempotency::body_hash(
        &serde_json::value::RawValue::from_string(old_body.to_string()).expect("json"),
    );
    let (keyed, plain) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    // The old schema and the two old rows, over a connection `$c` of either backend, with that
    // backend's placeholders `$values`.
    macro_rules! write_old_rows {
        ($c:expr, $values:expr) => {{
            let mut c = $c;
            migrator.run(&mut c).await.expect("old schema");
            for (id, key) in [(keyed, Some("old-key")), (plain, None)] {
                sqlx::query(&format!("{OLD_INSERT} VALUES {}", $values))
                    .bind(id.to_string())
                    .bind("2025-01-02T03:04:05.123456Z")
                    .bind(CALLER)
                    .bind(old_body.to_string())
                    .bind(key.map(|_| CALLER))
                    .bind(key)
                    .bind(key.map(|_| hash.clone()))
                    .execute(&mut c)
                    .await
                    .expect("old insert");
            }
            c.close().await.expect("close");
        }};
    }
    match backend {
        Backend::Sqlite => {
            let path = url.strip_prefix("sqlite://").expect("sqlite url");
            std::fs::create_dir_all(std::path::Path::new(path).parent().expect("dir"))
                .expect("mkdir");
            let c = sqlx::SqliteConnection::connect(&format!("{url}?mode=rwc"))
                .await
                .expect("connect");
            write_old_rows!(c, "(?, ?, ?, ?, ?, ?, ?)");
        }
        Backend::Postgres => {
            let c = sqlx::PgConnection::connect(&url).await.expect("connect");
            write_old_rows!(c, "($1::uuid, $2::timestamptz, $3, $4::jsonb, $5, $6, $7)");
        }
    }

    // This release opens it: migrations 0002+ run on the existing rows.
    let store = Store::open(&url, &StoreSettings::default())
        .await
        .expect("open upgraded");
    let scope = ReadScope::StoredBy(CALLER.into());
    for id in [keyed, plain] {
        let e = store
            .get(id, &scope)
            .await
            .expect("get")
            .expect("old row readable");
        assert_eq!(e.caller.as_deref(), Some(CALLER));
        assert_eq!(e.on_behalf_of, None);
        let body: serde_json::Value = serde_json::from_str(e.body.get()).expect("json");
        assert_eq!(body, old_body);
        assert_eq!(e.created_at, "2025-01-02T03:04:05.123456Z");
    }
    // The old key still belongs to (principal, no end user): same body replays, another is 422.
    let again = |body: serde_json::Value, user: Option<&str>| {
        new_entity_at("2026-01-01T00:00:00.000000Z", CALLER, user, "old-key", body)
    };
    match store
        .insert(again(old_body.clone(), None))
        .await
        .expect("replay")
    {
        InsertOutcome::Replayed(e) => assert_eq!(e.id, keyed),
        other => panic!("the old key must replay: {other:?}"),
    }
    assert_eq!(
        store
            .insert(again(json!({"bar": "other"}), None))
            .await
            .expect("422"),
        InsertOutcome::KeyReused
    );
    // New rows carry the end user, also under the old key (another user's key space).
    let new = match store
        .insert(again(old_body.clone(), Some("user@example.com")))
        .await
        .expect("insert")
    {
        InsertOutcome::Created(e) => e,
        other => panic!("a new user's key is new: {other:?}"),
    };
    let back = store
        .get(new.id, &scope)
        .await
        .expect("get")
        .expect("new row");
    assert_eq!(back.on_behalf_of.as_deref(), Some("user@example.com"));
    let page = store
        .list(&called::store::PageQuery {
            limit: 10,
            after: None,
            scope,
            max_bytes: 1 << 20,
        })
        .await
        .expect("list");
    let ids: Vec<_> = page.items.iter().map(|e| e.id).collect();
    assert_eq!(ids, vec![keyed, plain, new.id]);
    store.close().await;
}
