//! Berth's engine catalogue: what can be created, with which limits.
//!
//! This is the single source of truth for engine versions (and the image each runs
//! from), instance types (and the CPU/memory limits Berth enforces for them),
//! storage types and deployment modes. `CreateBroker` validation and (later)
//! `DescribeBrokerEngineTypes` / `DescribeBrokerInstanceOptions` read from here.

use std::fmt;

use crate::error::Error;

/// The error for a stored value this build does not know.
pub(crate) fn corrupt(what: &str, value: &str) -> Error {
    Error::internal(
        "reading a stored row",
        anyhow::anyhow!("unknown {what} {value:?} in the database"),
    )
}

macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident, $attr:literal { $($variant:ident => $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_wire(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }

            /// Parses the wire value; an unknown value is a 400 naming the field.
            pub fn parse(s: &str) -> Result<Self, Error> {
                match s {
                    $($wire => Ok($name::$variant),)+
                    other => Err(Error::bad_request(
                        $attr,
                        format!(
                            "{} is not a valid {}. Valid values: {}.",
                            other,
                            $attr,
                            [$($wire),+].join(", ")
                        ),
                    )),
                }
            }

            /// Parses a request value case-insensitively, as Amazon MQ does (its
            /// Terraform documentation writes `engine_type = "RabbitMQ"`, `storage_type
            /// = "efs"`); answers are always in upper case.
            pub fn parse_request(s: &str) -> Result<Self, Error> {
                Self::parse(&s.to_ascii_uppercase())
            }

            /// Parses a value read back from the database: one we do not know is a
            /// corrupt row, an internal error for that row only (never a panic).
            pub fn from_db(s: &str) -> Result<Self, Error> {
                Self::parse(s).map_err(|_| corrupt($attr, s))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_wire())
            }
        }
    };
}

wire_enum!(
    /// Message broker engine.
    EngineType, "engineType" { Activemq => "ACTIVEMQ", Rabbitmq => "RABBITMQ" }
);

wire_enum!(
    /// How many nodes, and how they cooperate.
    DeploymentMode, "deploymentMode" {
        SingleInstance => "SINGLE_INSTANCE",
        ActiveStandbyMultiAz => "ACTIVE_STANDBY_MULTI_AZ",
        ClusterMultiAz => "CLUSTER_MULTI_AZ",
    }
);

wire_enum!(
    /// Storage backing the engine's data directory (both are Docker named volumes here).
    StorageType, "storageType" { Ebs => "EBS", Efs => "EFS" }
);

/// An engine version Berth can build and run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineVersion {
    pub engine: EngineType,
    /// Version string on the wire (`engineVersion`).
    pub name: &'static str,
    /// Exact upstream version shipped in the image.
    pub full: &'static str,
    /// Docker image that runs it (built by `images/build.sh`).
    pub image: &'static str,
    /// Debian release whose packages it comes from.
    pub debian_suite: &'static str,
    /// Instance type families it runs on (name prefixes), as on Amazon MQ: RabbitMQ 4
    /// runs on Graviton (m7g) only, RabbitMQ 3.10 and ActiveMQ on t3.micro and m5.
    pub families: &'static [&'static str],
    /// Deployment modes this version runs (clusters need RabbitMQ 4.x here).
    pub modes: &'static [DeploymentMode],
}

const M7G: &[&str] = &["mq.m7g."];
const T3_M5: &[&str] = &["mq.t3.", "mq.m5."];
const SINGLE: &[DeploymentMode] = &[DeploymentMode::SingleInstance];
const ACTIVE_STANDBY: &[DeploymentMode] = &[
    DeploymentMode::SingleInstance,
    DeploymentMode::ActiveStandbyMultiAz,
];
const CLUSTER: &[DeploymentMode] = &[
    DeploymentMode::SingleInstance,
    DeploymentMode::ClusterMultiAz,
];

