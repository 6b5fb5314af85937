//! Pieces of the services' OpenAPI 3.1 documents that both share: the bearer security scheme
//! and serving the generated document at `GET /openapi.json`.

use axum::response::{IntoResponse, Response};
use http::header;
use utoipa::Modify;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

/// Name of the security scheme: a Google-signed OIDC ID token as a bearer token.
pub const BEARER: &str = "google_id_token";

/// Adds the bearer (JWT) security scheme to a generated document.
#[derive(Debug, Clone, Copy)]
pub struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "Google-signed OIDC ID token whose aud is this service's URL and whose \
                         email is on the service's allow-list",
                    ))
                    .build(),
            ),
        );
    }
}

/// A response serving a pre-rendered OpenAPI document.
pub fn json_response(document: &'static str) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], document).into_response()
}

/// For a service's unit test: the generated document must equal the checked-in file at `path`
/// (reviewable in diffs, used by schemathesis). `UPDATE_OPENAPI=1` rewrites the file instead.
///
/// # Panics
/// When the file is stale (that is the test failing), or cannot be written on update.
pub fn assert_checked_in(path: &str, document: &str) {
    let current = format!("{document}\n");
    if std::env::var_os("UPDATE_OPENAPI").is_some()
        && let Err(e) = std::fs::write(path, &current)
    {
        panic!("cannot write {path}: {e}");
    }
    let checked_in = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        checked_in == current,
        "{path} is stale: run UPDATE_OPENAPI=1 cargo test --workspace openapi"
    );
    assert!(current.contains("\"openapi\": \"3.1"), "not OpenAPI 3.1");
}
