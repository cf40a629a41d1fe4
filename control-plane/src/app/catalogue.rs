//! DescribeBrokerEngineTypes and DescribeBrokerInstanceOptions, answered from Berth's
//! real catalogue (`domain::catalogue`): only versions Berth can build and run, only
//! instance types whose limits it enforces, only the deployment modes it supports.

use crate::domain::catalogue::{EngineVersion, ENGINE_VERSIONS, INSTANCE_TYPES};
use crate::domain::profile::profile;
use crate::domain::{EngineType, InstanceType, StorageType};
use crate::error::Error;
use crate::wire as views;

fn engines_with_versions(filter: Option<EngineType>) -> Vec<EngineType> {
    EngineType::ALL
        .iter()
        .copied()
        .filter(|e| filter.is_none_or(|f| f == *e))
        .filter(|e| ENGINE_VERSIONS.iter().any(|v| v.engine == *e))
        .collect()
}

/// Paging over a fixed list: the token is the base64 of the next index.
fn page<T>(
    items: Vec<T>,
    max_results: Option<&str>,
    next_token: Option<&str>,
) -> Result<(Vec<T>, i64, Option<String>), Error> {
    let limit = super::paging::max_results(max_results, 100)?;
    let start = match super::paging::decode_token(next_token)? {
        None => 0usize,
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|i| *i <= items.len())
            .ok_or_else(super::paging::invalid_token)?,
    };
    let end = (start + limit as usize).min(items.len());
    let next = (end < items.len()).then(|| super::paging::encode_token(&end.to_string()));
    let items = items.into_iter().take(end).skip(start).collect();
    Ok((items, limit, next))
}

fn parse_engine_filter(v: Option<&str>) -> Result<Option<EngineType>, Error> {
    v.filter(|s| !s.is_empty())
        .map(EngineType::parse_request)
        .transpose()
}

pub fn engine_types(
    engine: Option<&str>,
    max_results: Option<&str>,
    next_token: Option<&str>,
) -> Result<views::DescribeBrokerEngineTypesResponse, Error> {
    let filter = parse_engine_filter(engine)?;
    let items: Vec<views::BrokerEngineType> = engines_with_versions(filter)
        .into_iter()
        .map(|e| views::BrokerEngineType {
            engine_type: e.as_wire().to_owned(),
            engine_versions: ENGINE_VERSIONS
                .iter()
                .filter(|v| v.engine == e)
                .map(|v| views::EngineVersionView {
                    name: v.name.to_owned(),
                })
                .collect(),
        })
        .collect();
    let (items, max, next) = page(items, max_results, next_token)?;
    Ok(views::DescribeBrokerEngineTypesResponse {
        broker_engine_types: items,
        max_results: max.max(5),
        next_token: next,
    })
}

