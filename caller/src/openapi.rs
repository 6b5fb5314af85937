//! The caller service's OpenAPI 3.1 document, generated from the handlers' annotations.

use std::sync::LazyLock;

use axum::response::Response;
use shared::openapi::BearerAuth;
use shared::problem::Problem;
use utoipa::OpenApi;

use crate::routes;

/// The document's definition.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "invoker caller",
        description = "Authenticates its client, then forwards {\"foo\"} to the called service as {\"bar\"} with a cached Google ID token."
    ),
    paths(routes::forward, routes::live, routes::ready),
    components(schemas(Problem, routes::ForwardBody)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

/// The rendered document (pretty JSON, as checked in at `caller/openapi.json`).
pub static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|_| "{}".to_owned())
});

/// `GET /openapi.json`.
pub async fn serve() -> Response {
    shared::openapi::json_response(DOCUMENT.as_str())
}

#[cfg(test)]
mod tests {
    #[test]
    fn checked_in_document_is_current() {
        shared::openapi::assert_checked_in(
            concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json"),
            &super::DOCUMENT,
        );
    }
}
