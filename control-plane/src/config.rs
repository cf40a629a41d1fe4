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
    /// Brokers open TLS listeners (the endpoints Amazon MQ lists) with a certificate
    /// from the installation CA.
    pub tls_listeners: bool,
    /// Brokers also open plaintext listeners (amqp://, tcp://, ws://…), for local
    /// development; DescribeBroker lists them after the TLS ones.
    pub plaintext_listeners: bool,
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
    /// Active/standby: the active's agent not answering this long (a paused or hung
    /// container that still holds the store's lock) gets the container killed, so the
    /// standby takes over.
    pub hung_after_ms: u64,
    /// Engine images are `<prefix>/<engine>:<version>` (default `berth`, as
    /// `images/build.sh`'s `BERTH_IMAGE_PREFIX`).
    pub image_prefix: Option<String>,
    /// HTTP: a new connection must send its first request head within this long, and a
    /// later request its head within this long of its first byte; else it is closed.
    pub http_header_timeout_ms: u64,
    /// HTTP: a request body must have arrived this long after its head, else 408.
    pub http_body_timeout_ms: u64,
    /// HTTP: a kept-alive connection with no next request (or a response the client
    /// stops reading) is closed after this long.
    pub http_idle_timeout_ms: u64,
    /// HTTP: most client connections at once (lowered to fit the descriptor limit). When
    /// all are taken, the one waiting longest for a request head makes room.
    pub http_max_connections: usize,
    /// Base64 of a 32-byte key encrypting secrets at rest; default: `data_dir/master.key`.
    pub master_key: Option<String>,
    /// Leave the private Postgres running when `berth serve` exits (by default it is
    /// stopped, if that run started it).
    pub keep_database_running: bool,
    /// URL users reach Berth at (e.g. behind a TLS proxy). When it is https, session
    /// cookies are always `Secure`.
    pub public_url: Option<String>,
    /// Lifetime of a console session token; a request past half of it gets a new one.
    pub session_ttl_secs: u64,
    /// Longest a console session lives, however often its token is refreshed.
    pub session_max_lifetime_secs: u64,
    /// Failed console logins allowed per username and per source address within
    /// `login_failure_window_secs`; more are answered 429 with `Retry-After`.
    pub login_max_failures: usize,
    pub login_failure_window_secs: u64,
    /// How often engine logs are collected from every node's agent (0: never).
    pub logs_interval_ms: u64,
    /// Collected log lines older than this are removed.
    pub logs_max_age_hours: u64,
    /// Most collected log lines kept per broker (the oldest go first).
    pub logs_max_lines: u64,
    /// How often alarms are evaluated (`app::alarms`); 0 turns the evaluator off.
    pub alarm_eval_interval_secs: u64,
    /// How often the webhook worker looks for due deliveries; 0 turns it off.
    pub webhook_poll_ms: u64,
    /// Longest a webhook receiver may take to answer one delivery.
    pub webhook_timeout_ms: u64,
    /// Most deliveries in flight at once.
    pub webhook_concurrency: usize,
    /// Attempts before a delivery is given up (FAILED).
    pub webhook_max_attempts: u32,
    /// Retry backoff: base × 2^(attempt-1), at most max.
    pub webhook_backoff_base_ms: u64,
    pub webhook_backoff_max_ms: u64,
    /// How often usage is metered (`app::metering`); 0 turns metering off.
    pub metering_interval_secs: u64,
    /// JSON price list (`{"instanceHour": {...}, "storageGbMonth": {...}}`); default:
    /// built-in us-east-1 list prices.
    pub price_list_file: Option<PathBuf>,
    /// How often the metric collector asks every serving node's agent for a sample
    /// (`GET /metrics`); 0 turns collection off.
    pub metrics_interval_ms: u64,
    /// Longest one agent's `GET /metrics` may take before it counts as a failure.
    pub metrics_timeout_ms: u64,
    /// Agents asked at once by a collection pass.
    pub metrics_concurrency: usize,
    /// How often roll-ups (1 minute, 1 hour) and retention run; 0 turns them off.
    pub metrics_rollup_interval_ms: u64,
    /// Raw samples are kept this long (and queries with a period under 60 s reach back
    /// this far).
    pub metrics_raw_retention_secs: u64,
    /// 1-minute roll-ups are kept this long.
    pub metrics_minute_retention_secs: u64,
    /// 1-hour roll-ups are kept this long.
    pub metrics_hour_retention_secs: u64,
    /// Bearer token of the Prometheus routes (`/metrics`, `/v1/berth/prometheus/…`);
    /// unset: those routes answer 404.
    pub metrics_token: Option<String>,
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
            .field("tls_listeners", &self.tls_listeners)
            .field("plaintext_listeners", &self.plaintext_listeners)
            .field("port_range", &(self.port_range_start..=self.port_range_end))
            .field("create_timeout_secs", &self.create_timeout_secs)
            .field("unhealthy_after_secs", &self.unhealthy_after_secs)
            .field("reconcile_interval_ms", &self.reconcile_interval_ms)
            .field("hung_after_ms", &self.hung_after_ms)
            .field("image_prefix", &self.image_prefix)
            .field("http_header_timeout_ms", &self.http_header_timeout_ms)
            .field("http_body_timeout_ms", &self.http_body_timeout_ms)
            .field("http_idle_timeout_ms", &self.http_idle_timeout_ms)
            .field("http_max_connections", &self.http_max_connections)
            .field(
                "master_key",
                &self.master_key.as_ref().map(|_| "<redacted>"),
            )
            .field("keep_database_running", &self.keep_database_running)
            .field("public_url", &self.public_url)
            .field("session_ttl_secs", &self.session_ttl_secs)
            .field("session_max_lifetime_secs", &self.session_max_lifetime_secs)
            .field("login_max_failures", &self.login_max_failures)
            .field("login_failure_window_secs", &self.login_failure_window_secs)
            .field("logs_interval_ms", &self.logs_interval_ms)
            .field("logs_max_age_hours", &self.logs_max_age_hours)
            .field("logs_max_lines", &self.logs_max_lines)
            .field("alarm_eval_interval_secs", &self.alarm_eval_interval_secs)
            .field("webhook_poll_ms", &self.webhook_poll_ms)
            .field("webhook_timeout_ms", &self.webhook_timeout_ms)
            .field("webhook_concurrency", &self.webhook_concurrency)
            .field("webhook_max_attempts", &self.webhook_max_attempts)
            .field("webhook_backoff_base_ms", &self.webhook_backoff_base_ms)
            .field("webhook_backoff_max_ms", &self.webhook_backoff_max_ms)
            .field("metering_interval_secs", &self.metering_interval_secs)
            .field("price_list_file", &self.price_list_file)
            .field("metrics_interval_ms", &self.metrics_interval_ms)
            .field("metrics_timeout_ms", &self.metrics_timeout_ms)
            .field("metrics_concurrency", &self.metrics_concurrency)
            .field(
                "metrics_rollup_interval_ms",
                &self.metrics_rollup_interval_ms,
            )
            .field(
                "metrics_raw_retention_secs",
                &self.metrics_raw_retention_secs,
            )
            .field(
                "metrics_minute_retention_secs",
                &self.metrics_minute_retention_secs,
            )
            .field(
                "metrics_hour_retention_secs",
                &self.metrics_hour_retention_secs,
            )
            .field(
                "metrics_token",
                &self.metrics_token.as_ref().map(|_| "<redacted>"),
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
            tls_listeners: true,
            plaintext_listeners: false,
            port_range_start: 21000,
            port_range_end: 29999,
            create_timeout_secs: 300,
            unhealthy_after_secs: 60,
            reconcile_interval_ms: 1000,
            hung_after_ms: 2000,
            image_prefix: None,
            http_header_timeout_ms: 10_000,
            http_body_timeout_ms: 30_000,
            http_idle_timeout_ms: 60_000,
            http_max_connections: 1024,
            master_key: None,
            keep_database_running: false,
            public_url: None,
            session_ttl_secs: 15 * 60,
            session_max_lifetime_secs: 12 * 3600,
            login_max_failures: 5,
            login_failure_window_secs: 5 * 60,
            logs_interval_ms: 30_000,
            logs_max_age_hours: 24 * 14,
            logs_max_lines: 200_000,
            alarm_eval_interval_secs: 60,
            webhook_poll_ms: 1000,
            webhook_timeout_ms: 5000,
            webhook_concurrency: 8,
            webhook_max_attempts: 8,
            webhook_backoff_base_ms: 1000,
            webhook_backoff_max_ms: 10 * 60 * 1000,
            metering_interval_secs: 300,
            price_list_file: None,
            metrics_interval_ms: 60_000,
            metrics_timeout_ms: 10_000,
            metrics_concurrency: 16,
            metrics_rollup_interval_ms: 60_000,
            metrics_raw_retention_secs: 6 * 3600,
            metrics_minute_retention_secs: 15 * 86_400,
            metrics_hour_retention_secs: 455 * 86_400,
            metrics_token: None,
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

    /// Whether session cookies are always `Secure` (the public URL is https).
    pub fn public_url_is_https(&self) -> bool {
        self.public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
    }

    /// How long metric history is kept at each resolution.
    pub fn metrics_retention(&self) -> crate::observe::collector::Retention {
        use std::time::Duration;
        crate::observe::collector::Retention {
            raw: Duration::from_secs(self.metrics_raw_retention_secs),
            minute: Duration::from_secs(self.metrics_minute_retention_secs),
            hour: Duration::from_secs(self.metrics_hour_retention_secs),
        }
    }

    /// The listeners brokers open.
    pub fn listeners(&self) -> crate::domain::profile::Listeners {
        crate::domain::profile::Listeners {
            tls: self.tls_listeners,
            plaintext: self.plaintext_listeners,
        }
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
        anyhow::ensure!(
            self.tls_listeners || self.plaintext_listeners,
            "at least one of tls_listeners and plaintext_listeners must be on"
        );
        let regions = crate::app::Regions::parse(&self.regions).map_err(anyhow::Error::msg)?;
        anyhow::ensure!(
            regions.get(&self.region).is_some(),
            "region {} is not one of the served regions {:?}",
            self.region,
            self.regions
        );
        for (name, value) in [
            ("http_header_timeout_ms", self.http_header_timeout_ms),
            ("http_body_timeout_ms", self.http_body_timeout_ms),
            ("http_idle_timeout_ms", self.http_idle_timeout_ms),
        ] {
            anyhow::ensure!(value > 0, "{name} must be positive");
        }
        anyhow::ensure!(
            self.http_max_connections > 0,
            "http_max_connections must be positive"
        );
        if let Some(p) = &self.image_prefix {
            // What images/build.sh accepts for BERTH_IMAGE_PREFIX.
            let ok = p.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._/-".contains(c));
            anyhow::ensure!(ok, "image_prefix {p:?} must match [a-z0-9][a-z0-9._/-]*");
        }
        anyhow::ensure!(
            self.session_ttl_secs > 0 && self.session_max_lifetime_secs >= self.session_ttl_secs,
            "session_ttl_secs must be positive and at most session_max_lifetime_secs"
        );
        anyhow::ensure!(
            self.login_max_failures > 0 && self.login_failure_window_secs > 0,
            "login_max_failures and login_failure_window_secs must be positive"
        );
        anyhow::ensure!(
            self.logs_max_age_hours > 0 && self.logs_max_lines > 0,
            "logs_max_age_hours and logs_max_lines must be positive"
        );
        anyhow::ensure!(
            self.webhook_timeout_ms > 0
                && self.webhook_concurrency > 0
                && self.webhook_max_attempts > 0
                && self.webhook_backoff_base_ms > 0
                && self.webhook_backoff_max_ms >= self.webhook_backoff_base_ms,
            "webhook_timeout_ms, webhook_concurrency, webhook_max_attempts and webhook_backoff_base_ms must be positive, webhook_backoff_max_ms at least the base"
        );
        anyhow::ensure!(
            self.metrics_timeout_ms > 0 && self.metrics_concurrency > 0,
            "metrics_timeout_ms and metrics_concurrency must be positive"
        );
        anyhow::ensure!(
            self.metrics_raw_retention_secs >= 60
                && self.metrics_minute_retention_secs >= self.metrics_raw_retention_secs
                && self.metrics_hour_retention_secs >= self.metrics_minute_retention_secs,
            "metric retention must be at least 60 s and grow from raw to 1-minute to 1-hour"
        );
        if let Some(t) = &self.metrics_token {
            anyhow::ensure!(
                t.len() >= 16,
                "metrics_token must be at least 16 characters"
            );
        }
        if let Some(url) = &self.public_url {
            anyhow::ensure!(
                url.starts_with("https://") || url.starts_with("http://"),
                "public_url must be an http:// or https:// URL, got {url:?}"
            );
        }
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
    fn zero_http_limits_are_refused() {
        assert!(Settings::default().validate().is_ok());
        for tweak in [
            (|s: &mut Settings| s.http_header_timeout_ms = 0) as fn(&mut Settings),
            |s| s.http_body_timeout_ms = 0,
            |s| s.http_idle_timeout_ms = 0,
            |s| s.http_max_connections = 0,
        ] {
            let mut s = Settings::default();
            tweak(&mut s);
            assert!(s.validate().is_err(), "{s:?}");
        }
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
