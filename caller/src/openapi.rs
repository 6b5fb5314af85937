//! The caller service's OpenAPI 3.1 document, generated from the handlers' annotations.

use std::sync::LazyLock;

use axum::response::Response;
use shared::openapi::{
    BearerAuth, LAYER_HEADERS, ReadOn, RequestHeader, RequestHeaders, SERVERLESS_AUTHORIZATION,
};
use shared::problem::Problem;
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi};

use crate::routes;

/// The headers the caller's authentication reads besides `Authorization`.
const AUTH_HEADERS: &[RequestHeader] = &[
    SERVERLESS_AUTHORIZATION,
    RequestHeader {
        name: "X-Goog-IAP-JWT-Assertion",
        read_on: ReadOn::Authenticated,
        description: "With AUTH_IAP_AUDIENCES set: IAP's signed assertion (ES256, iss \
                      https://cloud.google.com/iap, aud in AUTH_IAP_AUDIENCES). The person in it \
                      is the end user, checked against the allow-list and forwarded to the called \
                      service as X-Forwarded-Authorization. The unsigned \
                      X-Goog-Authenticated-User-* headers are never read.",
    },
];

/// What `POST /` sends on to the called service, added to that operation's description.
const FORWARDS: &str = "Forwards POST {CALLED_URL}/ with the body's \"foo\" renamed \"bar\" and \
these headers: Authorization: Bearer <this service's own ID token for CALLED_AUDIENCE>; \
X-Forwarded-Authorization: Bearer <the client's verified token, or its verified IAP assertion> \
(only when this service authenticated its client; a client's own X-Forwarded-Authorization is \
never read nor passed on); Content-Type: application/json; Idempotency-Key (the client's, or a \
new UUID, the same on every retry); traceparent / X-Cloud-Trace-Context and X-Request-Id \
propagated. No other header of the client (Cookie included) reaches the called service.";

/// Adds [`FORWARDS`] to the description of `POST /`.
struct Forwards;

impl Modify for Forwards {
    fn modify(&self, openapi: &mut Document) {
        if let Some(post) = openapi
            .paths
            .paths
            .get_mut("/")
            .and_then(|i| i.post.as_mut())
        {
            post.description = Some(match post.description.take() {
                Some(d) if !d.is_empty() => format!("{d}\n\n{FORWARDS}"),
                _ => FORWARDS.to_owned(),
            });
        }
    }
}

/// Every request header this service reads outside its handlers, documented per operation.
const HEADERS: RequestHeaders = RequestHeaders(&[LAYER_HEADERS, AUTH_HEADERS]);

/// The document's definition.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "invoker caller",
        description = "Authenticates its client, then forwards {\"foo\"} to the called service as {\"bar\"} with a cached Google ID token."
    ),
    paths(routes::forward, routes::live, routes::ready),
    components(schemas(Problem, routes::ForwardBody)),
    modifiers(&BearerAuth, &HEADERS, &Forwards)
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

    /// Every operation documents the layers' headers; the authenticated ones also the headers
    /// authentication reads (`X-Goog-IAP-JWT-Assertion`), the others not; no header appears twice.
    #[test]
    fn every_header_read_is_documented_once_on_the_operations_that_read_it() {
        shared::openapi::assert_headers_documented(
            &super::DOCUMENT,
            &["x-serverless-authorization", "x-goog-iap-jwt-assertion"],
        );
    }

    /// `POST /` says what it sends to the called service, the end user's token included.
    #[test]
    fn post_documents_what_it_forwards() {
        let doc: serde_json::Value = serde_json::from_str(&super::DOCUMENT).unwrap();
        let text = doc["paths"]["/"]["post"]["description"]
            .as_str()
            .unwrap_or_default();
        for forwarded in [
            "Authorization: Bearer",
            "X-Forwarded-Authorization: Bearer",
            "Idempotency-Key",
            "traceparent",
            "X-Request-Id",
        ] {
            assert!(
                text.contains(forwarded),
                "POST / does not say it forwards {forwarded}"
            );
        }
    }
}
