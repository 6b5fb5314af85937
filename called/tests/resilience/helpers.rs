//! What only this suite needs from the kit's pieces: the real `called` binary as a child, and
//! reading its SQLite file afterwards.

use sqlx::Connection;
use testkit::child::{Proc, Spec};
use testkit::emu::Emu;

/// The real `called` binary without authentication on `database_url`.
pub fn called_open(database_url: &str) -> Spec {
    Spec::new(
        env!("CARGO_BIN_EXE_called"),
        &[("AUTH_MODE", "off"), ("DATABASE_URL", database_url)],
    )
}

/// [`called_open`] on SQLite in a new folder, with `settings` on top, started on a port of its
/// own: the process and the folder (keep it as long as the process).
pub async fn start_open(settings: &[(&str, &str)]) -> (Proc, tempfile::TempDir) {
    let (database_url, dir) = testkit::in_process::sqlite_store();
    let mut spec = called_open(&database_url);
    for (name, value) in settings {
        spec = spec.with(name, *value);
    }
    (Proc::start_anywhere(&spec).await, dir)
}

/// The real `called` binary verifying tokens against the emulator, allowing only its service
/// account, for the audience `http://127.0.0.1:{port}`.
pub fn called_verifying(emu: &Emu, port: u16, database_url: &str) -> Spec {
    Spec::new(
        env!("CARGO_BIN_EXE_called"),
        &[("DATABASE_URL", database_url)],
    )
    .with_all(&testkit::wiring::called_verifying(
        &format!("http://127.0.0.1:{port}"),
        &emu.sa(),
        emu.addr,
    ))
}

/// `(id, idem_key)` of every row, read with a separate connection.
pub async fn rows(database_url: &str) -> Vec<(String, Option<String>)> {
    let mut c = sqlx::SqliteConnection::connect(database_url)
        .await
        .expect("open the SQLite file");
    sqlx::query_as("SELECT id, idem_key FROM entities ORDER BY id")
        .fetch_all(&mut c)
        .await
        .expect("select")
}

/// Idempotency keys that own more than one row.
pub async fn duplicated_keys(database_url: &str) -> Vec<(String, i64)> {
    let mut c = sqlx::SqliteConnection::connect(database_url)
        .await
        .expect("open the SQLite file");
    sqlx::query_as(
        "SELECT idem_key, COUNT(*) FROM entities WHERE idem_key IS NOT NULL \
         GROUP BY idem_scope, idem_key HAVING COUNT(*) > 1",
    )
    .fetch_all(&mut c)
    .await
    .expect("group by")
}
