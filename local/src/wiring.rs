//! The settings that connect the chain: `called` and `caller` verifying tokens against the
//! emulator's key set, and `caller` fetching its tokens from the emulator by the
//! metadata-server protocol. Shared by the `local` binary, the test kit and the benchmark.

use std::net::SocketAddr;

use emulator::JWKS_PATH;
use shared::config::MapSource;

/// Setting pairs (`NAME`, value), in the order they are applied.
pub type Pairs = Vec<(&'static str, String)>;

/// The emulator's key-set URL.
pub fn jwks_url(emulator: SocketAddr) -> String {
    format!("http://{emulator}{JWKS_PATH}")
}

/// `called` with full verification: tokens for `audience` signed by the emulator's keys, from
/// `principal` only.
pub fn called_verifying(audience: &str, principal: &str, emulator: SocketAddr) -> Pairs {
    vec![
        ("AUTH_MODE", "verify".into()),
        ("AUTH_AUDIENCES", audience.to_owned()),
        ("AUTH_ALLOWED_PRINCIPALS", principal.to_owned()),
        ("AUTH_JWKS_URL", jwks_url(emulator)),
    ]
}

/// `caller` protected like [`called_verifying`] (only `user`, at `audience`), fetching ID
/// tokens from the emulator at `emulator` and forwarding to `called_url`.
pub fn caller_verifying(
    audience: &str,
    user: &str,
    emulator: SocketAddr,
    called_url: &str,
) -> Pairs {
    let mut pairs = called_verifying(audience, user, emulator);
    pairs.extend([
        ("TOKEN_SOURCE", "metadata".into()),
        ("CALLED_URL", called_url.to_owned()),
        ("GCE_METADATA_HOST", emulator.to_string()),
    ]);
    pairs
}

/// `called` trusting `forwarder` (the caller's service account) to forward its end user's
/// identity, whose tokens are for `caller_audience` (the caller's URL).
pub fn forwarding(forwarder: &str, caller_audience: &str) -> Pairs {
    vec![
        ("AUTH_FORWARDERS", forwarder.to_owned()),
        ("AUTH_FORWARDED_AUDIENCES", caller_audience.to_owned()),
    ]
}

/// `pairs` as a source, with `extra` set on top (replacing what `pairs` set).
pub fn source(pairs: &[(&str, String)], extra: &[(&str, &str)]) -> MapSource {
    let mut src = MapSource::default();
    for (k, v) in pairs {
        src = src.with(k, v.clone());
    }
    for (k, v) in extra {
        src = src.with(k, *v);
    }
    src
}
