//! HTTP routes of the emulator. Metadata routes answer like Google's (plain text, 403 without
//! `Metadata-Flavor: Google`); `/emulator/…` routes answer JSON and problem documents.

use axum::Json;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::middleware::map_response;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Deserialize;
use serde_json::json;

use super::keys::SigningKey;
use super::{EXPIRED_BY, Emulator, IdentityFault, JWKS_PATH, is_email, now_secs};
use shared::problem::Problem;

const FLAVOR: &str = "metadata-flavor";
const SA_PREFIX: &str = "/computeMetadata/v1/instance/service-accounts";
/// Upper bound on `lifetime_secs` of `POST /emulator/mint`.
const MAX_MINT_LIFETIME: u64 = 86_400;

pub(super) fn router(emu: Emulator) -> Router {
    Router::new()
        .route("/", get(root))
        .route(&format!("{SA_PREFIX}/{{account}}/identity"), get(identity))
        .route(&format!("{SA_PREFIX}/{{account}}/email"), get(email))
        .route("/computeMetadata/v1/project/project-id", get(project_id))
        .route(JWKS_PATH, get(jwks))
        .route("/emulator/mint", post(mint))
        .route("/emulator/rotate", post(rotate))
        .route("/emulator/faults", post(faults))
        .fallback(not_found)
        .layer(map_response(add_flavor))
        .with_state(emu)
}

async fn add_flavor(mut res: Response) -> Response {
    res.headers_mut()
        .insert(FLAVOR, HeaderValue::from_static("Google"));
    res
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (status, body.into()).into_response()
}

/// `None` when the request carries `Metadata-Flavor: Google`, else the 403 Google sends.
fn require_flavor(headers: &HeaderMap) -> Option<Response> {
    if headers.get(FLAVOR).is_some_and(|v| v == "Google") {
        None
    } else {
        Some(text(
            StatusCode::FORBIDDEN,
            "Missing Metadata-Flavor:Google header.\n",
        ))
    }
}

/// The account a `service-accounts/{account}` path names, if it is this one.
fn account_matches(emu: &Emulator, account: &str) -> bool {
    account == "default" || account.eq_ignore_ascii_case(&emu.config().service_account)
}

async fn root() -> Response {
    text(StatusCode::OK, "computeMetadata/\n")
}

async fn not_found() -> Response {
    text(StatusCode::NOT_FOUND, "Not Found\n")
}

async fn email(
    State(emu): State<Emulator>,
    Path(account): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(denied) = require_flavor(&headers) {
        return denied;
    }
    if !account_matches(&emu, &account) {
        return not_found().await;
    }
    text(StatusCode::OK, emu.config().service_account.clone())
}

async fn project_id(State(emu): State<Emulator>, headers: HeaderMap) -> Response {
    if let Some(denied) = require_flavor(&headers) {
        return denied;
    }
    text(StatusCode::OK, emu.config().project_id.clone())
}

#[derive(Deserialize)]
struct IdentityQuery {
    audience: Option<String>,
    format: Option<String>,
}

async fn identity(
    State(emu): State<Emulator>,
    Path(account): Path<String>,
    headers: HeaderMap,
    Query(query): Query<IdentityQuery>,
) -> Response {
    emu.inner
        .identity_requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if let Some(denied) = require_flavor(&headers) {
        return denied;
    }
    if !account_matches(&emu, &account) {
        return not_found().await;
    }
    let Some(audience) = query.audience.filter(|a| !a.trim().is_empty()) else {
        return text(
            StatusCode::BAD_REQUEST,
            "non-empty audience parameter required\n",
        );
    };
    let full = match query.format.as_deref() {
        None | Some("standard") => false,
        Some("full") => true,
        Some(_) => {
            return text(StatusCode::BAD_REQUEST, "format must be standard or full\n");
        }
    };
    let fault = emu.take_identity_fault();
    match fault {
        IdentityFault::Unavailable => {
            return text(StatusCode::SERVICE_UNAVAILABLE, "service unavailable\n");
        }
        IdentityFault::ForbiddenOnce => {
            return text(StatusCode::FORBIDDEN, "forbidden (injected fault)\n");
        }
        IdentityFault::GarbageOnce => {
            return text(StatusCode::OK, "<html>this is not a JWT</html>");
        }
        IdentityFault::Stall => std::future::pending::<()>().await,
        IdentityFault::None | IdentityFault::Expired => {}
    }
    let lifetime = emu.config().token_lifetime.as_secs();
    let (iat, exp) = if fault == IdentityFault::Expired {
        let exp = now_secs().saturating_sub(EXPIRED_BY);
        (exp.saturating_sub(lifetime), exp)
    } else {
        let iat = now_secs();
        (iat, iat.saturating_add(lifetime))
    };
    let account = &emu.config().service_account;
    let claims = emu.claims(account, &audience, iat, exp, full.then_some(true));
    let key = emu.current();
    match key.sign(&key.header(), &claims) {
        Ok(token) => text(StatusCode::OK, token),
        Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "signing failed\n"),
    }
}

