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

/// An AWS region name (`us-east-1`, `eu-west-1`, …): lower-case words joined by `-`,
/// ending in a number. Which regions an installation serves is configuration.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Region(String);

impl Region {
    pub fn parse(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split('-').collect();
        let ok = s.len() <= 32
            && parts.len() >= 3
            && parts[..parts.len() - 1]
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
            && parts
                .last()
                .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!("{s:?} is not a region name like us-east-1"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a resource lives and who may see it: an account in a region, as on AWS. Every
/// query on behalf of a caller is confined to one scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub account: AccountId,
    pub region: Region,
}

/// The AWS commercial regions: the default set an installation serves.
pub const AWS_COMMERCIAL_REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
];

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

    #[test]
    fn region_names() {
        for ok in AWS_COMMERCIAL_REGIONS {
            assert!(Region::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "us",
            "us-east",
            "US-EAST-1",
            "us-east-x",
            "us--1",
            "us east 1",
        ] {
            assert!(Region::parse(bad).is_err(), "{bad}");
        }
    }
}
