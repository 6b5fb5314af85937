//! The settings that connect the chain: `called` and `caller` verifying tokens against the
//! emulator's key set, and `caller` fetching its tokens from the emulator by the
//! metadata-server protocol; and the chain behind an IAP front ([`iap_front`]). Shared by the
//! `local` binary, the test kit and the benchmark.

use std::net::SocketAddr;

use emulator::{IAP_JWKS_PATH, JWKS_PATH};
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

/// The project number of the IAP front's audience and service agent
/// (`service-000000000000@gcp-sa-iap.iam.gserviceaccount.com`).
pub const IAP_PROJECT_NUMBER: &str = "000000000000";

/// The IAP audience of the caller behind the local IAP front, shaped as IAP's audience of a
/// Cloud Run service: `/projects/000000000000/locations/local/services/caller`.
pub fn iap_audience() -> String {
    emulator::iap_cloud_run_audience(IAP_PROJECT_NUMBER, "local", "caller")
}

/// The emulator's IAP key set (JWKS), where Google serves IAP's.
pub fn iap_jwks_url(emulator: SocketAddr) -> String {
    format!("http://{emulator}{IAP_JWKS_PATH}")
}

/// The settings of the chain behind an IAP front, applied on top of [`caller_verifying`] and
/// [`called_verifying`] + [`forwarding`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IapFrontWiring {
    /// caller: behind Cloud Run's IAM check (`platform`, trusted off Cloud Run), the service
    /// agent's token for its URL, the person from IAP's assertion for `iap_audience`, checked
    /// against `people`.
    pub caller: Pairs,
    /// called: forwarded end-user tokens for the caller's URL or IAP assertions for the IAP
    /// audience, IAP's keys from the emulator.
    pub called: Pairs,
}

/// The chain behind an IAP front: `caller_url` (the caller's URL, the `aud` of the service
/// agent's token), `iap_audience` (the `aud` of IAP's assertions), `people` (allow-list syntax:
/// who may use the caller), IAP's keys from the emulator at `emulator`.
pub fn iap_front(
    caller_url: &str,
    iap_audience: &str,
    people: &str,
    emulator: SocketAddr,
) -> IapFrontWiring {
    IapFrontWiring {
        caller: vec![
            ("AUTH_MODE", "platform".into()),
            ("AUTH_PLATFORM_TRUSTED", "true".into()),
            ("AUTH_AUDIENCES", caller_url.to_owned()),
            ("AUTH_IAP_AUDIENCES", iap_audience.to_owned()),
            ("AUTH_IAP_JWKS_URL", iap_jwks_url(emulator)),
            ("AUTH_ALLOWED_PRINCIPALS", people.to_owned()),
        ],
        called: vec![
            (
                "AUTH_FORWARDED_AUDIENCES",
                format!("{caller_url},{iap_audience}"),
            ),
            ("AUTH_IAP_JWKS_URL", iap_jwks_url(emulator)),
        ],
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use shared::config::Source;

    #[test]
    fn the_iap_front_settings_override_the_verifying_ones() {
        let emu: SocketAddr = "127.0.0.1:8085".parse().expect("addr");
        let caller = "http://127.0.0.1:8080";
        let iap = iap_front(caller, &iap_audience(), "alice@example.com", emu);
        let mut pairs = caller_verifying(caller, "developer@example.com", emu, "http://c");
        pairs.extend(iap.caller);
        let src = source(&pairs, &[]);
        for (name, want) in [
            ("AUTH_MODE", "platform"),
            ("AUTH_PLATFORM_TRUSTED", "true"),
            ("AUTH_AUDIENCES", caller),
            (
                "AUTH_IAP_AUDIENCES",
                "/projects/000000000000/locations/local/services/caller",
            ),
            (
                "AUTH_IAP_JWKS_URL",
                "http://127.0.0.1:8085/iap/verify/public_key-jwk",
            ),
            ("AUTH_ALLOWED_PRINCIPALS", "alice@example.com"),
            ("CALLED_URL", "http://c"),
        ] {
            assert_eq!(src.get(name).as_deref(), Some(want), "{name}");
        }
        let mut pairs = called_verifying("http://c", "sa@x", emu);
        pairs.extend(forwarding("sa@x", caller));
        pairs.extend(iap.called);
        let src = source(&pairs, &[]);
        assert_eq!(
            src.get("AUTH_FORWARDED_AUDIENCES").as_deref(),
            Some("http://127.0.0.1:8080,/projects/000000000000/locations/local/services/caller")
        );
        assert_eq!(src.get("AUTH_FORWARDERS").as_deref(), Some("sa@x"));
    }
}
