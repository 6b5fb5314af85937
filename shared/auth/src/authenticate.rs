//! The policy of one service (feature `verify`): which header carries the token, verification,
//! the `email` rules and the allow-list, then — from a trusted forwarder — the end user in
//! `X-Forwarded-Authorization`. [`Authenticator::authenticate`] turns a request's headers into
//! a [`Principal`] or a [`Rejection`].

use std::fmt;
use std::sync::Arc;

use http::HeaderMap;

use crate::allow_list::AllowList;
use crate::bearer::{
    FORWARDED_AUTHORIZATION, IAP_ASSERTION, SERVERLESS_AUTHORIZATION, bearer_token,
};
use crate::error::{AuthError, ErrorKind};
use crate::identity::Identity;
use crate::verify::{IAP_ISSUER, TokenKind, Verifier, unverified_aud_iss};

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

/// Longest presented `aud` / `iss` a [`Rejection`] keeps (in bytes, cut on a character
/// boundary): enough for any real audience, bounded for a hostile one.
pub const MAX_PRESENTED_CLAIM: usize = 256;

/// Why a request was refused, where the refused token came from and — for the log, never
/// for the client — what it claimed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct Rejection {
    error: AuthError,
    header: &'static str,
    end_user: bool,
    presented: Option<Box<Presented>>,
}

/// What a refused token claimed (unverified) and, for a wrong audience, what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Presented {
    aud: String,
    iss: String,
    expected_aud: Vec<String>,
}

impl Rejection {
    /// A rejection of the token in `header` (lower-case name).
    pub fn new(error: AuthError, header: &'static str) -> Self {
        Self {
            error,
            header,
            end_user: false,
            presented: None,
        }
    }

    fn end_user(error: AuthError) -> Self {
        Self {
            header: FORWARDED_AUTHORIZATION,
            end_user: true,
            ..Self::new(error, FORWARDED_AUTHORIZATION)
        }
    }

    /// Notes what `token` claimed (its `aud` and `iss`, unverified, cut to
    /// [`MAX_PRESENTED_CLAIM`] bytes) and, when the refusal is a wrong audience, what
    /// `verifier` expected. Only on the refusal path: a success costs nothing.
    fn presenting(mut self, token: &str, verifier: &Verifier) -> Self {
        if let Some((aud, iss)) = unverified_aud_iss(token) {
            let expected_aud = if self.error == AuthError::Audience {
                verifier.audiences().to_vec()
            } else {
                Vec::new()
            };
            self.presented = Some(Box::new(Presented {
                aud: cut(aud),
                iss: cut(iss),
                expected_aud,
            }));
        }
        self
    }

    /// The `aud` the refused token claimed, when it could be decoded. UNVERIFIED (anyone can
    /// write anything there): for logs that help fix a wrong audience, escaped; never for
    /// decisions, never for the client.
    pub fn presented_audience(&self) -> Option<&str> {
        self.presented.as_deref().map(|p| p.aud.as_str())
    }

    /// The `iss` the refused token claimed, when it could be decoded. UNVERIFIED, as
    /// [`Rejection::presented_audience`].
    pub fn presented_issuer(&self) -> Option<&str> {
        self.presented.as_deref().map(|p| p.iss.as_str())
    }

