//! `called` binary: config → telemetry → bind → serve (see `shared::server::service_main`).

fn main() -> std::process::ExitCode {
    shared::server::service_main(
        "called",
        called::Config::help,
        called::Config::from_source,
        |cfg, listener| called::run(cfg, listener, shared::shutdown::signal()),
    )
}
