//! `called` binary: config → telemetry → bind → serve (see `shared::binary::main`).

fn main() -> std::process::ExitCode {
    shared::binary::main(
        "called",
        called::Config::help,
        called::Config::from_source,
        |cfg, listener| called::run(cfg, listener, shared::shutdown::signal()),
    )
}
