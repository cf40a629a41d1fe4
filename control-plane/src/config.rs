//! Typed, layered configuration: built-in defaults < TOML file < environment.
//!
//! The file is `$BERTH_CONFIG` if set, else `berth.toml` in the working directory if it
//! exists. Environment variables are `BERTH_<FIELD>` (e.g. `BERTH_LISTEN`,
//! `BERTH_DATA_DIR`), plus the conventional `DATABASE_URL`.

use std::net::SocketAddr;
use std::path::PathBuf;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize)]
pub struct Settings {
    /// Address the API listens on.
    pub listen: SocketAddr,
    /// Where Berth keeps its private Postgres, master key and credentials.
    pub data_dir: PathBuf,
    /// External Postgres; when unset Berth runs a private one under `data_dir/postgres`.
    pub database_url: Option<String>,
    /// How long a request waits for a database connection before it is answered 503
    /// `ServiceUnavailable` (with `Retry-After`); also bounds `/healthz`.
    pub database_timeout_ms: u64,
    /// Region of the `berth` profile written on first start; one of `regions`.
    pub region: String,
    /// Regions this installation serves (default: AWS's commercial regions). Resources
    /// belong to the region they were created in; a request signed for a region not
    /// listed here is refused.
    pub regions: Vec<String>,
    /// Account that owns resources until access keys arrive.
    pub default_account_id: String,
    /// Host address broker ports are published on.
    pub publish_host: String,
    /// Host name or address put in broker endpoints.
    pub advertised_host: String,
    /// Inclusive range Berth allocates broker host ports from.
    pub port_range_start: u16,
    pub port_range_end: u16,
    /// A broker whose engine is not ready after this long becomes CREATION_FAILED.
    pub create_timeout_secs: u64,
    /// A RUNNING broker whose engine fails its health check this long becomes
    /// CRITICAL_ACTION_REQUIRED (and RUNNING again once it recovers).
    pub unhealthy_after_secs: u64,
    /// How often the reconciler looks at every broker, even without a nudge.
    pub reconcile_interval_ms: u64,
    /// Base64 of a 32-byte key encrypting secrets at rest; default: `data_dir/master.key`.
    pub master_key: Option<String>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("database_url", &self.database_url.as_ref().map(|_| "<set>"))
            .field("database_timeout_ms", &self.database_timeout_ms)
            .field("region", &self.region)
            .field("regions", &self.regions)
            .field("default_account_id", &self.default_account_id)
            .field("publish_host", &self.publish_host)
            .field("advertised_host", &self.advertised_host)
            .field("port_range", &(self.port_range_start..=self.port_range_end))
            .field("create_timeout_secs", &self.create_timeout_secs)
            .field("unhealthy_after_secs", &self.unhealthy_after_secs)
            .field("reconcile_interval_ms", &self.reconcile_interval_ms)
            .field(
                "master_key",
                &self.master_key.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: ([127, 0, 0, 1], 8080).into(),
            data_dir: PathBuf::from(".berth"),
            database_url: None,
            database_timeout_ms: 1500,
            region: "us-east-1".into(),
            regions: crate::domain::ids::AWS_COMMERCIAL_REGIONS
                .iter()
                .map(|r| (*r).to_owned())
                .collect(),
            default_account_id: "000000000000".into(),
            publish_host: "127.0.0.1".into(),
            advertised_host: "127.0.0.1".into(),
            port_range_start: 21000,
            port_range_end: 29999,
            create_timeout_secs: 300,
            unhealthy_after_secs: 60,
            reconcile_interval_ms: 1000,
            master_key: None,
        }
    }
}

impl Settings {
    /// Loads defaults < file < environment.
    pub fn load() -> anyhow::Result<Self> {
        let mut fig = Figment::from(Serialized::defaults(Settings::default()));
        match std::env::var_os("BERTH_CONFIG") {
            Some(path) => fig = fig.merge(Toml::file_exact(PathBuf::from(path))),
            None => fig = fig.merge(Toml::file("berth.toml")),
        }
        fig = fig
            .merge(Env::prefixed("BERTH_").ignore(&["CONFIG"]))
            .merge(
                Env::raw()
                    .only(&["DATABASE_URL"])
                    .map(|_| "database_url".into()),
            );
        let settings: Settings = fig.extract()?;
        settings.validate()?;
        Ok(settings)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.port_range_start > 1024 && self.port_range_start <= self.port_range_end,
            "port range {}..={} is invalid",
            self.port_range_start,
            self.port_range_end
        );
        crate::domain::AccountId::parse(&self.default_account_id).map_err(anyhow::Error::msg)?;
        anyhow::ensure!(
            self.database_timeout_ms > 0,
            "database_timeout_ms must be positive"
        );
        let regions = crate::app::Regions::parse(&self.regions).map_err(anyhow::Error::msg)?;
        anyhow::ensure!(
            regions.get(&self.region).is_some(),
            "region {} is not one of the served regions {:?}",
            self.region,
            self.regions
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API fixes the error type
    fn env_overrides_file_overrides_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "berth.toml",
                "listen = \"127.0.0.1:9000\"\nregion = \"eu-west-1\"",
            )?;
            jail.set_env("BERTH_LISTEN", "127.0.0.1:9100");
            jail.set_env("DATABASE_URL", "postgres://x@127.0.0.1/db");
            let s = Settings::load().map_err(|e| e.to_string())?;
            assert_eq!(s.listen.port(), 9100);
            assert_eq!(s.region, "eu-west-1");
            assert_eq!(s.database_url.as_deref(), Some("postgres://x@127.0.0.1/db"));
            assert_eq!(s.data_dir, PathBuf::from(".berth"));
            Ok(())
        });
    }

    #[test]
    fn bad_port_range_is_refused() {
        let s = Settings {
            port_range_start: 30000,
            port_range_end: 20000,
            ..Settings::default()
        };
        assert!(s.validate().is_err());
    }
}
