//! Pieces of the services' OpenAPI 3.1 documents that both share: the bearer security scheme,
//! the request headers read outside the handlers (layers, authentication), and serving the
//! generated document at `GET /openapi.json`.

use axum::response::{IntoResponse, Response};
use http::header;
use utoipa::Modify;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ObjectBuilder, Required, Type};

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

/// Which operations read a request header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOn {
    /// Every route: the server's layers read it (tracing, request id, access log).
    Every,
    /// Routes that require the bearer scheme: authentication reads it.
    Authenticated,
}

/// A request header a service reads outside its handlers, as its document shows it.
#[derive(Debug, Clone, Copy)]
pub struct RequestHeader {
    /// Header name, as documented (matching is case-insensitive).
    pub name: &'static str,
    /// The operations that read it.
    pub read_on: ReadOn,
    /// What the service does with it.
    pub description: &'static str,
}

/// What the layers of both services read on every route (`shared::server::layers`,
/// `shared::telemetry`).
pub const LAYER_HEADERS: &[RequestHeader] = &[
    RequestHeader {
        name: "traceparent",
        read_on: ReadOn::Every,
        description: "W3C trace context: the request's log entries carry its trace id",
    },
    RequestHeader {
        name: "X-Cloud-Trace-Context",
        read_on: ReadOn::Every,
        description: "Cloud Trace context (TRACE_ID/SPAN_ID;o=1), used when traceparent is absent",
    },
    RequestHeader {
        name: "X-Request-Id",
        read_on: ReadOn::Every,
        description: "1-128 visible ASCII characters, logged and echoed; any other value is \
                      replaced by a new UUID",
    },
    RequestHeader {
        name: "X-Forwarded-For",
        read_on: ReadOn::Every,
        description: "its last entry (the one Cloud Run's front end appends) is logged as the \
                      remote address",
    },
];

/// The headers authentication reads in `AUTH_MODE=platform` besides `Authorization` (which
/// the bearer security scheme documents).
pub const SERVERLESS_AUTHORIZATION: RequestHeader = RequestHeader {
    name: "X-Serverless-Authorization",
    read_on: ReadOn::Authenticated,
    description: "AUTH_MODE=platform only: the ID token Cloud Run's IAM check verified, read \
                  instead of Authorization when present (repeated: 401). Ignored in verify mode.",
};

/// Documents request headers as optional header parameters of every operation that reads
/// them (see [`ReadOn`]). A header an operation already declares (same name, any case) is
/// left as the handler's annotation describes it.
#[derive(Debug, Clone, Copy)]
pub struct RequestHeaders(pub &'static [&'static [RequestHeader]]);

impl Modify for RequestHeaders {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.options,
                &mut item.head,
                &mut item.patch,
                &mut item.trace,
            ];
            for operation in operations.into_iter().flatten() {
                add_headers(operation, self.0.iter().flat_map(|group| group.iter()));
            }
        }
    }
}

fn add_headers<'a>(operation: &mut Operation, headers: impl Iterator<Item = &'a RequestHeader>) {
    let authenticated = operation
        .security
        .as_ref()
        .is_some_and(|requirements| !requirements.is_empty());
    let parameters = operation.parameters.get_or_insert_with(Vec::new);
    for header in headers {
        let applies = match header.read_on {
            ReadOn::Every => true,
            ReadOn::Authenticated => authenticated,
        };
        let declared = parameters.iter().any(|p| {
            p.parameter_in == ParameterIn::Header && p.name.eq_ignore_ascii_case(header.name)
        });
        if applies && !declared {
            parameters.push(
                ParameterBuilder::new()
                    .name(header.name)
                    .parameter_in(ParameterIn::Header)
                    .required(Required::False)
                    .description(Some(header.description))
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                    .build(),
            );
        }
    }
}

/// For the services' tests: each operation of a rendered document as `("METHOD /path",
/// authenticated, header parameter names)`.
///
/// # Panics
/// When `document` is not an OpenAPI document in JSON.
pub fn header_parameters(document: &str) -> Vec<(String, bool, Vec<String>)> {
    let doc: serde_json::Value = serde_json::from_str(document).expect("an OpenAPI JSON document");
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            let names = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "header")
                .filter_map(|p| p["name"].as_str().map(str::to_owned))
                .collect();
            let authenticated = op["security"].as_array().is_some_and(|s| !s.is_empty());
            out.push((
                format!("{} {path}", method.to_uppercase()),
                authenticated,
                names,
            ));
        }
    }
    out
}

/// A response serving a pre-rendered OpenAPI document.
pub fn json_response(document: &'static str) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], document).into_response()
}

/// Asserts that every operation of `document` lists each header it reads exactly once: the
/// layers' [`LAYER_HEADERS`] everywhere, and `auth_headers` (lower-case) on the authenticated
/// operations only. For the services' OpenAPI tests.
///
/// # Panics
/// On the first operation that misses a header, lists one twice, or lists an authentication
/// header without authentication.
pub fn assert_headers_documented(document: &str, auth_headers: &[&str]) {
    let ops = header_parameters(document);
    assert!(ops.iter().any(|(_, authenticated, _)| *authenticated));
    for (op, authenticated, names) in ops {
        let mut lower: Vec<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
        lower.sort();
        lower.dedup();
        assert_eq!(lower.len(), names.len(), "{op}: a header twice: {names:?}");
        for layer in LAYER_HEADERS {
            assert!(
                lower.contains(&layer.name.to_ascii_lowercase()),
                "{op}: no {}",
                layer.name
            );
        }
        for auth in auth_headers {
            assert_eq!(
                lower.iter().any(|n| n == auth),
                authenticated,
                "{op}: {auth}"
            );
        }
    }
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
