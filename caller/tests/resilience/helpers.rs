//! What only this suite needs from the kit's pieces: the real `caller` binary as a child.

use testkit::child::Spec;
use testkit::emu::{Emu, USER};

/// The real `caller` binary on `port`: protected (only [`USER`], audience
/// `http://127.0.0.1:PORT`), tokens from the emulator, forwarding to `called_base`.
pub fn caller_spec(emu: &Emu, port: u16, called_base: &str) -> Spec {
    Spec::new(env!("CARGO_BIN_EXE_caller"), &[]).with_all(&testkit::wiring::caller_verifying(
        &format!("http://127.0.0.1:{port}"),
        USER,
        emu.addr,
        called_base,
    ))
}
