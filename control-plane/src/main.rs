//! `berth`: runs the control plane (default) or administrative subcommands.

use clap::{Parser, Subcommand};

/// mimalloc: the server's per-request allocations cost a fifth of its CPU with glibc's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use berth::app::identity;
use berth::app::{AppContext, Role};
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
        /// admin, operator or viewer.
        #[arg(long, default_value = "admin")]
        role: String,
    },
    /// List an account's access keys (never their secrets).
    ListKeys {
        #[arg(long)]
        account: Option<String>,
    },
    /// Deactivate an access key: requests signed with it are refused at once.
    DeactivateKey {
        access_key_id: String,
        #[arg(long)]
        account: Option<String>,
    },
    /// Activate a deactivated access key again.
    ActivateKey {
        access_key_id: String,
        #[arg(long)]
        account: Option<String>,
    },
    /// Delete an access key.
    DeleteKey {
        access_key_id: String,
        #[arg(long)]
        account: Option<String>,
    },
    /// Create a console user; the password is read from $BERTH_CONSOLE_PASSWORD, or
    /// generated and printed once.
    CreateConsoleUser {
        username: String,
        /// admin, operator or viewer.
        #[arg(long, default_value = "viewer")]
        role: String,
        #[arg(long)]
        account: Option<String>,
    },
    /// Set a console user's password (ends its sessions); read from
    /// $BERTH_CONSOLE_PASSWORD, or generated and printed once.
    SetConsolePassword {
        username: String,
        #[arg(long)]
        account: Option<String>,
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
            if let Some(path) = app.bootstrap_console_user(&settings).await? {
                println!(
                    "Created the console admin: sign in at {url}/ as `admin` with the password in {}",
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
            role,
        } => {
            let account = account_of(&settings, account)?;
            let role = Role::parse(&role, "role")?;
            let ctx = context(&settings).await?;
            let key = berth::app::accounts::access_key_issue_with_role(
                &ctx,
                &account,
                &description,
                role,
            )
            .await?;
            println!("account:               {account}");
            println!("role:                  {role}");
            println!("aws_access_key_id:     {}", key.access_key_id);
            println!("aws_secret_access_key: {}", key.secret_access_key);
            Ok(())
        }
        Command::ListKeys { account } => {
            let account = account_of(&settings, account)?;
            let ctx = context(&settings).await?;
            println!(
                "{:<22} {:<8} {:<7} {:<26} description",
                "access key id", "role", "active", "created"
            );
            for k in identity::access_key_list_unchecked(&ctx, &account).await? {
                println!(
                    "{:<22} {:<8} {:<7} {:<26} {}",
                    k.access_key_id,
                    k.role,
                    k.active,
                    berth::wire::timestamp(k.created_at),
                    k.description
                );
            }
            Ok(())
        }
        Command::DeactivateKey {
            access_key_id,
            account,
        } => {
            let account = account_of(&settings, account)?;
            let ctx = context(&settings).await?;
            identity::access_key_set_active_unchecked(&ctx, &account, &access_key_id, false)
                .await?;
            println!("deactivated {access_key_id}");
            Ok(())
        }
        Command::ActivateKey {
            access_key_id,
            account,
        } => {
            let account = account_of(&settings, account)?;
            let ctx = context(&settings).await?;
            identity::access_key_set_active_unchecked(&ctx, &account, &access_key_id, true).await?;
            println!("activated {access_key_id}");
            Ok(())
        }
        Command::DeleteKey {
            access_key_id,
            account,
        } => {
            let account = account_of(&settings, account)?;
            let ctx = context(&settings).await?;
            identity::access_key_delete_unchecked(&ctx, &account, &access_key_id).await?;
            println!("deleted {access_key_id}");
            Ok(())
        }
        Command::CreateConsoleUser {
            username,
            role,
            account,
        } => {
            let account = account_of(&settings, account)?;
            let role = Role::parse(&role, "role")?;
            let (password, generated) = console_password();
            let ctx = context(&settings).await?;
            let user =
                identity::console_user_create_unchecked(&ctx, &account, &username, &password, role)
                    .await?;
            println!("account:  {account}");
            println!("username: {}", user.username);
            println!("role:     {}", user.role);
            if generated {
                println!("password: {password}");
            }
            Ok(())
        }
        Command::SetConsolePassword { username, account } => {
            let account = account_of(&settings, account)?;
            let (password, generated) = console_password();
            let ctx = context(&settings).await?;
            identity::console_user_update_unchecked(
                &ctx,
                &account,
                &username,
                None,
                Some(&password),
            )
            .await?;
            println!("password of {username} changed; its sessions ended");
            if generated {
                println!("password: {password}");
            }
            Ok(())
        }
        Command::DatabaseUrl => {
            println!("{}", berth::startup::database_url(&settings).await?);
            Ok(())
        }
    }
}

/// The account given, or the configured default.
fn account_of(settings: &Settings, account: Option<String>) -> anyhow::Result<AccountId> {
    AccountId::parse(account.as_deref().unwrap_or(&settings.default_account_id))
        .map_err(anyhow::Error::msg)
}

/// The application layer on the configured database, without a server.
async fn context(settings: &Settings) -> anyhow::Result<AppContext> {
    let url = berth::startup::database_url(settings).await?;
    berth::startup::offline_context(settings, &url).await
}

/// `$BERTH_CONSOLE_PASSWORD`, or a generated password (true: print it once).
fn console_password() -> (String, bool) {
    match std::env::var("BERTH_CONSOLE_PASSWORD") {
        Ok(p) if !p.is_empty() => (p, false),
        _ => (identity::random_password(), true),
    }
}
