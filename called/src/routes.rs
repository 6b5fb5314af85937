//! HTTP handlers. Each one: extract (auth, headers, body) → validate → store → respond.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::{Value, json};
use shared::auth::{Caller, ServiceAuth};
use shared::body::{ExactJsonObject, require_text};
use shared::problem::Problem;
use time::OffsetDateTime;
use time::macros::format_description;
use uuid::Uuid;

use crate::AppState;
use crate::error::Error;
use crate::idempotency;
use crate::store::{Entity, IdempotencyKey, InsertOutcome, NewEntity, PageQuery, ReadScope, Store};

/// Longest accepted `"bar"`, in characters.
pub const MAX_BAR_CHARS: usize = 1024;
/// Largest `limit` of a list request.
pub const MAX_PAGE: u32 = 1000;
/// `limit` when none is given.
pub const DEFAULT_PAGE: u32 = 100;

/// Request body of `POST /` (other fields are kept as they are).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct CreateBody {
    /// A non-empty string of at most 1024 characters.
    #[schema(min_length = 1, max_length = 1024)]
    bar: String,
}

/// `POST /`: validate, persist durably, answer 201 with the entity.
#[utoipa::path(
    post,
    path = "/",
    request_body(content = CreateBody, content_type = "application/json",
        description = "A JSON object with a required \"bar\"; every other field is stored too"),
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$",
        description = "1–255 visible ASCII characters; the same key and body replay the first 201")),
    responses(
        (status = 201, description = "Stored (durably committed), or replayed", body = Entity,
            headers(("Location" = String, description = "/entities/{id}"),
                    ("Idempotent-Replayed" = Option<String>, description = "true on a replay"))),
        (status = 400, description = "Body not JSON, not an object, an object with a repeated key, or \"bar\" missing or invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or invalid identity token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Principal not allowed", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Same Idempotency-Key still in flight", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Content-Type is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Idempotency-Key reused with another body", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable, no signing keys, or overload", body = Problem, content_type = "application/problem+json"),
    ),
    security(("google_id_token" = []))
)]
pub async fn create(
    State(app): State<AppState>,
    principal: Caller,
    headers: HeaderMap,
    body: ExactJsonObject,
) -> Result<Response, Error> {
    require_text(&body.map, "bar", MAX_BAR_CHARS)?;
    // Stored, hashed and returned exactly as received (every digit of every number); from here
    // on only the exact text is held (the top-level summary is dropped now).
    let body = body.into_raw();
    let key = idempotency::key_from(&headers)?;
    let caller_email = principal.email().map(str::to_owned);
    let on_behalf_of = principal.on_behalf_of_email().map(str::to_owned);
    // A key belongs to who really asked: the principal and the end user it acts for.
    let scope = caller_email.clone().unwrap_or_default();
    let user = on_behalf_of.clone().unwrap_or_default();
    let _guard = match &key {
        Some(k) => Some(
            app.in_flight
                .begin(&scope, &user, k)
                .ok_or(Error::KeyInFlight)?,
        ),
        None => None,
    };
    // Linear in the body's size: a large one is hashed on the blocking pool.
    let (body, idempotency) = match key {
        Some(key) => {
            let (body, body_hash) = idempotency::body_hash_off_the_runtime(body).await?;
            let key = IdempotencyKey {
                scope,
                user,
                key,
                body_hash,
            };
            (body, Some(key))
        }
        None => (body, None),
    };
    let entity = Entity {
        id: Uuid::now_v7(),
        created_at: now_rfc3339(),
        caller: caller_email,
        on_behalf_of,
        body,
    };
    match app
        .store
        .insert(NewEntity {
            entity,
            idempotency,
        })
        .await?
    {
        InsertOutcome::Created(e) => Ok(created(&e, false)),
        InsertOutcome::Replayed(e) => Ok(created(&e, true)),
        InsertOutcome::KeyReused => Err(Error::KeyReused),
    }
}

fn created(entity: &Entity, replayed: bool) -> Response {
    // Sized once for the body it carries: grown by doubling, the buffer briefly held about
    // three times the body.
    let mut json = Vec::with_capacity(entity.body.get().len() + 512);
    if serde_json::to_writer(&mut json, entity).is_err() {
        return Problem::internal().into_response();
    }
    let content_type = [(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    )];
    let mut res = (StatusCode::CREATED, content_type, json).into_response();
    let h = res.headers_mut();
    if let Ok(loc) = HeaderValue::from_str(&format!("/entities/{}", entity.id)) {
        h.insert(header::LOCATION, loc);
    }
    if replayed {
        h.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    res
}

/// `GET /entities/{id}`.
#[utoipa::path(
    get,
    path = "/entities/{id}",
    params(("id" = String, Path, description = "Entity id (UUIDv7)")),
    responses(
        (status = 200, description = "The entity", body = Entity),
        (status = 401, description = "No or invalid identity token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Principal not allowed", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such entity, or one this principal may not read", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable or overload", body = Problem, content_type = "application/problem+json"),
    ),
    security(("google_id_token" = []))
)]
pub async fn get_one(
    State(app): State<AppState>,
    principal: Caller,
    Path(id): Path<String>,
) -> Result<Json<Entity>, Error> {
    let not_found = || Problem::not_found(format!("no entity with id {id:?}"));
    let uuid = Uuid::parse_str(&id).map_err(|_| not_found())?;
    // Another principal's entity is "not found" too: its existence is not disclosed.
    match app.store.get(uuid, &read_scope(&app, &principal)).await? {
        Some(e) => Ok(Json(e)),
        None => Err(not_found().into()),
    }
}

