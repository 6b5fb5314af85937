//! The policy of one service (feature `verify`): which header carries the token, verification,
//! the `email` rules and the allow-list, then — from a trusted forwarder — the end user in
//! `X-Forwarded-Authorization`. [`Authenticator::authenticate`] turns a request's headers into
//! a [`Principal`] or a [`Rejection`].

use std::fmt;
use std::sync::Arc;

use http::HeaderMap;

use crate::allow_list::AllowList;
use crate::bearer::{FORWARDED_AUTHORIZATION, SERVERLESS_AUTHORIZATION, bearer_token};
use crate::error::{AuthError, ErrorKind};
use crate::identity::Identity;
use crate::verify::Verifier;

/// Which header carries the caller's token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum HeaderRule {
    /// `Authorization: Bearer …` only.
    #[default]
    Authorization,
    /// `X-Serverless-Authorization` when present, else `Authorization` — Cloud Run's own rule:
    /// when a request carries both, Cloud Run checks the first and passes `Authorization`
    /// through untouched for the application.
    ServerlessFirst,
}

/// Who called, once authenticated: the principal whose token the request carries and, when
/// that principal is a trusted forwarder, the end user it acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Whoever presented the request's token (verified, allowed).
    pub identity: Identity,
    /// The end user a trusted forwarder acts for (a verified `X-Forwarded-Authorization`).
    pub on_behalf_of: Option<Identity>,
}

impl Principal {
    /// The principal's verified email.
    pub fn email(&self) -> &str {
        &self.identity.email
    }

    /// The email of the end user on whose behalf the principal acts, if any.
    pub fn on_behalf_of_email(&self) -> Option<&str> {
        self.on_behalf_of.as_ref().map(|p| p.email.as_str())
    }
}

/// Why a request was refused, and where the refused token came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct Rejection {
    error: AuthError,
    header: &'static str,
    end_user: bool,
}

impl Rejection {
    /// A rejection of the token in `header` (lower-case name).
    pub fn new(error: AuthError, header: &'static str) -> Self {
        Self {
            error,
            header,
            end_user: false,
        }
    }

    fn end_user(error: AuthError) -> Self {
        Self {
            error,
            header: FORWARDED_AUTHORIZATION,
            end_user: true,
        }
    }

    /// Why.
    pub fn error(&self) -> &AuthError {
        &self.error
    }

    /// The header the refused token came from (lower-case), e.g. `authorization`.
    pub fn header(&self) -> &'static str {
        self.header
    }

    /// Whether the refused token is a forwarded end user's (not the caller's own).
    pub fn is_end_user(&self) -> bool {
        self.end_user
    }

    /// The HTTP class (401, 403, 503).
    pub fn kind(&self) -> ErrorKind {
        self.error.kind()
    }

    /// The stable reason code; end users' codes are prefixed `forwarded_`.
    pub fn code(&self) -> &'static str {
        if self.end_user {
            self.error.forwarded_code()
        } else {
            self.error.code()
        }
    }

    /// The `WWW-Authenticate` value RFC 6750 asks for: bare `Bearer` without credentials,
    /// `error="insufficient_scope"` for a principal not allowed, `error="invalid_token"` for
    /// any other refused token; `None` for 503.
    pub fn www_authenticate(&self) -> Option<&'static str> {
        match (&self.error, self.end_user) {
            (AuthError::KeysUnavailable(_), _) => None,
            (AuthError::Missing, false) => Some("Bearer"),
            (AuthError::NotAllowed(_), _) => Some("Bearer error=\"insufficient_scope\""),
            (_, true) => Some(END_USER_INVALID_TOKEN),
            _ => Some("Bearer error=\"invalid_token\""),
        }
    }
}

/// `WWW-Authenticate` of a refused end-user token: `error_description` tells a forwarder that
/// the refused token is its client's (in `X-Forwarded-Authorization`), not its own — so it
/// passes the refusal on instead of dropping its own token.
pub const END_USER_INVALID_TOKEN: &str = "Bearer error=\"invalid_token\", error_description=\"the end user's token in X-Forwarded-Authorization\"";

