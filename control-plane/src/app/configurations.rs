//! Configurations and their revisions. A revision is immutable; UpdateConfiguration adds
//! the next one after sanitizing it in the engine profile's format
//! (`domain::rabbitmq_conf`, `domain::activemq_xml`). Brokers name the revision they run;
//! a new one is pending on the broker until its next reboot.

use base64::Engine as _;

use super::{AppContext, Caller};
use crate::db::configuration::{ConfigurationRow, RevisionRow};
use crate::db::model::ConfigurationRef;
use crate::domain::profile::profile;
use crate::domain::{EngineType, EngineVersion, Tags};
use crate::error::Error;
use crate::wire as views;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

pub fn configuration_arn(c: &ConfigurationRow) -> String {
    format!(
        "arn:aws:mq:{}:{}:configuration:{}",
        c.region, c.account_id, c.id
    )
}

fn not_found(id: &str) -> Error {
    Error::not_found(
        "configuration-id",
        format!("Can't find requested configuration [{id}]. Make sure your configuration exists."),
    )
}

fn revision_view(r: &RevisionRow) -> views::ConfigurationRevisionView {
    views::ConfigurationRevisionView {
        created: views::timestamp(r.created_at),
        description: r.description.clone(),
        revision: r.revision,
    }
}

pub async fn configuration_fetch(
    ctx: &AppContext,
    caller: &Caller,
    id: &str,
) -> Result<ConfigurationRow, Error> {
    ctx.store
        .configuration_fetch(&caller.scope, id)
        .await?
        .ok_or_else(|| not_found(id))
}

async fn latest(ctx: &AppContext, c: &ConfigurationRow) -> Result<RevisionRow, Error> {
    ctx.store
        .configuration_revision_fetch(&c.id, c.latest_revision)
        .await?
        .ok_or_else(|| Error::internal("latest revision missing", anyhow::anyhow!("{}", c.id)))
}

fn validate_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.chars().count() <= 150
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::bad_request(
            "name",
            "Configuration name must be 1-150 characters of letters, digits, hyphens, periods, underscores and tildes.",
        ))
    }
}

pub async fn configuration_create(
    ctx: &AppContext,
    caller: &Caller,
    req: views::CreateConfigurationRequest,
) -> Result<views::CreateConfigurationResponse, Error> {
    let name = req
        .name
        .ok_or_else(|| Error::bad_request("name", "name is required."))?;
    validate_name(&name)?;
    let engine = EngineType::parse_request(
        &req.engine_type
            .ok_or_else(|| Error::bad_request("engineType", "engineType is required."))?,
    )?;
    let version = EngineVersion::resolve(engine, req.engine_version.as_deref())?;
    match req.authentication_strategy.as_deref() {
        None | Some("SIMPLE") => {}
        Some(other) => {
            return Err(Error::bad_request(
                "authenticationStrategy",
                format!("Authentication strategy {other} is not available; use SIMPLE."),
            ))
        }
    }
    let tags = Tags::parse(req.tags.unwrap_or_default())?.into_inner();
    let row = ConfigurationRow {
        id: format!("c-{}", uuid::Uuid::new_v4()),
        account_id: caller.scope.account.as_str().to_owned(),
        name,
        description: String::new(),
        engine_type: engine.as_wire().to_owned(),
        engine_version: version.name.to_owned(),
        authentication_strategy: "SIMPLE".to_owned(),
        tags: sqlx::types::Json(tags),
        latest_revision: 1,
        created_at: chrono::Utc::now(),
        region: caller.scope.region.as_str().to_owned(),
    };
    ctx.store
        .configuration_create(&row, profile(engine).config.default_revision())
        .await?;
    let row = configuration_fetch(ctx, caller, &row.id).await?;
    let rev = latest(ctx, &row).await?;
    Ok(views::CreateConfigurationResponse {
        arn: configuration_arn(&row),
        authentication_strategy: row.authentication_strategy.clone(),
        created: views::timestamp(row.created_at),
        id: row.id.clone(),
        latest_revision: revision_view(&rev),
        name: row.name.clone(),
    })
}

pub async fn configuration_describe(
    ctx: &AppContext,
    caller: &Caller,
    id: &str,
) -> Result<views::ConfigurationView, Error> {
    let row = configuration_fetch(ctx, caller, id).await?;
    view(ctx, &row).await
}

async fn view(ctx: &AppContext, row: &ConfigurationRow) -> Result<views::ConfigurationView, Error> {
    let rev = latest(ctx, row).await?;
    Ok(views::ConfigurationView {
        arn: configuration_arn(row),
        authentication_strategy: row.authentication_strategy.clone(),
        created: views::timestamp(row.created_at),
        description: rev.description.clone(),
        engine_type: row.engine_type.clone(),
        engine_version: row.engine_version.clone(),
        id: row.id.clone(),
        latest_revision: revision_view(&rev),
        name: row.name.clone(),
        tags: row.tags.0.clone(),
    })
}

pub async fn configuration_list(
    ctx: &AppContext,
    caller: &Caller,
    max_results: Option<&str>,
    next_token: Option<&str>,
) -> Result<views::ListConfigurationsResponse, Error> {
    let limit = super::paging::max_results(max_results, 20)?;
    let after = super::paging::decode_token(next_token)?;
    let mut rows = ctx
        .store
        .configuration_list(&caller.scope, after.as_deref(), limit + 1)
        .await?;
    let next = super::paging::finish_page(&mut rows, limit, |r| r.id.clone());
    let mut configurations = Vec::with_capacity(rows.len());
    for r in &rows {
        configurations.push(view(ctx, r).await?);
    }
    Ok(views::ListConfigurationsResponse {
        configurations,
        max_results: limit,
        next_token: next,
    })
}

