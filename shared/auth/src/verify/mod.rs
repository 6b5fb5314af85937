//! Verifying tokens (feature `verify`): [`Verifier`] for one token's signature and claims, the
//! [`KeySource`] it takes keys from, and [`JwksCache`], Google's key set over HTTPS.

mod keys;
mod memo;
mod verifier;

pub use keys::{
    Algorithm, DEFAULT_MAX_AGE, DEFAULT_MAX_STALE, FAILURE_BACKOFF, FETCH_TIMEOUT, GOOGLE_JWKS_URL,
    IAP_JWKS_URL, JwksCache, JwksCacheBuilder, KeyFuture, KeySource, MAX_KEY_SET_BYTES,
    MAX_MAX_AGE, MIN_MAX_AGE, REVALIDATE_AFTER, ReadyFuture, StaticKeys, UNKNOWN_KID_COOLDOWN,
    VerificationKey, freshness,
};
pub use memo::MemoLimits;
pub use verifier::{
    GOOGLE_ISSUERS, IAP_ISSUER, IAP_LEEWAY, IAP_MAX_LIFETIME, MAX_TOKEN_LEN, STRIPPED_SIGNATURE,
    Signature, TokenKind, Verifier, VerifierBuilder, unverified_aud_iss,
};
