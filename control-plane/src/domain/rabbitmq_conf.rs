//! Validation of RabbitMQ configuration revisions (`rabbitmq.conf` / cuttlefish syntax).
//!
//! A configuration revision is merged into the `rabbitmq.conf` the agent renders. An
//! unknown key would stop RabbitMQ from booting (cuttlefish rejects it), and some keys
//! belong to Berth (listeners, users, memory, clustering, logging). So only keys on an
//! allow-list with a value of the right shape are kept; everything else is removed and
//! reported as a sanitization warning, as Amazon MQ does.

use crate::error::Error;

/// Why an entry was removed (`SanitizationWarningReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WarningReason {
    DisallowedElementRemoved,
    InvalidAttributeValueRemoved,
}

impl WarningReason {
    pub fn as_wire(self) -> &'static str {
        match self {
            Self::DisallowedElementRemoved => "DISALLOWED_ELEMENT_REMOVED",
            Self::InvalidAttributeValueRemoved => "INVALID_ATTRIBUTE_VALUE_REMOVED",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub reason: WarningReason,
    pub key: String,
}

#[derive(Clone, Copy)]
enum Kind {
    /// Integer in an inclusive range.
    Int(i64, i64),
    /// Integer in range, or `infinity`.
    IntOrInfinity(i64, i64),
    /// Float in an inclusive range.
    Float(f64, f64),
    /// Bytes: an integer, optionally with a unit (kB, MB, GB, KiB, MiB, GiB).
    Size,
    Bool,
    OneOf(&'static [&'static str]),
    /// A short name: letters, digits, `.`, `_`, `-`.
    Name,
}

/// Keys a tenant may set, with the shape of their value.
const ALLOWED: &[(&str, Kind)] = &[
    ("consumer_timeout", Kind::Int(0, 604_800_000)),
    ("heartbeat", Kind::Int(0, 3600)),
    ("handshake_timeout", Kind::Int(1000, 600_000)),
    ("channel_max", Kind::Int(0, 65_535)),
    ("channel_max_per_node", Kind::IntOrInfinity(1, 10_000_000)),
    ("connection_max", Kind::IntOrInfinity(1, 10_000_000)),
    ("frame_max", Kind::Int(4096, 2_147_483_647)),
    ("max_message_size", Kind::Int(1, 536_870_912)),
    ("disk_free_limit.absolute", Kind::Size),
    ("disk_free_limit.relative", Kind::Float(0.0, 10.0)),
    ("collect_statistics_interval", Kind::Int(1000, 3_600_000)),
    (
        "management.rates_mode",
        Kind::OneOf(&["none", "basic", "detailed"]),
    ),
    (
        "queue_leader_locator",
        Kind::OneOf(&["client-local", "balanced"]),
    ),
    ("cluster_name", Kind::Name),
    ("tcp_listen_options.backlog", Kind::Int(1, 65_535)),
    ("tcp_listen_options.nodelay", Kind::Bool),
    ("tcp_listen_options.keepalive", Kind::Bool),
    ("num_acceptors.tcp", Kind::Int(1, 1024)),
    ("mqtt.prefetch", Kind::Int(1, 65_535)),
    (
        "mqtt.max_session_expiry_interval_seconds",
        Kind::IntOrInfinity(0, 4_294_967_295),
    ),
    ("stomp.default_vhost", Kind::OneOf(&["/"])),
];

fn valid(kind: Kind, v: &str) -> bool {
    let int_in = |lo: i64, hi: i64| v.parse::<i64>().is_ok_and(|n| (lo..=hi).contains(&n));
    match kind {
        Kind::Int(lo, hi) => int_in(lo, hi),
        Kind::IntOrInfinity(lo, hi) => v == "infinity" || int_in(lo, hi),
        Kind::Float(lo, hi) => v
            .parse::<f64>()
            .is_ok_and(|f| f.is_finite() && (lo..=hi).contains(&f)),
        Kind::Size => {
            let digits = v.trim_end_matches(|c: char| c.is_ascii_alphabetic());
            let unit = &v[digits.len()..];
            digits.parse::<u64>().is_ok()
                && ["", "kB", "MB", "GB", "KiB", "MiB", "GiB"].contains(&unit)
        }
        Kind::Bool => v == "true" || v == "false",
        Kind::OneOf(options) => options.contains(&v),
        Kind::Name => {
            !v.is_empty()
                && v.len() <= 64
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        }
    }
}

