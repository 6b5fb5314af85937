//! `caller` binary: config → telemetry → bind → serve (see `shared::server::service_main`).

fn main() -> std::process::ExitCode {
    shared::server::service_main(
        "caller",
        caller::Config::help,
        caller::Config::from_source,
        |cfg, listener| caller::run(cfg, listener, shared::shutdown::signal()),
    )
}
