//! Tags on resources, addressed by ARN (CreateTags, DeleteTags, ListTags).

use std::collections::BTreeMap;

use super::AppContext;
use super::Caller;
use crate::domain::tags::MAX_TAGS;
use crate::domain::{BrokerId, Tags};
use crate::error::Error;

/// A taggable resource named by an ARN this caller may see.
enum Resource {
    /// A broker and the name its ARN carries.
    Broker(BrokerId, String),
    Configuration(String),
}

fn not_found(arn: &str) -> Error {
    Error::not_found(
        "resource-arn",
        format!("Can't find requested resource [{arn}]. Make sure your resource exists."),
    )
}

/// `arn:aws:mq:{region}:{account}:broker:{name}:{id}` or
/// `arn:aws:mq:{region}:{account}:configuration:{id}`; an ARN of another account or
/// region is simply not found.
fn parse_arn(caller: &Caller, arn: &str) -> Result<Resource, Error> {
    let parts: Vec<&str> = arn.split(':').collect();
    let mine = |region: &str, account: &str| {
        region == caller.scope.region.as_str() && account == caller.scope.account.as_str()
    };
    match parts.as_slice() {
        ["arn", "aws", "mq", region, account, "broker", name, id] => {
            if !mine(region, account) {
                return Err(not_found(arn));
            }
            Ok(Resource::Broker(
                BrokerId::parse(id).map_err(|_| not_found(arn))?,
                (*name).to_owned(),
            ))
        }
        ["arn", "aws", "mq", region, account, "configuration", id] => {
            if !mine(region, account) {
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
        Resource::Broker(id, name) => {
            let row = ctx
                .store
                .broker_fetch(&caller.scope, &id)
                .await?
                .filter(|row| row.name == name)
                .ok_or_else(|| not_found(arn))?;
            Ok((Resource::Broker(id, name), row.tags.0))
        }
        Resource::Configuration(id) => {
            let row = ctx
                .store
                .configuration_fetch(&caller.scope, &id)
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
        Resource::Broker(id, _) => ctx.store.broker_tags_set(id, tags).await,
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
    if add.is_empty() {
        return Err(Error::bad_request("tags", "tags is required."));
    }
    tags.extend(Tags::parse(add)?.into_inner());
    if tags.len() > MAX_TAGS {
        return Err(Error::bad_request(
            "tags",
            format!("A resource can have at most {MAX_TAGS} tags."),
        ));
    }
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
    if keys.iter().any(|k| k.is_empty() || k.chars().count() > 128) {
        return Err(Error::bad_request(
            "tagKeys",
            "Tag keys must be between 1 and 128 characters long.",
        ));
    }
    let (resource, mut tags) = current(ctx, caller, arn).await?;
    for k in keys {
        tags.remove(k);
    }
    store_tags(ctx, &resource, &tags).await
}
