//! The `AUTH_*` settings turned into the library's [`Authenticator`], applied to a route with
//! [`protect`], its refusals turned into problem responses and one log entry each
//! ([`problem`]), and the [`Caller`] extractor handlers take.

use axum::extract::{FromRequestParts, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use http::request::Parts;
use http::{HeaderMap, StatusCode, header};
use std::sync::Arc;

use invoker_auth::verify::{JwksCache, KeySource};
use invoker_auth::{
    AllowList, AuthError, AuthLayer, Authenticator, ForwardedUsers, IAP_SERVICE_AGENTS, IapUsers,
    Identity, Rejection,
};

use super::config::AuthConfig;
use super::forwarded::ForwardedConfig;
use super::iap::{IapConfig, is_iap_audience};
use super::mode::AuthMode;
use crate::problem::Problem;

/// Where a service's end users come from, besides its callers' own tokens.
#[derive(Debug, Clone, Copy, Default)]
pub enum EndUsers<'a> {
    /// Nowhere: the caller is the user.
    #[default]
    None,
    /// `called`: end users forwarded by trusted principals in `X-Forwarded-Authorization`
    /// (ID tokens, or IAP assertions forwarded by a caller behind IAP).
    Forwarded(&'a ForwardedConfig),
    /// `caller`: with `AUTH_IAP_AUDIENCES` set, the person behind Identity-Aware Proxy.
    Iap(&'a IapConfig),
}

/// The authentication of one service: the library's [`Authenticator`] built from the
/// settings, or none with `AUTH_MODE=off`. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ServiceAuth {
    mode: AuthMode,
    authenticator: Option<Authenticator>,
    jwks: Option<JwksCache>,
    /// IAP's key set, when the caller takes people from IAP (warmed up at start).
    iap_jwks: Option<JwksCache>,
}

impl ServiceAuth {
    /// Builds the policy from the settings; `http` is the process's outbound client (used for
    /// the key sets). `end_users` says where end users come from besides the callers' tokens.
    /// Logs the loud warnings the settings call for.
    pub fn new(cfg: &AuthConfig, http: reqwest::Client, end_users: EndUsers<'_>) -> Self {
        if cfg.mode == AuthMode::Off {
            tracing::warn!("AUTH_MODE=off: this service accepts requests from anyone");
            return Self {
                mode: cfg.mode,
                authenticator: None,
                jwks: None,
                iap_jwks: None,
            };
        }
        if cfg.allow_any_principal {
            tracing::warn!(
                "AUTH_ALLOW_ANY_PRINCIPAL=true: any Google identity with a token for this audience may call"
            );
        }
        if cfg.platform_off_cloud_run {
            tracing::warn!(
                "AUTH_MODE=platform with AUTH_PLATFORM_TRUSTED=true and K_SERVICE unset: tokens with a stripped signature are accepted on their claims alone, so anyone who can reach this port directly can claim any identity"
            );
        }
        let jwks = cfg.key_set(http.clone());
        let keys: Arc<dyn KeySource> = Arc::new(jwks.clone());
        let iap_jwks = cfg.iap_key_set(http.clone());
        let iap_keys = || -> Arc<dyn KeySource> { Arc::new(iap_jwks.clone()) };
        let mut warm_iap = false;
        let verifier =
            |audiences: &[String], signature| cfg.verifier(audiences, signature, keys.clone());
        let mut builder = Authenticator::builder(verifier(&cfg.audiences, cfg.mode.signature()))
            .header_rule(cfg.mode.header_rule())
            .allow(cfg.allowed.clone());
        match end_users {
            EndUsers::Forwarded(f) if !f.forwarders.is_empty() => {
                tracing::info!(
                    forwarders = %f.forwarders,
                    audiences = %f.audiences.join(","),
                    mode = ?f.mode,
                    "X-Forwarded-Authorization is verified from these principals only (ID tokens, and IAP assertions when an IAP audience is listed)"
                );
                let mut users = ForwardedUsers::new(
                    f.forwarders.clone(),
                    verifier(&f.audiences, f.mode.signature()),
                );
                // Only where an IAP audience is accepted: otherwise no forwarded assertion could
                // pass, and telling the two kinds apart would cost every request a decode.
                if f.audiences.iter().any(|a| is_iap_audience(a)) {
                    users = users.with_iap(cfg.iap_verifier(&f.audiences, iap_keys()));
                }
                builder = builder.forwarded_users(users);
            }
            EndUsers::Forwarded(_) => tracing::info!(
                "no trusted forwarders (AUTH_FORWARDERS is empty): X-Forwarded-Authorization is ignored"
            ),
            EndUsers::Iap(iap) if iap.enabled() => {
                let mut users = IapUsers::new(cfg.iap_verifier(&iap.audiences, iap_keys()));
                if cfg.mode == AuthMode::Platform {
                    // Behind Cloud Run's IAM check IAP's own service agent presents a token:
                    // proof the request passed the check; never the person.
                    users = users.require_proxy_token(
                        AllowList::parse([IAP_SERVICE_AGENTS]).expect("a valid pattern"),
                    );
                }
                tracing::info!(
                    audiences = %iap.audiences.join(","),
                    proxy_token = cfg.mode == AuthMode::Platform,
                    "the end user is the person in X-Goog-IAP-JWT-Assertion (AUTH_ALLOWED_PRINCIPALS applies to that person)"
                );
                builder = builder.iap_users(users);
                warm_iap = true;
            }
            EndUsers::Iap(_) | EndUsers::None => {}
        }
        Self {
            mode: cfg.mode,
            authenticator: Some(builder.build()),
            jwks: Some(jwks),
            iap_jwks: warm_iap.then_some(iap_jwks),
        }
    }

    /// `AUTH_MODE`.
    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    /// The library's authenticator; `None` with `AUTH_MODE=off`.
    pub fn authenticator(&self) -> Option<&Authenticator> {
        self.authenticator.as_ref()
    }

    /// The key-set cache (counters), when the mode verifies tokens.
    pub fn jwks(&self) -> Option<&JwksCache> {
        self.jwks.as_ref()
    }

    /// Fetches the key sets once (errors are logged; requests retry later). Call at startup
    /// so the first request does not wait for them.
    pub async fn warm_up(&self) {
        let warm = |k: Option<&JwksCache>| {
            let k = k.cloned();
            async move {
                if let Some(k) = k {
                    k.warm_up().await;
                }
            }
        };
        // IAP's key set too when people come through IAP, at the same time.
        tokio::join!(warm(self.jwks.as_ref()), warm(self.iap_jwks.as_ref()));
    }

    /// Whether tokens can be verified now (`true` with `AUTH_MODE=off`).
    pub async fn ready(&self) -> bool {
        match &self.authenticator {
            Some(a) => a.ready().await,
            None => true,
        }
    }

    /// The raw bearer token the authenticator verified for these headers (the caller forwards
    /// its client's proof); `None` with `AUTH_MODE=off`. Never log it.
    pub fn presented_token<'h>(&self, headers: &'h HeaderMap) -> Option<&'h str> {
        self.authenticator.as_ref()?.presented_token(headers)
    }
}

