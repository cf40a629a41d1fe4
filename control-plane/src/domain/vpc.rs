//! VPC inputs of CreateBroker and UpdateBroker: security group and subnet ids.
//!
//! Berth has no VPC: brokers publish their ports on the host. The ids are still
//! validated as Amazon MQ validates them (so a script that works here works there) and
//! kept, so DescribeBroker shows what was asked for.

use super::DeploymentMode;
use crate::error::Error;

/// Amazon MQ's limit on security groups per broker.
pub const MAX_SECURITY_GROUPS: usize = 5;

/// `<prefix>-` then 8 or 17 lower-case hex digits, as EC2 ids are.
fn is_ec2_id(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('-'))
        .is_some_and(|hex| {
            matches!(hex.len(), 8 | 17)
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

fn no_duplicates(ids: &[String], attribute: &str) -> Result<(), Error> {
    for (i, id) in ids.iter().enumerate() {
        if ids[..i].contains(id) {
            return Err(Error::bad_request(
                attribute,
                format!("{attribute} lists {id} more than once."),
            ));
        }
    }
    Ok(())
}

/// 1–5 distinct ids of the form `sg-0123abcd` or `sg-0123456789abcdef0`.
pub fn security_groups(ids: &[String]) -> Result<Vec<String>, Error> {
    const ATTR: &str = "securityGroups";
    if ids.is_empty() || ids.len() > MAX_SECURITY_GROUPS {
        return Err(Error::bad_request(
            ATTR,
            format!("A broker must have between 1 and {MAX_SECURITY_GROUPS} security groups."),
        ));
    }
    if let Some(bad) = ids.iter().find(|id| !is_ec2_id(id, "sg")) {
        return Err(Error::bad_request(
            ATTR,
            format!("{bad} is not a valid security group id (expected sg- followed by 8 or 17 hexadecimal digits)."),
        ));
    }
    no_duplicates(ids, ATTR)?;
    Ok(ids.to_vec())
}

/// Subnet ids (`subnet-` + 8 or 17 hex digits), as many as the deployment mode takes:
/// one for SINGLE_INSTANCE, two for ACTIVE_STANDBY_MULTI_AZ, one to three for
/// CLUSTER_MULTI_AZ.
pub fn subnet_ids(mode: DeploymentMode, ids: &[String]) -> Result<Vec<String>, Error> {
    const ATTR: &str = "subnetIds";
    let (min, max, rule) = match mode {
        DeploymentMode::SingleInstance => (1, 1, "A SINGLE_INSTANCE broker takes exactly one subnet."),
        DeploymentMode::ActiveStandbyMultiAz => (
            2,
            2,
            "An ACTIVE_STANDBY_MULTI_AZ broker takes exactly two subnets in different availability zones.",
        ),
        DeploymentMode::ClusterMultiAz => (1, 3, "A CLUSTER_MULTI_AZ broker takes one to three subnets."),
    };
    if !(min..=max).contains(&ids.len()) {
        return Err(Error::bad_request(ATTR, rule));
    }
    if let Some(bad) = ids.iter().find(|id| !is_ec2_id(id, "subnet")) {
        return Err(Error::bad_request(
            ATTR,
            format!("{bad} is not a valid subnet id (expected subnet- followed by 8 or 17 hexadecimal digits)."),
        ));
    }
    no_duplicates(ids, ATTR)?;
    Ok(ids.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn security_group_ids() {
        assert!(security_groups(&v(&["sg-0123abcd"])).is_ok());
        assert!(security_groups(&v(&["sg-0123456789abcdef0", "sg-89abcdef"])).is_ok());
        for bad in [
            v(&[]),
            v(&["L\u{b4}", "L\u{b4}"]),
            v(&["sg-123"]),
            v(&["sg-0123ABCD"]),
            v(&["subnet-0123abcd"]),
            v(&["sg-0123abcd", "sg-0123abcd"]),
            v(&[
                "sg-0000000a",
                "sg-0000000b",
                "sg-0000000c",
                "sg-0000000d",
                "sg-0000000e",
                "sg-0000000f",
            ]),
        ] {
            let err = security_groups(&bad).unwrap_err();
            assert_eq!(err.attribute(), Some("securityGroups"), "{bad:?}");
        }
    }

    #[test]
    fn subnet_counts_follow_the_mode() {
        let one = v(&["subnet-0123abcd"]);
        let two = v(&["subnet-0123abcd", "subnet-0123456789abcdef0"]);
        assert!(subnet_ids(DeploymentMode::SingleInstance, &one).is_ok());
        assert!(subnet_ids(DeploymentMode::SingleInstance, &two).is_err());
        assert!(subnet_ids(DeploymentMode::ActiveStandbyMultiAz, &two).is_ok());
        assert!(subnet_ids(DeploymentMode::ActiveStandbyMultiAz, &one).is_err());
        assert!(subnet_ids(DeploymentMode::ClusterMultiAz, &two).is_ok());
        assert!(subnet_ids(DeploymentMode::SingleInstance, &v(&["subnet-xyz"])).is_err());
        assert!(subnet_ids(
            DeploymentMode::ActiveStandbyMultiAz,
            &v(&["subnet-0123abcd", "subnet-0123abcd"])
        )
        .is_err());
    }
}