type AuthorizeFn = dyn Fn(&Identity) -> bool + Send + Sync;

#[derive(Clone)]
enum Authorize {
    List(AllowList),
    With(Arc<AuthorizeFn>),
}

/// Principals trusted to forward an end user's token in `X-Forwarded-Authorization`, and the
/// verifier for those tokens (their audience is the forwarder's, not this service's).
#[derive(Debug, Clone)]
pub struct ForwardedUsers {
    forwarders: AllowList,
    verifier: Verifier,
}

impl ForwardedUsers {
    /// End users forwarded by `forwarders`, verified by `verifier` (no allow-list: a trusted
    /// forwarder vouches for any verified Google user).
    pub fn new(forwarders: AllowList, verifier: Verifier) -> Self {
        Self {
            forwarders,
            verifier,
        }
    }

    /// The trusted forwarders.
    pub fn forwarders(&self) -> &AllowList {
        &self.forwarders
    }

    /// The verifier of end users' tokens.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }
}

/// The authentication policy of one service; cheap to clone.
///
/// ```no_run
/// # async fn f(headers: http::HeaderMap) {
/// use invoker_auth::{AllowList, Authenticator, verify::Verifier};
/// let auth = Authenticator::builder(Verifier::builder(["https://svc-abc-uc.a.run.app"]).build())
///     .allow(AllowList::parse(["caller@my-project.iam.gserviceaccount.com"]).unwrap())
///     .build();
/// match auth.authenticate(&headers).await {
///     Ok(principal) => println!("{} calls", principal.email()),
///     Err(rejection) => println!("refused ({}): {rejection}", rejection.code()),
/// }
/// # }
/// ```
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    verifier: Verifier,
    header: HeaderRule,
    authorize: Authorize,
    forwarded: Option<ForwardedUsers>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let authorize = match &self.inner.authorize {
            Authorize::List(l) => l.to_string(),
            Authorize::With(_) => "<function>".to_owned(),
        };
        f.debug_struct("Authenticator")
            .field("verifier", &self.inner.verifier)
            .field("header", &self.inner.header)
            .field("authorize", &authorize)
            .field("forwarded", &self.inner.forwarded)
            .finish()
    }
}

/// Builds an [`Authenticator`].
pub struct AuthenticatorBuilder {
    verifier: Verifier,
    header: HeaderRule,
    authorize: Authorize,
    forwarded: Option<ForwardedUsers>,
}

impl fmt::Debug for AuthenticatorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthenticatorBuilder")
            .finish_non_exhaustive()
    }
}

impl AuthenticatorBuilder {
    /// Which header carries the token (default [`HeaderRule::Authorization`]).
    pub fn header_rule(mut self, rule: HeaderRule) -> Self {
        self.header = rule;
        self
    }

    /// Who may call. Without this (or [`AuthenticatorBuilder::authorize_with`]) nobody may:
    /// any Google account can mint a token for any audience, so a verified token alone
    /// proves nothing about who should get in.
    pub fn allow(mut self, list: AllowList) -> Self {
        self.authorize = Authorize::List(list);
        self
    }

    /// Who may call, decided by a function of the verified identity (instead of
    /// [`AuthenticatorBuilder::allow`]).
    pub fn authorize_with<F>(mut self, f: F) -> Self
    where
        F: Fn(&Identity) -> bool + Send + Sync + 'static,
    {
        self.authorize = Authorize::With(Arc::new(f));
        self
    }

    /// Accept end users forwarded by trusted principals in `X-Forwarded-Authorization`.
    /// From any other principal the header is ignored.
    pub fn forwarded_users(mut self, forwarded: ForwardedUsers) -> Self {
        self.forwarded = Some(forwarded);
        self
    }

    /// The authenticator.
    pub fn build(self) -> Authenticator {
        Authenticator {
            inner: Arc::new(Inner {
                verifier: self.verifier,
                header: self.header,
                authorize: self.authorize,
                forwarded: self.forwarded,
            }),
        }
    }
}

