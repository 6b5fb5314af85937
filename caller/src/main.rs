//! `caller` binary: config → telemetry → bind → serve (see `shared::binary::main`).

/// mimalloc instead of glibc's allocator: the request path allocates small, short-lived
/// buffers on every request, and glibc's `malloc`/`free` were a fifth of the chain's CPU
/// (bench/RESULTS.md has the comparison with jemalloc and glibc).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    shared::binary::main(
        "caller",
        caller::Config::help,
        caller::Config::from_source,
        |cfg, listener| caller::run(cfg, listener, shared::shutdown::signal()),
    )
}
