//! Issue 11 — on whose behalf, and who may see what. Attacks:
//!
//! - an end user squats another's `Idempotency-Key` (gets 422, or the other's entity replayed);
//! - a principal reads or lists entities another principal stored.
//!
//! Principals are real emulator-minted tokens verified by `called` (`AUTH_MODE=verify`).
//! End users are driven both at the store and through the route, as forwarded identities
//! (`X-Forwarded-Authorization` from a trusted forwarder).

use std::time::Duration;

use called::store::{Entity, InsertOutcome, NewEntity, PageQuery, ReadScope, Store, StoreSettings};
use emulator::Emulator;
use reqwest::Response;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{
    Backend, TestApp, fresh_store, ids_and_next, new_entity_at, page_path, spawn_with,
};
use testkit::checks::assert_problem;
use testkit::emu::Emu;

backend_tests!(
    end_users_sharing_a_key_never_get_each_others_entity,
    principals_sharing_a_key_never_get_each_others_entity,
    a_principal_cannot_read_another_principals_entity,
    a_principal_cannot_list_another_principals_entities,
    read_all_principals_read_everything,
    scoped_pages_stay_complete_and_in_order,
);

const AUD: &str = "https://called.test";
const A: &str = "alice-svc@p.iam.gserviceaccount.com";
const B: &str = "bob-svc@p.iam.gserviceaccount.com";
const OPS: &str = "ops@p.iam.gserviceaccount.com";

/// `called` with full token verification against an in-process emulator; `A`, `B` and `OPS`
/// allowed, `OPS` in `READ_ALL_PRINCIPALS`.
struct AuthApp {
    app: TestApp,
    emu: Emulator,
}

impl AuthApp {
    async fn start(backend: Backend) -> Self {
        let Emu {
            emulator: emu,
            addr,
        } = Emu::start().await;
        let app = spawn_with(backend, |s| {
            s.with("AUTH_MODE", "verify")
                .with("AUTH_AUDIENCES", AUD)
                .with("AUTH_ALLOWED_PRINCIPALS", format!("{A},{B},{OPS}"))
                .with("AUTH_JWKS_URL", format!("http://{addr}/oauth2/v3/certs"))
                .with("READ_ALL_PRINCIPALS", OPS)
        })
        .await;
        Self { app, emu }
    }

    fn token(&self, who: &str) -> String {
        self.emu.mint(who, AUD, Duration::from_secs(600))
    }

    async fn post(&self, who: &str, body: &Value, key: Option<&str>) -> Response {
        let mut req = self
            .app
            .client
            .post(format!("{}/", self.app.base))
            .bearer_auth(self.token(who))
            .json(body);
        if let Some(k) = key {
            req = req.header("idempotency-key", k);
        }
        req.send().await.expect("request")
    }

    async fn get(&self, who: &str, path: &str) -> Response {
        self.app
            .client
            .get(format!("{}{path}", self.app.base))
            .bearer_auth(self.token(who))
            .send()
            .await
            .expect("request")
    }

    /// Posts and returns the 201's entity id.
    async fn create(&self, who: &str, bar: &str) -> String {
        let res = self.post(who, &json!({"bar": bar}), None).await;
        assert_eq!(res.status(), 201);
        let v: Value = res.json().await.expect("json");
        v["id"].as_str().expect("id").to_owned()
    }

    /// Every id `who` gets by following `next` with `limit`.
    async fn list_all(&self, who: &str, limit: u32) -> Vec<String> {
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..1000 {
            let res = self
                .get(who, &page_path(limit as usize, after.as_deref()))
                .await;
            assert_eq!(res.status(), 200);
            let page: Value = res.json().await.expect("page");
            let (ids, next) = ids_and_next(&page);
            assert!(ids.len() <= limit as usize);
            seen.extend(ids);
            after = next;
            if after.is_none() {
                return seen;
            }
        }
        panic!("pagination did not end");
    }
}

fn new_entity(caller: &str, user: Option<&str>, key: &str, body: Value) -> NewEntity {
    new_entity_at("2026-01-02T03:04:05.123456Z", caller, user, key, body)
}

/// Inserts an entity of `caller` (for `user`) under the idempotency key `key`: the outcome.
async fn insert(
    store: &Store,
    caller: &str,
    user: Option<&str>,
    key: &str,
    body: Value,
) -> InsertOutcome {
    store
        .insert(new_entity(caller, user, key, body))
        .await
        .expect("insert")
}

fn created(outcome: InsertOutcome) -> Entity {
    match outcome {
        InsertOutcome::Created(e) => e,
        other => panic!("expected a new entity, got {other:?}"),
    }
}

fn replayed(outcome: InsertOutcome) -> Entity {
    match outcome {
        InsertOutcome::Replayed(e) => e,
        other => panic!("expected a replay, got {other:?}"),
    }
}