/// Versions Berth can run today (every version Debian ships), newest first per engine.
/// Images are built from Debian packages on first use (`images/build.sh`).
pub const ENGINE_VERSIONS: &[EngineVersion] = &[
    EngineVersion {
        engine: EngineType::Activemq,
        name: "5.17",
        full: "5.17.6",
        image: "berth/activemq:5.17",
        debian_suite: "trixie",
        families: T3_M5,
        modes: ACTIVE_STANDBY,
    },
    EngineVersion {
        engine: EngineType::Rabbitmq,
        name: "4.3",
        full: "4.3.6",
        image: "berth/rabbitmq:4.3",
        debian_suite: "forky",
        families: M7G,
        modes: CLUSTER,
    },
    EngineVersion {
        engine: EngineType::Rabbitmq,
        name: "4.0",
        full: "4.0.5",
        image: "berth/rabbitmq:4.0",
        debian_suite: "trixie",
        families: M7G,
        modes: CLUSTER,
    },
    EngineVersion {
        engine: EngineType::Rabbitmq,
        name: "3.10",
        full: "3.10.8",
        image: "berth/rabbitmq:3.10",
        debian_suite: "bookworm",
        families: T3_M5,
        modes: SINGLE,
    },
];

impl EngineVersion {
    /// The image under another name prefix (`images/build.sh`'s `BERTH_IMAGE_PREFIX`):
    /// `None` → [`Self::image`].
    pub fn image_named(&self, prefix: Option<&str>) -> String {
        match prefix {
            None => self.image.to_owned(),
            Some(p) => {
                let (engine, version) = self.image_args();
                format!("{p}/{engine}:{version}")
            }
        }
    }

    /// The engine name and version as `images/build.sh` takes them (`rabbitmq`, `4.0`).
    pub fn image_args(&self) -> (&'static str, &'static str) {
        let engine = match self.engine {
            EngineType::Rabbitmq => "rabbitmq",
            EngineType::Activemq => "activemq",
        };
        (engine, self.name)
    }
}

impl EngineVersion {
    /// Whether a broker of this version can move to `target` in place (a rolling
    /// upgrade, node by node), by the engine's own rules; `Err` says why not and what
    /// the supported path is. RabbitMQ upgrades one minor release at a time (patch
    /// releases may be skipped; 3.13 is the last 3.x before 4.0), and no engine goes
    /// back.
    pub fn upgrade_to(&self, target: &EngineVersion) -> Result<(), String> {
        let parse = |v: &str| {
            let mut it = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
            (it.next().unwrap_or(0), it.next().unwrap_or(0))
        };
        let (from, to) = (parse(self.name), parse(target.name));
        if from == to {
            return Ok(());
        }
        let engine = self.engine;
        if to < from {
            return Err(format!(
                "{engine} {} cannot be downgraded to {}.",
                self.name, target.name
            ));
        }
        let next_minor = (from.0, from.1 + 1);
        let allowed = match engine {
            EngineType::Rabbitmq => to == next_minor || (from == (3, 13) && to == (4, 0)),
            EngineType::Activemq => to.0 == from.0,
        };
        if allowed {
            return Ok(());
        }
        let path = match engine {
            EngineType::Rabbitmq => format!(
                " RabbitMQ upgrades in place one minor release at a time ({}.{} → {}.{} next); create a {} broker and move definitions and messages to it (blue-green) instead.",
                from.0, from.1, next_minor.0, next_minor.1, target.name
            ),
            EngineType::Activemq => format!(
                " Create a {} broker and move to it instead.",
                target.name
            ),
        };
        Err(format!(
            "There is no in-place upgrade path from {engine} {} to {}.{path}",
            self.name, target.name
        ))
    }

    /// Resolves a requested version (`None` → the newest for that engine). Accepts the
    /// short form (`4.0`) and the exact one (`4.0.5`).
    pub fn resolve(engine: EngineType, requested: Option<&str>) -> Result<Self, Error> {
        let mut candidates = ENGINE_VERSIONS.iter().filter(|v| v.engine == engine);
        match requested {
            None => candidates.next().copied().ok_or_else(|| {
                Error::bad_request(
                    "engineType",
                    format!("Engine type {engine} is not supported by this Berth installation yet."),
                )
            }),
            Some(req) => candidates
                .find(|v| v.name == req || v.full == req)
                .copied()
                .ok_or_else(|| {
                    let known: Vec<&str> = ENGINE_VERSIONS
                        .iter()
                        .filter(|v| v.engine == engine)
                        .map(|v| v.name)
                        .collect();
                    Error::bad_request(
                        "engineVersion",
                        format!(
                            "Broker engine version {req} is not supported for engine type {engine}. Supported versions: {}.",
                            if known.is_empty() { "none".to_owned() } else { known.join(", ") }
                        ),
                    )
                }),
        }
    }