/// `GET /entities?limit=N&after=ID`: keyset pagination, oldest first.
#[utoipa::path(
    get,
    path = "/entities",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Page size (default 100)"),
        ("after" = Option<uuid::Uuid>, Query, description = "The previous page's next"),
    ),
    responses(
        (status = 200, description = "A page, oldest first, of the entities this principal may read; at most limit entities, ending before MAX_PAGE_BYTES", body = crate::store::Page),
        (status = 400, description = "Bad limit or after", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or invalid identity token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Principal not allowed", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable or overload", body = Problem, content_type = "application/problem+json"),
    ),
    security(("google_id_token" = []))
)]
pub async fn list(
    State(app): State<AppState>,
    principal: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<crate::store::Page>, Error> {
    let (limit, after) = list_params(query.as_deref().unwrap_or(""))?;
    let page = PageQuery {
        limit,
        after,
        scope: read_scope(&app, &principal),
        max_bytes: app.reads.max_page_bytes,
    };
    Ok(Json(app.store.list(&page).await?))
}

/// What `principal` may read: what it stored, everything when it is in `READ_ALL_PRINCIPALS`,
/// and everything with `AUTH_MODE=off` (no principal: a development mode).
fn read_scope(app: &AppState, principal: &Caller) -> ReadScope {
    match &principal.identity {
        Some(who) if !app.reads.reads_all(who) => ReadScope::StoredBy(who.email.clone()),
        _ => ReadScope::All,
    }
}

fn list_params(query: &str) -> Result<(u32, Option<Uuid>), Problem> {
    let mut limit = DEFAULT_PAGE;
    let mut after = None;
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "limit" => {
                limit = v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=MAX_PAGE).contains(n))
                    .ok_or_else(|| {
                        Problem::bad_request(format!(
                            "query parameter \"limit\" must be an integer from 1 to {MAX_PAGE}"
                        ))
                    })?;
            }
            "after" => {
                after = Some(Uuid::parse_str(&v).map_err(|_| {
                    Problem::bad_request("query parameter \"after\" must be an entity id (UUID)")
                })?);
            }
            _ => {}
        }
    }
    Ok((limit, after))
}

/// `GET /health/live`: the process runs.
#[utoipa::path(get, path = "/health/live", responses((status = 200, description = "Running")))]
pub async fn live() -> Json<Value> {
    Json(json!({"status": "live"}))
}

/// `GET /health/ready`: the store answers, and with `AUTH_MODE=verify` signing keys are at hand
/// (without them every authenticated request would get 503, so the instance is not ready; the
/// check itself fetches them when none are cached).
#[utoipa::path(get, path = "/health/ready", responses(
    (status = 200, description = "The store answers (and signing keys are available in verify mode)"),
    (status = 503, description = "The store is unreachable, or no signing keys yet", body = Problem, content_type = "application/problem+json"),
))]
pub async fn ready(State(app): State<AppState>) -> Response {
    match app.readiness.get().await {
        Ok(Ok(())) => Json(json!({"status": "ready"})).into_response(),
        Ok(Err(problem)) => problem.into_response(),
        Err(_) => {
            Problem::unavailable("the readiness check did not finish in time", 2).into_response()
        }
    }
}

/// One readiness check: signing keys (verify mode) within 2 s, then a store ping within 2 s,
/// then whether writes commit ([`Store::writes_commit`]: not after repeated commit failures,
/// again after one success). `ready` caches its result about a second with one check in flight
/// ([`shared::readiness`]), so probes never fan out to the store.
pub async fn check_ready(auth: &ServiceAuth, store: &Store) -> Result<(), Problem> {
    if auth.mode() == shared::auth::AuthMode::Verify
        && !tokio::time::timeout(Duration::from_secs(2), auth.ready())
            .await
            .unwrap_or(false)
    {
        tracing::warn!("not ready: no signing keys to verify tokens with");
        return Err(Problem::unavailable(
            "no signing keys to verify tokens with yet",
            1,
        ));
    }
    match tokio::time::timeout(Duration::from_secs(2), store.ping()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready: store unreachable");
            return Err(Problem::unavailable("the store is unreachable", 2));
        }
        Err(_) => return Err(Problem::unavailable("the store did not answer in time", 2)),
    }
    store.writes_commit().map_err(|e| {
        tracing::warn!(error = %e, "not ready: writes do not commit");
        Problem::unavailable("the store cannot commit writes right now", 2)
    })
}

fn now_rfc3339() -> String {
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
    OffsetDateTime::now_utc().format(&fmt).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_parameters() {
        assert_eq!(list_params("").expect("defaults"), (DEFAULT_PAGE, None));
        assert_eq!(list_params("limit=5").expect("ok").0, 5);
        for bad in [
            "limit=0",
            "limit=abc",
            "limit=1001",
            "limit=-1",
            "after=garbage",
        ] {
            assert_eq!(list_params(bad).expect_err(bad).status, 400);
        }
        let id = Uuid::now_v7();
        assert_eq!(list_params(&format!("after={id}")).expect("ok").1, Some(id));
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let t = now_rfc3339();
        assert!(t.ends_with('Z') && t.len() == 27, "{t}");
        assert!(
            time::OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339).is_ok()
        );
    }
}
