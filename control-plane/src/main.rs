//! `berth`: runs the control plane (default) or administrative subcommands.

use clap::{Parser, Subcommand};

use berth::config::Settings;
use berth::domain::AccountId;
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
    /// Issue an access key for an account (created if needed) and print it once.
    CreateAccessKey {
        /// 12-digit account id; default: the configured default account.
        #[arg(long)]
        account: Option<String>,
        /// Free text kept with the key.
        #[arg(long, default_value = "issued with berth create-access-key")]
        description: String,
    },
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
            if let Some(path) = app.bootstrap_credentials(&settings, &url).await? {
                println!(
                    "Created the admin access key: profile `berth` in {}",
                    path.display()
                );
            }
            let dir = std::path::absolute(&settings.data_dir)?;
            println!("Berth is up: API {url}/v1/  console {url}/  health {url}/healthz");
            println!(
                "Try: AWS_SHARED_CREDENTIALS_FILE={d}/credentials AWS_CONFIG_FILE={d}/config aws --profile berth mq list-brokers --endpoint-url {url}",
                d = dir.display()
            );
            app.run_until_stopped().await
        }
        Command::CreateAccessKey {
            account,
            description,
        } => {
            let account =
                AccountId::parse(account.as_deref().unwrap_or(&settings.default_account_id))
                    .map_err(anyhow::Error::msg)?;
            let url = berth::startup::database_url(&settings).await?;
            let ctx = berth::startup::offline_context(&settings, &url).await?;
            let key = berth::app::accounts::access_key_issue(&ctx, &account, &description).await?;
            println!("account:               {account}");
            println!("aws_access_key_id:     {}", key.access_key_id);
            println!("aws_secret_access_key: {}", key.secret_access_key);
            Ok(())
        }
        Command::DatabaseUrl => {
            println!("{}", berth::startup::database_url(&settings).await?);
            Ok(())
        }
    }
}
