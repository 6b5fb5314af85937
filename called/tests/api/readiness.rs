//! `called`'s readiness under a burst of anonymous probes: one store ping per interval, not one
//! per probe (the caller's side is in `caller/tests/api/outbound.rs`).

use shared::config::MapSource;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_anonymous_probes_of_called_cost_one_store_ping() {
    shared::telemetry::init_for_tests();
    let dir = tempfile::tempdir().expect("tempdir");
    let src = MapSource::from_pairs([("AUTH_MODE", "off")]).with(
        "DATABASE_URL",
        format!("sqlite://{}/called.db", dir.path().display()),
    );
    let cfg = called::Config::from_source(&src).expect("called config");
    let app = called::build(&cfg, reqwest::Client::new())
        .await
        .expect("build");
    let readiness = app.readiness.clone();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/health/ready", l.local_addr().expect("addr"));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(shared::server::serve(
        l,
        app.router,
        async {
            let _ = rx.await;
        },
        cfg.server.shutdown_grace,
        cfg.server.header_read_timeout,
    ));
    let elapsed = testkit::checks::probe_burst(&url, 100).await;
    // Checks are serialized and each result is served for about a second, so a burst lasting
    // `elapsed` costs at most one check per started second — not one per probe.
    let bound = 1 + elapsed.as_secs();
    let checks = readiness.checks();
    eprintln!("100 probes in {elapsed:?} cost {checks} store checks");
    assert!(
        (1..=bound).contains(&checks),
        "100 probes in {elapsed:?} cost {checks} store checks (at most {bound})"
    );
    let _ = tx.send(());
    let _ = server.await;
    app.store.close().await;
}
