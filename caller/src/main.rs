//! `caller` binary: config → telemetry → bind → serve (see `shared::binary::main`).

fn main() -> std::process::ExitCode {
    shared::binary::main(
        "caller",
        caller::Config::help,
        caller::Config::from_source,
        |cfg, listener| caller::run(cfg, listener, shared::shutdown::signal()),
    )
}