    /// For [`AuthError::Audience`]: the audiences the verifier accepts (empty otherwise).
    pub fn expected_audiences(&self) -> &[String] {
        self.presented
            .as_deref()
            .map_or(&[], |p| p.expected_aud.as_slice())
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

/// Cuts `s` to at most [`MAX_PRESENTED_CLAIM`] bytes on a character boundary.
fn cut(mut s: String) -> String {
    if s.len() > MAX_PRESENTED_CLAIM {
        let mut end = MAX_PRESENTED_CLAIM;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

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
    iap: Option<Verifier>,
}

impl ForwardedUsers {
    /// End users forwarded by `forwarders`, verified by `verifier` (no allow-list: a trusted
    /// forwarder vouches for any verified Google user).
    pub fn new(forwarders: AllowList, verifier: Verifier) -> Self {
        Self {
            forwarders,
            verifier,
            iap: None,
        }
    }

    /// Also accept forwarded Identity-Aware Proxy assertions (a forwarder behind IAP passes on
    /// the person's signed header), verified by `iap` (built with [`Verifier::iap`]; its
    /// audiences are the forwarder's IAP audiences). A forwarded token whose `iss` is
    /// [`IAP_ISSUER`] goes to `iap`, any other to the ID-token verifier; each then checks
    /// everything, the issuer included.
    pub fn with_iap(mut self, iap: Verifier) -> Self {
        self.iap = Some(iap);
        self
    }

    /// The verifier for `token`: IAP's for an IAP assertion (when configured), else the
    /// ID-token verifier. The choice reads the unverified `iss`; the chosen verifier checks it.
    fn verifier_for(&self, token: &str) -> &Verifier {
        match &self.iap {
            Some(iap) if unverified_aud_iss(token).is_some_and(|(_, iss)| iss == IAP_ISSUER) => iap,
            _ => &self.verifier,
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

/// Any of Google's Identity-Aware Proxy service agents
/// (`service-PROJECT_NUMBER@gcp-sa-iap.iam.gserviceaccount.com`), as an allow-list entry.
pub const IAP_SERVICE_AGENTS: &str = "*@gcp-sa-iap.iam.gserviceaccount.com";

/// People behind Identity-Aware Proxy: the end user is the person in a verified
/// `X-Goog-IAP-JWT-Assertion`, and the service's allow-list applies to that person.
///
/// IAP on a Cloud Run service passes Cloud Run's IAM check with an ID token of IAP's own
/// service agent (in `X-Serverless-Authorization`, signature stripped). That token is never
/// taken for the person. With [`IapUsers::require_proxy_token`] it must be present, pass the
/// service's verifier and belong to `proxies` (proof the request came through Cloud Run's
/// check); without it, no other header is read (IAP on a load balancer, where the assertion
/// is the only proof). The unsigned `X-Goog-Authenticated-User-*` headers are never read.
#[derive(Debug, Clone)]
pub struct IapUsers {
    verifier: Verifier,
    proxies: Option<AllowList>,
}

impl IapUsers {
    /// People whose assertions `verifier` (built with [`Verifier::iap`]) accepts.
    ///
    /// # Panics
    /// When `verifier` is not an IAP verifier (a setup bug: an ID-token verifier would take
    /// the wrong identity rules).
    pub fn new(verifier: Verifier) -> Self {
        assert_eq!(
            verifier.kind(),
            TokenKind::IapAssertion,
            "IapUsers needs a verifier built with Verifier::iap"
        );
        Self {
            verifier,
            proxies: None,
        }
    }

    /// Also require the proxy's own token under the authenticator's header rule, verified by
    /// the authenticator's verifier, from a principal `proxies` admits (for IAP on Cloud Run:
    /// `AllowList::parse([IAP_SERVICE_AGENTS])`). A refused proxy token is refused like any
    /// caller's token (401, or 403 for another principal).
    pub fn require_proxy_token(mut self, proxies: AllowList) -> Self {
        self.proxies = Some(proxies);
        self
    }

    /// The verifier of assertions.
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
    iap: Option<IapUsers>,
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
            .field("iap", &self.inner.iap)
            .finish()
    }
}

/// Builds an [`Authenticator`].
pub struct AuthenticatorBuilder {
    verifier: Verifier,
    header: HeaderRule,
    authorize: Authorize,
    forwarded: Option<ForwardedUsers>,
    iap: Option<IapUsers>,
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

    /// Take the person from Identity-Aware Proxy's signed header (see [`IapUsers`]): the
    /// allow-list then applies to that person, and [`Principal::identity`] is the person.
    pub fn iap_users(mut self, iap: IapUsers) -> Self {
        self.iap = Some(iap);
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
                iap: self.iap,
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
            iap: None,
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

    /// The IAP settings, if any.
    pub fn iap_users(&self) -> Option<&IapUsers> {
        self.inner.iap.as_ref()
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
        (name, single(headers, name))
    }

    /// The raw token that proves who the user is for these headers, or `None` without a
    /// well-formed one: the bearer token under the header rule, or with [`IapUsers`] the IAP
    /// assertion. For forwarding the user's proof once `authenticate` accepted it. Never log it.
    pub fn presented_token<'h>(&self, headers: &'h HeaderMap) -> Option<&'h str> {
        if self.inner.iap.is_some() {
            return single(headers, IAP_ASSERTION).ok()??.to_str().ok();
        }
        bearer_token(self.token_header(headers).1.ok()?).ok()
    }

    fn admits(&self, identity: &Identity) -> bool {
        match &self.inner.authorize {
            Authorize::List(list) => list.admits(identity),
            Authorize::With(f) => f(identity),
        }
    }

    /// The principal (with IAP: the proxy) whose token the header rule picks, verified and
    /// admitted by `admits`.
    async fn caller_identity(
        &self,
        headers: &HeaderMap,
        admits: impl Fn(&Identity) -> bool,
    ) -> Result<Identity, Rejection> {
        let (name, value) = self.token_header(headers);
        let reject = |e| Rejection::new(e, name);
        let token = bearer_token(value.map_err(reject)?).map_err(reject)?;
        let verifier = &self.inner.verifier;
        let refuse = |e| Rejection::new(e, name).presenting(token, verifier);
        let claims = verifier.verify(token).await.map_err(refuse)?;
        let identity = verifier.identity(&claims).map_err(refuse)?;
        if !admits(&identity) {
            return Err(refuse(AuthError::NotAllowed(identity.email)));
        }
        Ok(identity)
    }

    /// The person behind IAP: the proxy's token when required, then the assertion, then the
    /// allow-list on the person.
    async fn iap_person(
        &self,
        iap: &IapUsers,
        headers: &HeaderMap,
    ) -> Result<Principal, Rejection> {
        if let Some(proxies) = &iap.proxies {
            self.caller_identity(headers, |proxy| proxies.admits(proxy))
                .await?;
        }
        let reject = |e| Rejection::new(e, IAP_ASSERTION);
        let token = single(headers, IAP_ASSERTION)
            .map_err(reject)?
            .ok_or(AuthError::Missing)
            .map_err(reject)?
            .to_str()
            .map_err(|_| reject(AuthError::Malformed("the header is not visible ASCII")))?;
        let verifier = &iap.verifier;
        let refuse = |e| Rejection::new(e, IAP_ASSERTION).presenting(token, verifier);
        let claims = verifier.verify(token).await.map_err(refuse)?;
        let person = verifier.identity(&claims).map_err(refuse)?;
        if !self.admits(&person) {
            return Err(refuse(AuthError::NotAllowed(person.email)));
        }
        Ok(Principal {
            identity: person,
            on_behalf_of: None,
        })
    }

    /// Authenticates a request by its headers: the caller's token (verified, its email well
    /// formed and verified, admitted by the allow-list), then the forwarded end user when the
    /// caller is a trusted forwarder and sent `X-Forwarded-Authorization`.
    ///
    /// # Errors
    /// A [`Rejection`] naming the reason and the header.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, Rejection> {
        if let Some(iap) = &self.inner.iap {
            return self.iap_person(iap, headers).await;
        }
        let identity = self.caller_identity(headers, |i| self.admits(i)).await?;
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

/// The one value of `name`, `None` without one; a repeated header is
/// [`AuthError::Malformed`] (which copy a proxy checked and which one is read must never differ).
fn single<'h>(
    headers: &'h HeaderMap,
    name: &'static str,
) -> Result<Option<&'h http::HeaderValue>, AuthError> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(AuthError::Malformed("the header appears more than once"));
    }
    Ok(first)
}

/// The end user in `X-Forwarded-Authorization`, fully checked: an ID token, or (with
/// [`ForwardedUsers::with_iap`]) an IAP assertion under IAP's rules.
async fn forwarded_identity(
    f: &ForwardedUsers,
    headers: &HeaderMap,
) -> Result<Option<Identity>, Rejection> {
    let Some(value) = single(headers, FORWARDED_AUTHORIZATION).map_err(Rejection::end_user)? else {
        return Ok(None);
    };
    let token = bearer_token(Some(value)).map_err(Rejection::end_user)?;
    let verifier = f.verifier_for(token);
    let refuse = |e| Rejection::end_user(e).presenting(token, verifier);
    let claims = verifier.verify(token).await.map_err(refuse)?;
    verifier.identity(&claims).map(Some).map_err(refuse)
}