    /// The stored version of an `engine` broker; unknown → a corrupt-row error.
    pub fn from_db(engine: EngineType, name: &str) -> Result<Self, Error> {
        ENGINE_VERSIONS
            .iter()
            .find(|v| v.engine == engine && v.name == name)
            .copied()
            .ok_or_else(|| corrupt(&format!("{engine} engine version"), name))
    }
}

/// A host instance type and the limits Berth enforces for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceType {
    pub name: &'static str,
    pub vcpus: u32,
    pub memory_gib: u32,
    /// Engines that may run on it.
    pub engines: &'static [EngineType],
}

const RMQ: &[EngineType] = &[EngineType::Rabbitmq];
const BOTH: &[EngineType] = &[EngineType::Activemq, EngineType::Rabbitmq];

/// Amazon MQ's instance types (anchors.md §A1).
pub const INSTANCE_TYPES: &[InstanceType] = &[
    InstanceType {
        name: "mq.t3.micro",
        vcpus: 2,
        memory_gib: 1,
        engines: BOTH,
    },
    InstanceType {
        name: "mq.m5.large",
        vcpus: 2,
        memory_gib: 8,
        engines: BOTH,
    },
    InstanceType {
        name: "mq.m5.xlarge",
        vcpus: 4,
        memory_gib: 16,
        engines: BOTH,
    },
    InstanceType {
        name: "mq.m5.2xlarge",
        vcpus: 8,
        memory_gib: 32,
        engines: BOTH,
    },
    InstanceType {
        name: "mq.m5.4xlarge",
        vcpus: 16,
        memory_gib: 64,
        engines: BOTH,
    },
    InstanceType {
        name: "mq.m7g.medium",
        vcpus: 1,
        memory_gib: 4,
        engines: RMQ,
    },
    InstanceType {
        name: "mq.m7g.large",
        vcpus: 2,
        memory_gib: 8,
        engines: RMQ,
    },
    InstanceType {
        name: "mq.m7g.xlarge",
        vcpus: 4,
        memory_gib: 16,
        engines: RMQ,
    },
    InstanceType {
        name: "mq.m7g.2xlarge",
        vcpus: 8,
        memory_gib: 32,
        engines: RMQ,
    },
    InstanceType {
        name: "mq.m7g.4xlarge",
        vcpus: 16,
        memory_gib: 64,
        engines: RMQ,
    },
    InstanceType {
        name: "mq.m7g.8xlarge",
        vcpus: 32,
        memory_gib: 128,
        engines: RMQ,
    },
    InstanceType {
        name: "mq.m7g.12xlarge",
        vcpus: 48,
        memory_gib: 192,
        engines: RMQ,
    },
    InstanceType {
        name: "mq.m7g.16xlarge",
        vcpus: 64,
        memory_gib: 256,
        engines: RMQ,
    },
];

impl InstanceType {
    /// Looks a type up and checks that it can run `version` (its engine and family).
    pub fn resolve(name: &str, version: &EngineVersion) -> Result<Self, Error> {
        let it = INSTANCE_TYPES
            .iter()
            .find(|t| t.name == name)
            .copied()
            .ok_or_else(|| {
                Error::bad_request(
                    "hostInstanceType",
                    format!("Broker instance type {name} is not supported."),
                )
            })?;
        if !it.runs(version) {
            let supported: Vec<&str> = INSTANCE_TYPES
                .iter()
                .filter(|t| t.runs(version))
                .map(|t| t.name)
                .collect();
            return Err(Error::bad_request(
                "hostInstanceType",
                format!(
                    "Broker instance type {name} is not supported for engine {} {}. Supported values: {}.",
                    version.engine,
                    version.name,
                    supported.join(", ")
                ),
            ));
        }
        Ok(it)
    }

