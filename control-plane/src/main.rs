//! `berth`: runs the control plane (default) or administrative subcommands.

use clap::{Parser, Subcommand};

use berth::config::Settings;
use berth::startup::Application;

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "Managed message brokers on your Docker host, Amazon MQ-compatible"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API server and reconciler in the foreground (the default).
    Serve,
    /// Print the database URL Berth would use (starting the embedded Postgres if needed).
    DatabaseUrl,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    berth::telemetry::init();
    let cli = Cli::parse();
    let settings = Settings::load()?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = Application::build(settings.clone()).await?;
            let url = format!("http://{}:{}", settings.listen.ip(), app.port());
            println!("Berth is up: API {url}/v1/  console {url}/  health {url}/healthz");
            println!(
                "Try: aws mq list-brokers --endpoint-url {url} --region {} --no-sign-request",
                settings.region
            );
            app.run_until_stopped().await
        }
        Command::DatabaseUrl => {
            println!("{}", berth::startup::database_url(&settings).await?);
            Ok(())
        }
    }
}