impl Authenticator {
    /// A builder around `verifier` (which fixes the audiences, issuers and signature rule).
    pub fn builder(verifier: Verifier) -> AuthenticatorBuilder {
        AuthenticatorBuilder {
            verifier,
            header: HeaderRule::Authorization,
            authorize: Authorize::List(AllowList::new(Vec::new())),
            forwarded: None,
        }
    }

    /// The verifier of callers' tokens.
    pub fn verifier(&self) -> &Verifier {
        &self.inner.verifier
    }

    /// The header rule.
    pub fn header_rule(&self) -> HeaderRule {
        self.inner.header
    }

    /// The forwarded-user settings, if any.
    pub fn forwarded_users(&self) -> Option<&ForwardedUsers> {
        self.inner.forwarded.as_ref()
    }

    /// Whether tokens can be verified now (signing keys at hand, or fetched now).
    pub async fn ready(&self) -> bool {
        self.inner.verifier.ready().await
    }

    /// The header the rule picks for these headers, and its one value (`None` without one).
    ///
    /// A header that appears more than once is [`AuthError::Malformed`]: which copy a proxy
    /// checked and which one the application reads must never differ.
    #[allow(clippy::type_complexity)]
    fn token_header<'h>(
        &self,
        headers: &'h HeaderMap,
    ) -> (
        &'static str,
        Result<Option<&'h http::HeaderValue>, AuthError>,
    ) {
        let name = if self.inner.header == HeaderRule::ServerlessFirst
            && headers.contains_key(SERVERLESS_AUTHORIZATION)
        {
            SERVERLESS_AUTHORIZATION
        } else {
            "authorization"
        };
        let mut values = headers.get_all(name).iter();
        let first = values.next();
        if values.next().is_some() {
            return (
                name,
                Err(AuthError::Malformed("the header appears more than once")),
            );
        }
        (name, Ok(first))
    }

    /// The raw bearer token [`Authenticator::authenticate`] verifies for these headers, or
    /// `None` without a well-formed one. For forwarding the caller's proof once
    /// `authenticate` accepted it. Never log it.
    pub fn presented_token<'h>(&self, headers: &'h HeaderMap) -> Option<&'h str> {
        bearer_token(self.token_header(headers).1.ok()?).ok()
    }

    /// Authenticates a request by its headers: the caller's token (verified, its email well
    /// formed and verified, admitted by the allow-list), then the forwarded end user when the
    /// caller is a trusted forwarder and sent `X-Forwarded-Authorization`.
    ///
    /// # Errors
    /// A [`Rejection`] naming the reason and the header.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, Rejection> {
        let (name, value) = self.token_header(headers);
        let reject = |e| Rejection::new(e, name);
        let token = bearer_token(value.map_err(reject)?).map_err(reject)?;
        let claims = self.inner.verifier.verify(token).await.map_err(reject)?;
        let identity = Identity::from_claims(&claims).map_err(reject)?;
        let allowed = match &self.inner.authorize {
            Authorize::List(list) => list.admits(&identity),
            Authorize::With(f) => f(&identity),
        };
        if !allowed {
            return Err(reject(AuthError::NotAllowed(identity.email)));
        }
        let on_behalf_of = match &self.inner.forwarded {
            Some(f) if f.forwarders.admits(&identity) => forwarded_identity(f, headers).await?,
            _ => None,
        };
        Ok(Principal {
            identity,
            on_behalf_of,
        })
    }
}

/// The end user in `X-Forwarded-Authorization`, fully checked.
async fn forwarded_identity(
    f: &ForwardedUsers,
    headers: &HeaderMap,
) -> Result<Option<Identity>, Rejection> {
    let mut values = headers.get_all(FORWARDED_AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Rejection::end_user(AuthError::Malformed(
            "the header appears more than once",
        )));
    }
    let token = bearer_token(Some(value)).map_err(Rejection::end_user)?;
    let claims = f
        .verifier
        .verify(token)
        .await
        .map_err(Rejection::end_user)?;
    Identity::from_claims(&claims)
        .map(Some)
        .map_err(Rejection::end_user)
}