    /// Whether this type can run `version` (its engine and instance family).
    pub fn runs(&self, version: &EngineVersion) -> bool {
        self.engines.contains(&version.engine)
            && version.families.iter().any(|f| self.name.starts_with(f))
    }

    /// A stored instance type; unknown → a corrupt-row error.
    pub fn from_db(name: &str) -> Result<Self, Error> {
        INSTANCE_TYPES
            .iter()
            .find(|t| t.name == name)
            .copied()
            .ok_or_else(|| corrupt("instance type", name))
    }

    pub fn memory_bytes(&self) -> u64 {
        u64::from(self.memory_gib) * 1024 * 1024 * 1024
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrades_follow_the_engines_rules() {
        let v = |e, n| EngineVersion::resolve(e, Some(n)).unwrap();
        let r = EngineType::Rabbitmq;
        assert!(v(r, "4.0").upgrade_to(&v(r, "4.0")).is_ok());
        let skip = v(r, "4.0").upgrade_to(&v(r, "4.3")).unwrap_err();
        assert!(
            skip.contains("one minor release at a time (4.0 → 4.1 next)"),
            "{skip}"
        );
        assert!(skip.contains("blue-green"), "{skip}");
        assert!(v(r, "3.10").upgrade_to(&v(r, "4.0")).is_err());
        let down = v(r, "4.3").upgrade_to(&v(r, "4.0")).unwrap_err();
        assert!(down.contains("cannot be downgraded"), "{down}");
        let a = EngineType::Activemq;
        assert!(v(a, "5.17").upgrade_to(&v(a, "5.17")).is_ok());
    }

    #[test]
    fn enums_round_trip_and_reject_unknown() {
        assert_eq!(
            EngineType::parse_request("RabbitMQ").unwrap(),
            EngineType::Rabbitmq
        );
        assert_eq!(
            EngineType::parse_request("activemq").unwrap(),
            EngineType::Activemq
        );
        assert!(EngineType::parse("RabbitMQ").is_err());
        for m in DeploymentMode::ALL {
            assert_eq!(DeploymentMode::parse(m.as_wire()).unwrap(), *m);
        }
        let err = DeploymentMode::parse("BOGUS").unwrap_err();
        assert_eq!(err.attribute(), Some("deploymentMode"));
    }

    #[test]
    fn rabbitmq_4_runs_only_on_m7g() {
        let v = EngineVersion::resolve(EngineType::Rabbitmq, None).unwrap();
        assert_eq!(v.name, "4.3", "omitted → the newest");
        let old = EngineVersion::resolve(EngineType::Rabbitmq, Some("3.10")).unwrap();
        assert!(InstanceType::resolve("mq.m5.large", &old).is_ok());
        assert!(InstanceType::resolve("mq.m7g.large", &old).is_err());
        let amq = EngineVersion::resolve(EngineType::Activemq, None).unwrap();
        assert_eq!(amq.name, "5.17");
        assert!(InstanceType::resolve("mq.t3.micro", &amq).is_ok());
        assert!(InstanceType::resolve("mq.m7g.medium", &amq).is_err());
        assert!(InstanceType::resolve("mq.m7g.large", &v).is_ok());
        assert!(InstanceType::resolve("mq.m5.large", &v).is_err());
        assert!(InstanceType::resolve("mq.t3.micro", &v).is_err());
        assert!(InstanceType::resolve("mq.bogus", &v).is_err());
        let it = InstanceType::resolve("mq.m7g.medium", &v).unwrap();
        assert_eq!((it.vcpus, it.memory_gib), (1, 4));
    }

    #[test]
    fn versions_resolve_short_and_full() {
        assert!(EngineVersion::resolve(EngineType::Rabbitmq, Some("4.0.5")).is_ok());
        let e = EngineVersion::resolve(EngineType::Rabbitmq, Some("3.13")).unwrap_err();
        assert_eq!(e.attribute(), Some("engineVersion"));
    }
}