pub async fn configuration_update(
    ctx: &AppContext,
    caller: &Caller,
    id: &str,
    req: views::UpdateConfigurationRequest,
) -> Result<views::UpdateConfigurationResponse, Error> {
    let row = configuration_fetch(ctx, caller, id).await?;
    let data = req
        .data
        .ok_or_else(|| Error::bad_request("data", "data is required."))?;
    let raw = B64
        .decode(data.trim())
        .map_err(|_| Error::bad_request("data", "data must be base64-encoded."))?;
    let text = String::from_utf8(raw)
        .map_err(|_| Error::bad_request("data", "data must be UTF-8 text."))?;
    if text.len() > 100 * 1024 {
        return Err(Error::bad_request("data", "data must be at most 100 KiB."));
    }
    let format = profile(EngineType::from_db(&row.engine_type)?).config;
    let (sanitized, warnings) = format.sanitize(&text)?;
    let description = req.description.unwrap_or_default();
    if description.chars().count() > 1024 {
        return Err(Error::bad_request(
            "description",
            "description must be at most 1024 characters.",
        ));
    }
    let rev = ctx
        .store
        .configuration_revision_add(&row.id, &sanitized, &description)
        .await?;
    Ok(views::UpdateConfigurationResponse {
        arn: configuration_arn(&row),
        created: views::timestamp(rev.created_at),
        id: row.id.clone(),
        latest_revision: revision_view(&rev),
        name: row.name.clone(),
        warnings: warnings
            .into_iter()
            .take(20)
            .map(|w| views::SanitizationWarning {
                reason: w.reason.to_owned(),
                element_name: w.element_name,
                attribute_name: w.attribute_name,
            })
            .collect(),
    })
}

pub async fn configuration_delete(
    ctx: &AppContext,
    caller: &Caller,
    id: &str,
) -> Result<(), Error> {
    if !ctx.store.configuration_delete(&caller.scope, id).await? {
        return Err(not_found(id));
    }
    Ok(())
}

fn parse_revision(s: &str) -> Result<i32, Error> {
    s.parse::<i32>().ok().filter(|r| *r >= 1).ok_or_else(|| {
        Error::bad_request(
            "configuration-revision",
            "The revision must be a positive integer.",
        )
    })
}

pub async fn revision_describe(
    ctx: &AppContext,
    caller: &Caller,
    id: &str,
    revision: &str,
) -> Result<views::DescribeConfigurationRevisionResponse, Error> {
    let row = configuration_fetch(ctx, caller, id).await?;
    let revision = parse_revision(revision)?;
    let rev = ctx
        .store
        .configuration_revision_fetch(&row.id, revision)
        .await?
        .ok_or_else(|| {
            Error::not_found(
                "configuration-revision",
                format!("Can't find requested revision [{revision}] of configuration [{id}]. Make sure your configuration revision exists."),
            )
        })?;
    Ok(views::DescribeConfigurationRevisionResponse {
        configuration_id: row.id,
        created: views::timestamp(rev.created_at),
        data: B64.encode(rev.data.as_bytes()),
        description: rev.description,
    })
}

pub async fn revision_list(
    ctx: &AppContext,
    caller: &Caller,
    id: &str,
    max_results: Option<&str>,
    next_token: Option<&str>,
) -> Result<views::ListConfigurationRevisionsResponse, Error> {
    let row = configuration_fetch(ctx, caller, id).await?;
    let limit = super::paging::max_results(max_results, 20)?;
    let after = match super::paging::decode_token(next_token)? {
        None => 0,
        Some(s) => s
            .parse::<i32>()
            .map_err(|_| super::paging::invalid_token())?,
    };
    let mut revs = ctx
        .store
        .configuration_revisions_list(&row.id, after, limit + 1)
        .await?;
    let next = super::paging::finish_page(&mut revs, limit, |r| r.revision.to_string());
    Ok(views::ListConfigurationRevisionsResponse {
        configuration_id: row.id,
        max_results: limit,
        next_token: next,
        revisions: revs.iter().map(revision_view).collect(),
    })
}

/// Resolves a broker's `configuration` input: the caller's configuration, same engine
/// and version family, an existing revision (default: the latest).
pub async fn resolve_for_broker(
    ctx: &AppContext,
    caller: &Caller,
    input: &views::ConfigurationIdInput,
    engine: EngineType,
    version: &EngineVersion,
) -> Result<ConfigurationRef, Error> {
    let id = input
        .id
        .as_deref()
        .ok_or_else(|| Error::bad_request("configuration", "configuration.id is required."))?;
    let row = ctx
        .store
        .configuration_fetch(&caller.scope, id)
        .await?
        .ok_or_else(|| {
            Error::bad_request(
                "configuration",
                format!("Configuration {id} does not exist."),
            )
        })?;
    if row.engine_type != engine.as_wire() || row.engine_version != version.name {
        return Err(Error::bad_request(
            "configuration",
            format!(
                "Configuration {id} is for {} {}, not {engine} {}.",
                row.engine_type, row.engine_version, version.name
            ),
        ));
    }
    let revision = match input.revision {
        None => row.latest_revision,
        Some(r) => i32::try_from(r)
            .map_err(|_| Error::bad_request("configuration", "Invalid revision."))?,
    };
    if ctx
        .store
        .configuration_revision_fetch(id, revision)
        .await?
        .is_none()
    {
        return Err(Error::bad_request(
            "configuration",
            format!("Configuration {id} has no revision {revision}."),
        ));
    }
    Ok(ConfigurationRef {
        id: id.to_owned(),
        revision,
    })
}