pub fn instance_options(
    engine: Option<&str>,
    host_instance_type: Option<&str>,
    storage_type: Option<&str>,
    max_results: Option<&str>,
    next_token: Option<&str>,
    zone: &str,
) -> Result<views::DescribeBrokerInstanceOptionsResponse, Error> {
    let engine_filter = parse_engine_filter(engine)?;
    let storage_filter = storage_type
        .filter(|s| !s.is_empty())
        .map(StorageType::parse_request)
        .transpose()?;
    let mut items = Vec::new();
    for e in engines_with_versions(engine_filter) {
        for it in INSTANCE_TYPES
            .iter()
            .filter(|t| host_instance_type.is_none_or(|h| h.is_empty() || h == t.name))
        {
            let runs: Vec<&EngineVersion> = ENGINE_VERSIONS
                .iter()
                .filter(|v| v.engine == e)
                .filter(|v: &&EngineVersion| InstanceType::resolve(it.name, v).is_ok())
                .collect();
            let versions: Vec<String> = runs.iter().map(|v| v.name.to_owned()).collect();
            if versions.is_empty() {
                continue;
            }
            for st in profile(e)
                .storage
                .iter()
                .filter(|s| storage_filter.is_none_or(|f| f == **s))
            {
                items.push(views::BrokerInstanceOption {
                    availability_zones: vec![views::AvailabilityZone {
                        name: zone.to_owned(),
                    }],
                    engine_type: e.as_wire().to_owned(),
                    host_instance_type: it.name.to_owned(),
                    storage_type: st.as_wire().to_owned(),
                    // The modes some version runs on this instance type and storage.
                    supported_deployment_modes: profile(e)
                        .modes
                        .iter()
                        .filter(|m| {
                            runs.iter().any(|v| {
                                InstanceType::resolve(it.name, v).is_ok_and(|i| {
                                    profile(e).check_combination(**m, v, &i, *st).is_ok()
                                })
                            })
                        })
                        .map(|m| m.as_wire().to_owned())
                        .collect(),
                    supported_engine_versions: versions.clone(),
                });
            }
        }
    }
    let (items, max, next) = page(items, max_results, next_token)?;
    Ok(views::DescribeBrokerInstanceOptionsResponse {
        broker_instance_options: items,
        max_results: max.max(5),
        next_token: next,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_types_list_only_what_berth_runs() {
        let r = engine_types(None, None, None).unwrap();
        let names = |r: &views::DescribeBrokerEngineTypesResponse, i: usize| -> Vec<String> {
            r.broker_engine_types[i]
                .engine_versions
                .iter()
                .map(|v| v.name.clone())
                .collect()
        };
        assert_eq!(r.broker_engine_types.len(), 2);
        assert_eq!(r.broker_engine_types[0].engine_type, "ACTIVEMQ");
        assert_eq!(names(&r, 0), ["5.17"]);
        assert_eq!(r.broker_engine_types[1].engine_type, "RABBITMQ");
        assert_eq!(names(&r, 1), ["4.3", "4.0", "3.10"]);
        let amq = engine_types(Some("ActiveMQ"), None, None).unwrap();
        assert_eq!(amq.broker_engine_types.len(), 1);
        assert_eq!(
            engine_types(Some("KAFKA"), None, None)
                .unwrap_err()
                .attribute(),
            Some("engineType")
        );
    }

    #[test]
    fn instance_options_follow_the_catalogue_and_paginate() {
        let all = instance_options(Some("RABBITMQ"), None, None, None, None, "z").unwrap();
        // RabbitMQ: 4.x on the eight m7g types, 3.10 on t3.micro and the four m5; EBS.
        assert_eq!(all.broker_instance_options.len(), 13);
        assert!(all
            .broker_instance_options
            .iter()
            .all(|o| o.storage_type == "EBS"));
        for o in &all.broker_instance_options {
            let expect: &[&str] = if o.host_instance_type.starts_with("mq.m7g.") {
                &["4.3", "4.0"]
            } else {
                &["3.10"]
            };
            assert_eq!(
                o.supported_engine_versions, expect,
                "{}",
                o.host_instance_type
            );
        }
        // ActiveMQ 5.17 on t3.micro and m5, EFS and EBS.
        let amq = instance_options(Some("ACTIVEMQ"), None, None, None, None, "z").unwrap();
        assert_eq!(amq.broker_instance_options.len(), 10);
        assert!(amq
            .broker_instance_options
            .iter()
            .all(|o| !o.host_instance_type.starts_with("mq.m7g.")));
        let first = instance_options(Some("RABBITMQ"), None, None, Some("3"), None, "z").unwrap();
        assert_eq!(first.broker_instance_options.len(), 3);
        let second = instance_options(
            Some("RABBITMQ"),
            None,
            None,
            Some("3"),
            first.next_token.as_deref(),
            "z",
        )
        .unwrap();
        assert_eq!(
            second.broker_instance_options[0].host_instance_type,
            all.broker_instance_options[3].host_instance_type
        );
        let one = instance_options(None, Some("mq.m7g.large"), None, None, None, "z").unwrap();
        assert_eq!(one.broker_instance_options.len(), 1);
        // mq.m5.large: ActiveMQ on EFS and EBS, RabbitMQ 3.10 on EBS.
        let m5 = instance_options(None, Some("mq.m5.large"), None, None, None, "z").unwrap();
        assert_eq!(m5.broker_instance_options.len(), 3);
        assert_eq!(
            instance_options(None, None, Some("NVME"), None, None, "z")
                .unwrap_err()
                .attribute(),
            Some("storageType")
        );
    }
}
