//! Entry point of the broker agent (PID 1 in a Berth broker container).
//!
//! Sets up plain-text logging to stdout (no ANSI: `docker logs` is read by people and
//! tools) and runs [`broker_agent::run::run`]. A spec that is missing or invalid, or
//! any other start-up error, ends the process with exit code 2 and a clear message,
//! before any engine is started.

use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_ansi(false)
        .with_target(false)
        .with_writer(std::io::stdout)
        .with_env_filter(
            EnvFilter::try_from_env("BERTH_AGENT_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        let settings = broker_agent::run::Settings::from_env()?;
        broker_agent::run::run(settings).await
    });
    // Do not wait for lingering blocking tasks (e.g. a stuck pipe read).
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("broker agent cannot run: {e:#}");
            ExitCode::from(2)
        }
    }
}