/// Parses and sanitizes a revision. Returns the text to store (comments and allowed
/// entries, one `key = value` per line) and what was removed. A line that is not
/// `key = value` is a 400: the caller sent something that is not cuttlefish at all.
pub fn sanitize(text: &str) -> Result<(String, Vec<Warning>), Error> {
    let mut kept = String::new();
    let mut warnings = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            kept.push_str(line);
            kept.push('\n');
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(Error::bad_request(
                "data",
                format!("Line {} is not of the form `key = value`: {line:?}.", n + 1),
            ));
        };
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(Error::bad_request(
                "data",
                format!("Line {} has an invalid key {key:?}.", n + 1),
            ));
        }
        match ALLOWED.iter().find(|(k, _)| *k == key) {
            None => warnings.push(Warning {
                reason: WarningReason::DisallowedElementRemoved,
                key: key.to_owned(),
            }),
            Some((_, kind)) if !valid(*kind, value) => warnings.push(Warning {
                reason: WarningReason::InvalidAttributeValueRemoved,
                key: key.to_owned(),
            }),
            Some(_) => {
                if seen.iter().any(|k| k == key) {
                    return Err(Error::bad_request(
                        "data",
                        format!("Key {key} appears more than once."),
                    ));
                }
                seen.push(key.to_owned());
                kept.push_str(&format!("{key} = {value}\n"));
            }
        }
    }
    Ok((kept, warnings))
}

/// Revision 1 of every new RabbitMQ configuration.
pub const DEFAULT_RABBITMQ_CONF: &str = "\
# Berth default configuration for RabbitMQ.
# Entries are merged into rabbitmq.conf at the next reboot. Listeners, users, memory
# limits and logging are managed by Berth and are removed if set here.
consumer_timeout = 1800000
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_allowed_keys_and_reports_the_rest() {
        let (kept, warnings) = sanitize(
            "# mine\nheartbeat = 30\nlisteners.tcp.default = 1234\nbogus.key = 1\nconsumer_timeout = -5\nconnection_max = infinity\n",
        )
        .unwrap();
        assert_eq!(kept, "# mine\nheartbeat = 30\nconnection_max = infinity\n");
        assert_eq!(
            warnings,
            vec![
                Warning {
                    reason: WarningReason::DisallowedElementRemoved,
                    key: "listeners.tcp.default".into()
                },
                Warning {
                    reason: WarningReason::DisallowedElementRemoved,
                    key: "bogus.key".into()
                },
                Warning {
                    reason: WarningReason::InvalidAttributeValueRemoved,
                    key: "consumer_timeout".into()
                },
            ]
        );
    }

    #[test]
    fn rejects_what_is_not_cuttlefish() {
        assert_eq!(
            sanitize("heartbeat 30").unwrap_err().attribute(),
            Some("data")
        );
        assert!(sanitize("heartbeat = 1\nheartbeat = 2").is_err());
        assert!(sanitize("bad key = 1").is_err());
    }

    #[test]
    fn value_shapes() {
        assert!(
            valid(Kind::Size, "2GB") && valid(Kind::Size, "1000000") && !valid(Kind::Size, "2XB")
        );
        assert!(valid(Kind::Float(0.0, 10.0), "1.5") && !valid(Kind::Float(0.0, 10.0), "NaN"));
        assert!(sanitize(DEFAULT_RABBITMQ_CONF).unwrap().1.is_empty());
    }
}