/// The squatting attack of issue 11, at the store (what the route does once the forwarded end
/// user is known): user 2 reuses user 1's key with user 1's body, then with another body.
async fn end_users_sharing_a_key_never_get_each_others_entity(backend: Backend) {
    let (url, _scratch) = fresh_store(backend).await;
    let store = Store::open(&url, &StoreSettings::default())
        .await
        .expect("open");
    let (u1, u2, u3) = ("one@example.com", "two@example.com", "three@example.com");
    let body = json!({"bar": "pay", "amount": 10});
    let first = created(insert(&store, A, Some(u1), "K", body.clone()).await);
    assert_eq!(first.on_behalf_of.as_deref(), Some(u1));
    // Same key, same body, another user: their own entity, not user 1's.
    let second = created(insert(&store, A, Some(u2), "K", body.clone()).await);
    assert_ne!(second.id, first.id);
    assert_eq!(second.on_behalf_of.as_deref(), Some(u2));
    // Same key, another body, another user: stored, no 422 across users.
    let third = created(insert(&store, A, Some(u3), "K", json!({"bar": "other"})).await);
    // The principal itself (no end user) has its own key space too.
    let own = created(insert(&store, A, None, "K", body.clone()).await);
    // Each user repeating gets their own replay.
    assert_eq!(
        replayed(insert(&store, A, Some(u1), "K", body.clone()).await),
        first
    );
    assert_eq!(
        replayed(insert(&store, A, Some(u2), "K", body.clone()).await),
        second
    );
    assert_eq!(
        replayed(insert(&store, A, Some(u3), "K", json!({"bar": "other"})).await),
        third
    );
    assert_eq!(
        replayed(insert(&store, A, None, "K", body.clone()).await),
        own
    );
    // A user's own key with another body is still 422.
    assert_eq!(
        insert(&store, A, Some(u1), "K", json!({"bar": "changed"})).await,
        InsertOutcome::KeyReused
    );
    // Stored and read back with the end user.
    let back = store
        .get(second.id, &ReadScope::All)
        .await
        .expect("get")
        .expect("present");
    assert_eq!(back, second);
    store.close().await;
}

/// Two allowed principals (service accounts) send the same key: equal bodies and different
/// bodies both give each its own entity; each replays only its own.
async fn principals_sharing_a_key_never_get_each_others_entity(backend: Backend) {
    let t = AuthApp::start(backend).await;
    let body = json!({"bar": "same"});
    let a = t.post(A, &body, Some("K")).await;
    assert_eq!(a.status(), 201);
    let a: Value = a.json().await.expect("json");
    let b = t.post(B, &body, Some("K")).await;
    assert_eq!(b.status(), 201);
    assert!(
        b.headers().get("idempotent-replayed").is_none(),
        "B must not get A's entity"
    );
    let b: Value = b.json().await.expect("json");
    assert_ne!(a["id"], b["id"]);
    assert_eq!(b["caller"], B);
    assert_eq!(b["on_behalf_of"], Value::Null);
    let ops = t.post(OPS, &json!({"bar": "different"}), Some("K")).await;
    assert_eq!(
        ops.status(),
        201,
        "another principal's key with another body is no 422"
    );
    for (who, first) in [(A, &a), (B, &b)] {
        let again = t.post(who, &body, Some("K")).await;
        assert_eq!(again.status(), 201);
        assert_eq!(again.headers()["idempotent-replayed"], "true");
        let again: Value = again.json().await.expect("json");
        assert_eq!(&again, first);
    }
    assert_eq!(t.app.row_count().await, 3);
}

async fn a_principal_cannot_read_another_principals_entity(backend: Backend) {
    let t = AuthApp::start(backend).await;
    let bs = t.create(B, "secret of b").await;
    let absent = uuid::Uuid::now_v7().to_string();
    let theirs = assert_problem(t.get(A, &format!("/entities/{bs}")).await, 404)
        .await
        .assert_complete()
        .detail;
    let nothing = assert_problem(t.get(A, &format!("/entities/{absent}")).await, 404)
        .await
        .assert_complete()
        .detail;
    // Same answer shape as an id that does not exist: existence is not disclosed.
    assert_eq!(theirs.replace(&bs, "ID"), nothing.replace(&absent, "ID"));
    let own = t.get(B, &format!("/entities/{bs}")).await;
    assert_eq!(own.status(), 200);
    let own: Value = own.json().await.expect("json");
    assert_eq!(own["caller"], B);
    assert_eq!(own["body"], json!({"bar": "secret of b"}));
}

async fn a_principal_cannot_list_another_principals_entities(backend: Backend) {
    let t = AuthApp::start(backend).await;
    let a1 = t.create(A, "a1").await;
    let _b1 = t.create(B, "b1").await;
    let a2 = t.create(A, "a2").await;
    assert_eq!(t.list_all(A, 100).await, vec![a1, a2]);
    let page: Value = t.get(A, "/entities").await.json().await.expect("page");
    for e in page["items"].as_array().expect("items") {
        assert_eq!(e["caller"], A, "only its own entities");
    }
    assert_eq!(t.list_all(B, 100).await.len(), 1);
}

