//! Typed identifiers.

use std::fmt;

use crate::error::Error;

/// Broker id on the wire: `b-` followed by a lowercase UUID, as Amazon MQ does.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BrokerId(String);

impl BrokerId {
    pub fn generate() -> Self {
        Self(format!("b-{}", uuid::Uuid::new_v4()))
    }

    /// Parses an id from a path label. Unknown shapes are "not found", not "bad request":
    /// a caller can't tell a malformed id from one that never existed.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let ok = s
            .strip_prefix("b-")
            .map(|u| uuid::Uuid::parse_str(u).is_ok() && u.len() == 36)
            .unwrap_or(false);
        if ok {
            Ok(Self(s.to_ascii_lowercase()))
        } else {
            Err(Error::broker_not_found(s))
        }
    }

    /// Trusted constructor for values read back from our own database.
    pub fn from_db(s: String) -> Self {
        Self(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BrokerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A 12-digit account id, owner of brokers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccountId(String);

impl AccountId {
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!("account id must be 12 digits, got {s:?}"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_ids_round_trip() {
        let id = BrokerId::generate();
        assert_eq!(BrokerId::parse(id.as_str()).unwrap(), id);
        assert!(BrokerId::parse("b-nope").is_err());
        assert!(BrokerId::parse("x-0b6f7e3c-9d5e-4f63-9a55-3c1a1d2f6b70").is_err());
    }

    #[test]
    fn account_ids_are_twelve_digits() {
        assert!(AccountId::parse("123456789012").is_ok());
        assert!(AccountId::parse("12345678901").is_err());
        assert!(AccountId::parse("12345678901a").is_err());
    }
}
