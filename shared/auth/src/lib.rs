#![cfg_attr(all(feature = "axum", feature = "fetch"), doc = include_str!("../README.md"))]
#![cfg_attr(
    not(all(feature = "axum", feature = "fetch")),
    doc = "Google-signed ID tokens on Cloud Run: verify them and fetch them. (Build the docs with the `axum` and `fetch` features for the full front page.)"
)]
//!
//! # Modules
//!
//! Each module owns one concern; none imports a module listed after it (no cycles; checked by
//! `scripts/check-module-cycles.py` in CI).
//!
//! - [`error`]: [`AuthError`], why a token or request was refused, with stable codes.
//! - [`clock`]: the one injectable wall clock ([`clock::SystemClock`], [`clock::TokioClock`]).
//! - [`claims`]: the claims read from a token's payload.
//! - [`identity`]: [`Identity`], the `email`/`hd` rules that make one from verified claims.
//! - [`allow_list`]: [`AllowList`] — exact emails and `*@domain` with the `hd` rule.
//! - [`bearer`]: header names and `Bearer` parsing.
//! - [`refresh`]: [`refresh::Refresher`], the one single-flight, refresh-ahead, backoff cache
//!   behind the key set and the token cache.
//! - [`verify`] (feature `verify`): [`verify::Verifier`], [`verify::KeySource`],
//!   [`verify::JwksCache`].
//! - [`authenticate`] (feature `verify`): [`Authenticator`] — header rule, allow-list,
//!   forwarded end users — yielding a [`Principal`] or a [`Rejection`].
//! - [`axum`] (feature `axum`): [`axum::AuthLayer`] and the extractors.
//! - [`fetch`] (feature `fetch`): [`fetch::TokenSource`], [`fetch::MetadataSource`],
//!   [`fetch::TokenCache`], [`fetch::IdToken::authorize`].
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `verify` | yes | token verification, key sets, [`Authenticator`] |
//! | `fetch` | yes | ID-token sources and their cache |
//! | `axum` | no | the tower layer and axum extractors |
//! | `google-cloud-auth` | no | key files, impersonation and gcloud users as token sources |
//!
//! The crate reads no environment variable and writes nothing but `tracing` events: settings,
//! log formats and error bodies belong to the program that uses it.

#![deny(missing_docs)]

pub mod allow_list;
pub mod bearer;
pub mod claims;
pub mod clock;
pub mod error;
pub mod identity;

#[cfg(any(feature = "verify", feature = "fetch"))]
pub mod refresh;

#[cfg(feature = "verify")]
pub mod authenticate;
#[cfg(feature = "verify")]
pub mod verify;

#[cfg(feature = "axum")]
pub mod axum;

#[cfg(feature = "fetch")]
pub mod fetch;

pub use allow_list::{AllowList, PatternError, PrincipalPattern};
pub use bearer::{FORWARDED_AUTHORIZATION, IAP_ASSERTION, SERVERLESS_AUTHORIZATION, bearer_token};
pub use claims::Claims;
pub use error::{AuthError, ErrorKind};
pub use identity::Identity;

#[cfg(feature = "verify")]
pub use authenticate::{
    Authenticator, AuthenticatorBuilder, END_USER_INVALID_TOKEN, ForwardedUsers, HeaderRule,
    IAP_SERVICE_AGENTS, IapUsers, Principal, Rejection,
};
#[cfg(feature = "axum")]
pub use axum::{AuthLayer, EndUser};