async fn read_all_principals_read_everything(backend: Backend) {
    let t = AuthApp::start(backend).await;
    let a1 = t.create(A, "a1").await;
    let b1 = t.create(B, "b1").await;
    assert_eq!(t.get(OPS, &format!("/entities/{a1}")).await.status(), 200);
    assert_eq!(t.get(OPS, &format!("/entities/{b1}")).await.status(), 200);
    assert_eq!(t.list_all(OPS, 1).await, vec![a1, b1]);
}

/// Interleaved writers; each principal pages over exactly its own entities, oldest first, each
/// once, whatever the page size (a page is never cut short by the other's rows).
async fn scoped_pages_stay_complete_and_in_order(backend: Backend) {
    let t = AuthApp::start(backend).await;
    let (mut mine, mut theirs, mut all) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..13 {
        let id = t.create(A, &format!("a{i}")).await;
        mine.push(id.clone());
        all.push(id);
        for j in 0..2 {
            let id = t.create(B, &format!("b{i}.{j}")).await;
            theirs.push(id.clone());
            all.push(id);
        }
    }
    for limit in [1, 3, 13, 100] {
        assert_eq!(t.list_all(A, limit).await, mine, "limit {limit}");
        assert_eq!(t.list_all(B, limit).await, theirs, "limit {limit}");
        assert_eq!(t.list_all(OPS, limit).await, all, "limit {limit}");
    }
    // An exactly full last page: `next` is null only when nothing follows.
    let page: Value = t
        .get(A, "/entities?limit=13")
        .await
        .json()
        .await
        .expect("page");
    assert_eq!(page["items"].as_array().expect("items").len(), 13);
    assert_eq!(page["next"], Value::Null);
    // Store level: the same with a byte budget that fits two entities.
    let (url, _scratch) = fresh_store(t.app.backend).await;
    let store = Store::open(&url, &StoreSettings::default())
        .await
        .expect("open");
    let mut ids = Vec::new();
    for i in 0..9 {
        let who = if i % 3 == 0 { A } else { B };
        let e = created(
            insert(
                &store,
                who,
                None,
                &format!("k{i}"),
                json!({"bar": format!("{i}")}),
            )
            .await,
        );
        if who == A {
            ids.push(e.id);
        }
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list(&PageQuery {
                limit: 1000,
                after,
                scope: ReadScope::StoredBy(A.into()),
                max_bytes: 1,
            })
            .await
            .expect("page");
        assert_eq!(
            page.items.len().min(1),
            page.items.len(),
            "one over-budget entity per page"
        );
        seen.extend(page.items.iter().map(|e| e.id));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    store.close().await;
}

/// The squatting attack through the route: the same service account forwards two end users'
/// tokens (`X-Forwarded-Authorization`) with the same key; before, user 2 got 422 (or user 1's
/// entity replayed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_end_users_sharing_a_key_never_get_each_others_entity() {
    let Emu {
        emulator: emu,
        addr,
    } = Emu::start().await;
    let caller_url = "https://caller.test";
    let app = spawn_with(Backend::Sqlite, |s| {
        s.with("AUTH_MODE", "verify")
            .with("AUTH_AUDIENCES", AUD)
            .with("AUTH_ALLOWED_PRINCIPALS", A)
            .with("AUTH_JWKS_URL", format!("http://{addr}/oauth2/v3/certs"))
            .with("AUTH_FORWARDERS", A)
            .with("AUTH_FORWARDED_AUDIENCES", caller_url)
    })
    .await;
    let post = |user: &'static str, body: Value| {
        let req = app
            .client
            .post(format!("{}/", app.base))
            .bearer_auth(emu.mint(A, AUD, Duration::from_secs(600)))
            .header(
                "x-forwarded-authorization",
                format!(
                    "Bearer {}",
                    emu.mint(user, caller_url, Duration::from_secs(600))
                ),
            )
            .header("idempotency-key", "K")
            .json(&body);
        async move { req.send().await.expect("request") }
    };
    let body = json!({"bar": "pay"});
    let one = post("one@example.com", body.clone()).await;
    assert_eq!(one.status(), 201);
    let one: Value = one.json().await.expect("json");
    assert_eq!(one["on_behalf_of"], "one@example.com");
    let two = post("two@example.com", body.clone()).await;
    assert_eq!(two.status(), 201);
    assert!(two.headers().get("idempotent-replayed").is_none());
    let two: Value = two.json().await.expect("json");
    assert_ne!(one["id"], two["id"]);
    assert_eq!(two["on_behalf_of"], "two@example.com");
    assert_eq!(
        post("three@example.com", json!({"bar": "x"}))
            .await
            .status(),
        201
    );
    let again = post("one@example.com", body).await;
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.expect("json"), one);
}
