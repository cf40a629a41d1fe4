//! Tags on resources, addressed by ARN (CreateTags, DeleteTags, ListTags).

use std::collections::BTreeMap;

use super::brokers::validate_tags;
use super::AppContext;
use super::Caller;
use crate::domain::BrokerId;
use crate::error::Error;

/// A taggable resource named by an ARN this caller may see.
enum Resource {
    Broker(BrokerId),
    Configuration(String),
}

fn not_found(arn: &str) -> Error {
    Error::not_found(
        "resource-arn",
        format!("Can't find requested resource [{arn}]."),
    )
}

/// `arn:aws:mq:{region}:{account}:broker:{name}:{id}`; another account's ARN is simply
/// not found.
fn parse_arn(caller: &Caller, arn: &str) -> Result<Resource, Error> {
    let parts: Vec<&str> = arn.split(':').collect();
    match parts.as_slice() {
        ["arn", "aws", "mq", _region, account, "broker", _name, id] => {
            if *account != caller.account.as_str() {
                return Err(not_found(arn));
            }
            Ok(Resource::Broker(
                BrokerId::parse(id).map_err(|_| not_found(arn))?,
            ))
        }
        ["arn", "aws", "mq", _region, account, "configuration", id] => {
            if *account != caller.account.as_str() {
                return Err(not_found(arn));
            }
            Ok(Resource::Configuration((*id).to_owned()))
        }
        ["arn", ..] => Err(not_found(arn)),
        _ => Err(Error::bad_request(
            "resource-arn",
            format!("{arn} is not a valid ARN."),
        )),
    }
}

async fn current(
    ctx: &AppContext,
    caller: &Caller,
    arn: &str,
) -> Result<(Resource, BTreeMap<String, String>), Error> {
    match parse_arn(caller, arn)? {
        Resource::Broker(id) => {
            let row = ctx
                .store
                .broker_fetch(caller.account.as_str(), &id)
                .await?
                .ok_or_else(|| not_found(arn))?;
            Ok((Resource::Broker(id), row.tags.0))
        }
        Resource::Configuration(id) => {
            let row = ctx
                .store
                .configuration_fetch(caller.account.as_str(), &id)
                .await?
                .ok_or_else(|| not_found(arn))?;
            Ok((Resource::Configuration(id), row.tags.0))
        }
    }
}

async fn store_tags(
    ctx: &AppContext,
    resource: &Resource,
    tags: &BTreeMap<String, String>,
) -> Result<(), Error> {
    match resource {
        Resource::Broker(id) => ctx.store.broker_tags_set(id, tags).await,
        Resource::Configuration(id) => ctx.store.configuration_tags_set(id, tags).await,
    }
}

pub async fn tags_list(
    ctx: &AppContext,
    caller: &Caller,
    arn: &str,
) -> Result<BTreeMap<String, String>, Error> {
    Ok(current(ctx, caller, arn).await?.1)
}

pub async fn tags_create(
    ctx: &AppContext,
    caller: &Caller,
    arn: &str,
    add: BTreeMap<String, String>,
) -> Result<(), Error> {
    let (resource, mut tags) = current(ctx, caller, arn).await?;
    validate_tags(&add)?;
    tags.extend(add);
    validate_tags(&tags)?;
    store_tags(ctx, &resource, &tags).await
}

pub async fn tags_delete(
    ctx: &AppContext,
    caller: &Caller,
    arn: &str,
    keys: &[String],
) -> Result<(), Error> {
    if keys.is_empty() {
        return Err(Error::bad_request("tagKeys", "tagKeys is required."));
    }
    let (resource, mut tags) = current(ctx, caller, arn).await?;
    for k in keys {
        tags.remove(k);
    }
    store_tags(ctx, &resource, &tags).await
}