/// Marks a request let through by `AUTH_MODE=off` (so that [`Caller`] tells "no
/// authentication configured" from "authentication forgotten on this route").
#[derive(Debug, Clone, Copy)]
pub struct AuthDisabled;

/// `route` with authentication in front of each of its methods (not of its 405 fallback, so a
/// wrong method stays 405 for anyone).
pub fn protect<S>(route: MethodRouter<S>, auth: &ServiceAuth) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    // The `authenticate` span around the check when tracing is on (telemetry::otel).
    crate::telemetry::otel::authenticate_span(route, |route| match &auth.authenticator {
        Some(a) => route.route_layer(AuthLayer::new(a.clone()).on_rejection(problem)),
        None => route.route_layer(axum::middleware::from_fn(off)),
    })
}

async fn off(mut req: Request, next: Next) -> Response {
    tracing::warn!("AUTH_MODE=off: request accepted without authentication");
    req.extensions_mut().insert(AuthDisabled);
    next.run(req).await
}

/// The response to a refused request — a problem with today's 401/403/503 and
/// `WWW-Authenticate` rules — and its log entry.
pub fn problem(rejection: Rejection) -> Response {
    super::refusal::log(&rejection);
    let www = rejection.www_authenticate();
    let p = match (rejection.error(), rejection.is_end_user()) {
        (AuthError::KeysUnavailable(_), _) => {
            return Problem::unavailable("token signing keys are not available yet; try again", 2)
                .into_response();
        }
        (AuthError::Missing, false) if rejection.header() == invoker_auth::IAP_ASSERTION => {
            Problem::new(
                StatusCode::UNAUTHORIZED,
                "an Identity-Aware Proxy assertion (X-Goog-IAP-JWT-Assertion) is required",
            )
        }
        (AuthError::Missing, false) => Problem::new(
            StatusCode::UNAUTHORIZED,
            "a bearer identity token is required",
        ),
        (AuthError::NotAllowed(who), _) => Problem::new(
            StatusCode::FORBIDDEN,
            format!("principal {who} is not allowed to call this service"),
        ),
        (e, true) => Problem::new(
            StatusCode::UNAUTHORIZED,
            format!("invalid forwarded end-user token (X-Forwarded-Authorization): {e}"),
        ),
        (e, false) if rejection.header() == invoker_auth::IAP_ASSERTION => Problem::new(
            StatusCode::UNAUTHORIZED,
            format!("invalid Identity-Aware Proxy assertion (X-Goog-IAP-JWT-Assertion): {e}"),
        ),
        (e, false) => Problem::new(
            StatusCode::UNAUTHORIZED,
            format!("invalid identity token: {e}"),
        ),
    };
    match www {
        Some(v) => p.with_header(header::WWW_AUTHENTICATE, v).into_response(),
        None => p.into_response(),
    }
}

/// Extractor yielding who called: the principal whose token the request carries and the end
/// user it acts for — both `None` only with `AUTH_MODE=off`. A route that [`protect`] did not
/// wrap answers 500 (a setup bug), never as an anonymous success.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// Whoever presented the request's token; `None` only with `AUTH_MODE=off`.
    pub identity: Option<Identity>,
    /// The end user a trusted forwarder acts for (a verified `X-Forwarded-Authorization`).
    pub on_behalf_of: Option<Identity>,
}

impl Caller {
    /// The principal's email, if authenticated.
    pub fn email(&self) -> Option<&str> {
        self.identity.as_ref().map(|p| p.email.as_str())
    }

    /// The email of the end user on whose behalf the principal acts, if any.
    pub fn on_behalf_of_email(&self) -> Option<&str> {
        self.on_behalf_of.as_ref().map(|p| p.email.as_str())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        if let Some(p) = parts.extensions.get::<invoker_auth::Principal>() {
            return Ok(Self {
                identity: Some(p.identity.clone()),
                on_behalf_of: p.on_behalf_of.clone(),
            });
        }
        if parts.extensions.get::<AuthDisabled>().is_some() {
            return Ok(Self::default());
        }
        tracing::error!("a handler asked for the caller on a route without authentication");
        Err(Problem::internal())
    }
}