async fn jwks(State(emu): State<Emulator>) -> Response {
    emu.inner
        .jwks_requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if emu.jwks_down() {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "key set unavailable (injected fault)\n",
        );
    }
    let cache_control = format!(
        "public, max-age={}, must-revalidate, no-transform",
        emu.config().jwks_max_age.as_secs()
    );
    (
        [(header::CACHE_CONTROL, cache_control)],
        Json(emu.public_jwks()),
    )
        .into_response()
}

#[derive(Deserialize)]
struct MintRequest {
    email: String,
    audience: String,
    lifetime_secs: Option<u64>,
    email_verified: Option<bool>,
}

async fn mint(
    State(emu): State<Emulator>,
    body: Result<Json<MintRequest>, JsonRejection>,
) -> Response {
    let Json(req) = match body {
        Ok(b) => b,
        Err(rejection) => return Problem::bad_request(rejection.body_text()).into_response(),
    };
    if !is_email(&req.email) {
        return Problem::bad_request("email must be an email address").into_response();
    }
    if req.audience.trim().is_empty() {
        return Problem::bad_request("audience must not be empty").into_response();
    }
    let lifetime = req
        .lifetime_secs
        .unwrap_or(emu.config().token_lifetime.as_secs());
    if !(1..=MAX_MINT_LIFETIME).contains(&lifetime) {
        return Problem::bad_request(format!(
            "lifetime_secs must be between 1 and {MAX_MINT_LIFETIME}"
        ))
        .into_response();
    }
    let iat = now_secs();
    let claims = emu.claims(
        &req.email,
        &req.audience,
        iat,
        iat.saturating_add(lifetime),
        Some(req.email_verified.unwrap_or(true)),
    );
    let key = emu.current();
    match key.sign(&key.header(), &claims) {
        Ok(token) => Json(json!({ "token": token })).into_response(),
        Err(_) => Problem::internal().into_response(),
    }
}

async fn rotate(State(emu): State<Emulator>) -> Response {
    match tokio::task::spawn_blocking(SigningKey::generate).await {
        Ok(Ok(key)) => Json(json!({ "kid": emu.install(key) })).into_response(),
        _ => {
            tracing::error!("cannot generate a new signing key");
            Problem::internal().into_response()
        }
    }
}

#[derive(Deserialize)]
struct FaultsRequest {
    identity: Option<IdentityFault>,
    jwks_down: Option<bool>,
}

async fn faults(
    State(emu): State<Emulator>,
    body: Result<Json<FaultsRequest>, JsonRejection>,
) -> Response {
    let Json(req) = match body {
        Ok(b) => b,
        Err(rejection) => return Problem::bad_request(rejection.body_text()).into_response(),
    };
    if let Some(fault) = req.identity {
        emu.set_identity_fault(fault);
    }
    if let Some(down) = req.jwks_down {
        emu.set_jwks_down(down);
    }
    tracing::info!(identity = ?emu.identity_fault(), jwks_down = emu.jwks_down(), "faults set");
    Json(json!({ "identity": emu.identity_fault(), "jwks_down": emu.jwks_down() })).into_response()
}
