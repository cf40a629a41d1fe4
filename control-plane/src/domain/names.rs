//! Names and secrets with the Amazon MQ rules applied at construction.

use std::fmt;

use crate::error::Error;

/// Broker name: 1–50 characters of letters, digits, `-`, `.`, `_` and `~`; unique per
/// account and region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerName(String);

impl BrokerName {
    pub fn parse(s: &str) -> Result<Self, Error> {
        if s.is_empty() || s.chars().count() > 50 {
            return Err(Error::bad_request(
                "brokerName",
                "Broker name must be between 1 and 50 characters long.",
            ));
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~'))
        {
            return Err(Error::bad_request(
                "brokerName",
                "Broker name may contain only letters, digits, hyphens, periods, underscores and tildes.",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn from_db(s: String) -> Self {
        Self(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BrokerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A broker user name. RabbitMQ: 2–100 of letters, digits, `-` `.` `_`, never `guest`.
/// ActiveMQ additionally allows `~`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Username(String);

impl Username {
    pub fn parse_rabbitmq(s: &str, attribute: &str) -> Result<Self, Error> {
        Self::parse_with(s, attribute, false)
    }

    pub fn parse_activemq(s: &str, attribute: &str) -> Result<Self, Error> {
        Self::parse_with(s, attribute, true)
    }

    fn parse_with(s: &str, attribute: &str, allow_tilde: bool) -> Result<Self, Error> {
        let len = s.chars().count();
        if !(2..=100).contains(&len) {
            return Err(Error::bad_request(
                attribute,
                "Username must be between 2 and 100 characters long.",
            ));
        }
        let ok = s.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_') || (allow_tilde && c == '~')
        });
        if !ok {
            let allowed = if allow_tilde {
                "letters, digits, hyphens, periods, underscores and tildes"
            } else {
                "letters, digits, hyphens, periods and underscores"
            };
            return Err(Error::bad_request(
                attribute,
                format!("Username may contain only {allowed}."),
            ));
        }
        if !allow_tilde && s.eq_ignore_ascii_case("guest") {
            return Err(Error::bad_request(
                attribute,
                "The username guest is reserved and cannot be used.",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn from_db(s: String) -> Self {
        Self(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A broker user's password: at least 12 characters (at most 250), at least 4 distinct
/// characters, and none of `,` `:` `=`. Never printed: `Debug` and `Display` redact it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn parse(s: &str, attribute: &str) -> Result<Self, Error> {
        let len = s.chars().count();
        if !(12..=250).contains(&len) {
            return Err(Error::bad_request(
                attribute,
                "Password must be between 12 and 250 characters long.",
            ));
        }
        let mut distinct: Vec<char> = s.chars().collect();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() < 4 {
            return Err(Error::bad_request(
                attribute,
                "Password must contain at least 4 unique characters.",
            ));
        }
        if s.contains([',', ':', '=']) {
            return Err(Error::bad_request(
                attribute,
                "Password must not contain commas, colons, or equal signs.",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn from_db(s: String) -> Self {
        Self(s)
    }

    /// The clear text, for encryption at rest and for handing to the agent only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_name_rules() {
        assert!(BrokerName::parse("my-broker_1").is_ok());
        assert!(BrokerName::parse("my.broker~2").is_ok());
        assert!(BrokerName::parse("").is_err());
        assert!(BrokerName::parse(&"a".repeat(51)).is_err());
        assert!(BrokerName::parse(&"a".repeat(50)).is_ok());
        for bad in ["a b", "a*", "a/b", "ä", "a[1]", "a:b"] {
            assert!(BrokerName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn username_rules() {
        assert!(Username::parse_rabbitmq("admin.user-1_x", "u").is_ok());
        assert!(Username::parse_rabbitmq("a", "u").is_err());
        assert!(Username::parse_rabbitmq("guest", "u").is_err());
        assert!(Username::parse_rabbitmq("a~b", "u").is_err());
        assert!(Username::parse_activemq("a~b", "u").is_ok());
        assert!(Username::parse_rabbitmq(&"a".repeat(101), "u").is_err());
    }

    #[test]
    fn password_rules() {
        assert!(Password::parse("correct-horse-battery", "p").is_ok());
        assert!(Password::parse("short", "p").is_err());
        assert!(Password::parse("aaaaaaaaaaaaaaab", "p").is_err());
        assert!(Password::parse("abcdefghijkl,", "p").is_err());
        assert!(Password::parse("abcdefghijkl:", "p").is_err());
        assert!(Password::parse("abcdefghijkl=", "p").is_err());
        assert!(Password::parse(&"abcd".repeat(63), "p").is_err());
    }

    #[test]
    fn password_is_redacted() {
        let p = Password::parse("correct-horse-battery", "p").unwrap();
        assert!(!format!("{p:?}").contains("horse"));
    }
}
