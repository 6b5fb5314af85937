//! The called service's OpenAPI 3.1 document, generated from the handlers' annotations.

use std::sync::LazyLock;

use axum::response::Response;
use shared::openapi::{
    BearerAuth, LAYER_HEADERS, ReadOn, RequestHeader, RequestHeaders, SERVERLESS_AUTHORIZATION,
};
use shared::problem::Problem;
use utoipa::OpenApi;

use crate::routes;
use crate::store::{Entity, Page};

/// The headers the called service's authentication reads besides `Authorization`.
const AUTH_HEADERS: &[RequestHeader] = &[
    SERVERLESS_AUTHORIZATION,
    RequestHeader {
        name: "X-Forwarded-Authorization",
        read_on: ReadOn::Authenticated,
        description: "Bearer <the end user's ID token, or an IAP assertion>: read only from a \
                      principal in AUTH_FORWARDERS, and then verified in full in every mode (aud \
                      in AUTH_FORWARDED_AUDIENCES); its email becomes on_behalf_of and scopes \
                      Idempotency-Key. Invalid or repeated: 401. Ignored from any other principal.",
    },
];

/// Every request header this service reads outside its handlers, documented per operation.
const HEADERS: RequestHeaders = RequestHeaders(&[LAYER_HEADERS, AUTH_HEADERS]);

/// The document's definition.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "invoker called",
        description = "Verifies the caller's Google ID token and stores JSON bodies durably."
    ),
    paths(routes::create, routes::get_one, routes::list, routes::live, routes::ready),
    components(schemas(Entity, Page, Problem, routes::CreateBody)),
    modifiers(&BearerAuth, &HEADERS)
)]
pub struct ApiDoc;

/// The rendered document (pretty JSON, as checked in at `called/openapi.json`).
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

    /// Every operation documents the layers' headers; the authenticated ones also the headers
    /// authentication reads (`X-Forwarded-Authorization`), the others not; no header appears
    /// twice.
    #[test]
    fn every_header_read_is_documented_once_on_the_operations_that_read_it() {
        shared::openapi::assert_headers_documented(
            &super::DOCUMENT,
            &["x-serverless-authorization", "x-forwarded-authorization"],
        );
    }
}
