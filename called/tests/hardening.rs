//! Issue 12 items 1 and 6 against the real `called` binary: settings that would accept
//! anyone's unsigned token, or fetch signing keys in cleartext from a remote host, stop the
//! process with exit status 2 before it binds, naming the variable.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn called(env: &[(&str, &str)]) -> std::process::Output {
    let dir = std::env::temp_dir().join(format!("called-hardening-{}", std::process::id()));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_called"));
    cmd.env_clear()
        .env("PORT", "0")
        .env(
            "DATABASE_URL",
            format!("sqlite://{}/called.db", dir.display()),
        )
        .env("AUTH_AUDIENCES", "https://called.example")
        .env("AUTH_ALLOW_ANY_PRINCIPAL", "true")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run called");
    // Bounded: a binary that accepted the settings would serve forever.
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!("called started instead of exiting 2: {out:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// Runs `called` with `env`: it must exit 2 before binding, naming each of `names` on stderr.
fn refuses_to_start(env: &[(&str, &str)], names: &[&str]) {
    let out = called(env);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    for name in names {
        assert!(stderr.contains(name), "{stderr}");
    }
}

#[test]
fn platform_mode_without_cloud_run_refuses_to_start() {
    refuses_to_start(
        &[("AUTH_MODE", "platform")],
        &["AUTH_MODE", "AUTH_PLATFORM_TRUSTED"],
    );
}

#[test]
fn cleartext_key_set_url_to_a_remote_host_refuses_to_start() {
    refuses_to_start(
        &[("AUTH_JWKS_URL", "http://keys.example.com/certs")],
        &["AUTH_JWKS_URL", "ALLOW_INSECURE_HTTP"],
    );
}

#[test]
fn forwarders_without_forwarded_audiences_refuse_to_start() {
    refuses_to_start(
        &[("AUTH_FORWARDERS", "caller@p.iam.gserviceaccount.com")],
        &["AUTH_FORWARDED_AUDIENCES"],
    );
}
