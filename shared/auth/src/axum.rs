//! axum / tower integration (feature `axum`): [`AuthLayer`] authenticates every request of the
//! router (or route group) it wraps and puts the [`Principal`] in the request's extensions;
//! [`Principal`] and [`EndUser`] are extractors for handlers.
//!
//! A refused request never reaches the handler: it gets the response of the rejection hook
//! ([`AuthLayer::on_rejection`]; by default a short `text/plain` body with the right status and
//! `WWW-Authenticate`).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderValue, Request, StatusCode, header};
use tower_layer::Layer;
use tower_service::Service;

use crate::authenticate::{Authenticator, Principal, Rejection};
use crate::identity::Identity;

/// Turns a [`Rejection`] into a response.
pub trait OnRejection: Clone + Send + Sync + 'static {
    /// The response for `rejection`.
    fn response(&self, rejection: Rejection) -> Response;
}

impl<F> OnRejection for F
where
    F: Fn(Rejection) -> Response + Clone + Send + Sync + 'static,
{
    fn response(&self, rejection: Rejection) -> Response {
        self(rejection)
    }
}

/// The default rejection response: the status, `WWW-Authenticate`, and the reason as text.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultRejection;

impl OnRejection for DefaultRejection {
    fn response(&self, rejection: Rejection) -> Response {
        default_response(&rejection)
    }
}

/// The response [`DefaultRejection`] gives.
pub fn default_response(rejection: &Rejection) -> Response {
    let mut res = (rejection.kind().status(), rejection.to_string()).into_response();
    if let Some(value) = rejection.www_authenticate() {
        res.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(value));
    }
    res
}

/// A tower [`Layer`] that authenticates each request with an [`Authenticator`].
///
/// ```no_run
/// use axum::{Router, routing::get};
/// use invoker_auth::{AllowList, Authenticator, Principal, axum::AuthLayer, verify::Verifier};
///
/// let auth = Authenticator::builder(Verifier::builder(["https://svc-abc-uc.a.run.app"]).build())
///     .allow(AllowList::parse(["*@my-project.iam.gserviceaccount.com"]).unwrap())
///     .build();
/// let app: Router = Router::new()
///     .route("/", get(|p: Principal| async move { format!("hello {}", p.email()) }))
///     .layer(AuthLayer::new(auth));
/// ```
#[derive(Debug, Clone)]
pub struct AuthLayer<R = DefaultRejection> {
    auth: Authenticator,
    on_rejection: R,
}

impl AuthLayer {
    /// Authenticates with `auth`; refusals get [`DefaultRejection`]'s response.
    pub fn new(auth: Authenticator) -> Self {
        Self {
            auth,
            on_rejection: DefaultRejection,
        }
    }
}

impl<R> AuthLayer<R> {
    /// Answers refusals with `hook` instead (your error format; log the refusal there:
    /// [`Rejection::code`] and [`Rejection::header`] are stable).
    pub fn on_rejection<R2: OnRejection>(self, hook: R2) -> AuthLayer<R2> {
        AuthLayer {
            auth: self.auth,
            on_rejection: hook,
        }
    }
}

impl<S, R: Clone> Layer<S> for AuthLayer<R> {
    type Service = AuthService<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            auth: self.auth.clone(),
            on_rejection: self.on_rejection.clone(),
        }
    }
}

/// The service [`AuthLayer`] makes.
#[derive(Debug, Clone)]
pub struct AuthService<S, R> {
    inner: S,
    auth: Authenticator,
    on_rejection: R,
}

impl<S, R, B> Service<Request<B>> for AuthService<S, R>
where
    S: Service<Request<B>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    R: OnRejection,
    B: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // The clone that was driven to readiness serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = self.auth.clone();
        let on_rejection = self.on_rejection.clone();
        Box::pin(async move {
            match auth.authenticate(req.headers()).await {
                Ok(principal) => {
                    req.extensions_mut().insert(principal);
                    inner.call(req).await
                }
                Err(rejection) => Ok(on_rejection.response(rejection)),
            }
        })
    }
}

/// Extracting [`Principal`] from a request that no [`AuthLayer`] authenticated: a bug in the
/// router's setup, answered 500 (never as an anonymous success).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("no AuthLayer authenticated this route")]
pub struct MissingAuthLayer;

impl IntoResponse for MissingAuthLayer {
    fn into_response(self) -> Response {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "authentication is not set up for this route",
        )
            .into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = MissingAuthLayer;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or(MissingAuthLayer)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Principal {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Principal>().cloned())
    }
}

/// Extractor of the end user a trusted forwarder acts for; use `Option<EndUser>` (a request
/// without one is not refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndUser(pub Identity);

impl<S: Send + Sync> OptionalFromRequestParts<S> for EndUser {
    type Rejection = MissingAuthLayer;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        let principal = parts
            .extensions
            .get::<Principal>()
            .ok_or(MissingAuthLayer)?;
        Ok(principal.on_behalf_of.clone().map(EndUser))
    }
}
