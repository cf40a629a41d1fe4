//! Broker users (CreateUser, UpdateUser, DeleteUser, DescribeUser, ListUsers).
//!
//! Amazon MQ applies user changes only at the next reboot; Berth applies them live: the
//! change is recorded with a pending marker, the reconciler hands the new user set to
//! the broker's agent, and the marker is cleared once the agent confirms. Until then
//! DescribeUser / ListUsers / DescribeBroker show the pending change honestly.

use super::owned_broker;
use super::{AppContext, Caller};
use crate::db::model::{BrokerRow, NewUser, UserRow};
use crate::domain::profile::profile;
use crate::domain::{BrokerState, EngineType, Password, Username};
use crate::error::Error;
use crate::wire as views;

/// Per-broker quota (Amazon MQ: 250 users per broker).
pub const MAX_USERS: i64 = 250;

fn parse_username(engine: EngineType, name: &str) -> Result<Username, Error> {
    profile(engine).username(name, "username")
}

fn check_groups(engine: EngineType, groups: &Option<Vec<String>>) -> Result<(), Error> {
    let Some(groups) = groups else { return Ok(()) };
    if !profile(engine).users.groups && !groups.is_empty() {
        return Err(Error::bad_request(
            "groups",
            format!("Groups are not supported for engine type {engine}."),
        ));
    }
    parse_groups(groups).map(|_| ())
}

/// At most 20 groups, each named like an ActiveMQ username (2–100 of letters, digits,
/// `- . _ ~`), no duplicates.
pub(crate) fn parse_groups(groups: &[String]) -> Result<Vec<String>, Error> {
    if groups.len() > 20 {
        return Err(Error::bad_request(
            "groups",
            "A user can belong to at most 20 groups.",
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(groups.len());
    for g in groups {
        Username::parse_activemq(g, "groups")?;
        if !out.contains(g) {
            out.push(g.clone());
        }
    }
    Ok(out)
}

async fn writable_broker(ctx: &AppContext, caller: &Caller, id: &str) -> Result<BrokerRow, Error> {
    let row = owned_broker(ctx, caller, id).await?;
    match row.state()? {
        BrokerState::DeletionInProgress => Err(Error::conflict(
            "broker-id",
            format!("Broker {} is being deleted.", row.id),
        )),
        BrokerState::CreationFailed => Err(Error::conflict(
            "broker-id",
            format!("Broker {} failed to create.", row.id),
        )),
        _ => Ok(row),
    }
}

fn check_replication_user(replication_user: Option<bool>) -> Result<(), Error> {
    if replication_user == Some(true) {
        return Err(Error::bad_request(
            "replicationUser",
            "Replication users require cross-region data replication, which is not available.",
        ));
    }
    Ok(())
}

fn user_not_found(broker: &str, username: &str) -> Error {
    Error::not_found(
        "username",
        format!("Can't find requested user [{username}] on broker [{broker}]. Make sure your user exists."),
    )
}

pub async fn user_create(
    ctx: &AppContext,
    caller: &Caller,
    broker_id: &str,
    username: &str,
    req: views::UserRequest,
) -> Result<(), Error> {
    let row = writable_broker(ctx, caller, broker_id).await?;
    let engine = row.engine()?;
    let username = parse_username(engine, username)?;
    let password = Password::parse(
        req.password
            .as_deref()
            .ok_or_else(|| Error::bad_request("password", "password is required."))?,
        "password",
    )?;
    check_groups(engine, &req.groups)?;
    check_replication_user(req.replication_user)?;
    let user = NewUser {
        username: username.as_str().to_owned(),
        password_enc: ctx.secrets.seal(password.expose()),
        console_access: req.console_access.unwrap_or(false),
        groups: req.groups.unwrap_or_default(),
    };
    ctx.store
        .user_create(&row.broker_id(), &user, MAX_USERS)
        .await?;
    tracing::info!(broker = %row.id, user = %username, "user created (pending until applied)");
    ctx.nudger.nudge();
    Ok(())
}

pub async fn user_update(
    ctx: &AppContext,
    caller: &Caller,
    broker_id: &str,
    username: &str,
    req: views::UserRequest,
) -> Result<(), Error> {
    let row = writable_broker(ctx, caller, broker_id).await?;
    let engine = row.engine()?;
    let password = req
        .password
        .as_deref()
        .map(|p| Password::parse(p, "password"))
        .transpose()?;
    check_groups(engine, &req.groups)?;
    check_replication_user(req.replication_user)?;
    let sealed = password.map(|p| ctx.secrets.seal(p.expose()));
    let changed = ctx
        .store
        .user_update(
            &row.broker_id(),
            username,
            sealed.as_deref(),
            req.console_access,
            req.groups.as_deref(),
        )
        .await?;
    if !changed {
        return Err(user_not_found(&row.id, username));
    }
    ctx.nudger.nudge();
    Ok(())
}

pub async fn user_delete(
    ctx: &AppContext,
    caller: &Caller,
    broker_id: &str,
    username: &str,
) -> Result<(), Error> {
    let row = writable_broker(ctx, caller, broker_id).await?;
    let users = ctx.store.broker_users(&row.broker_id()).await?;
    let remaining = users
        .iter()
        .filter(|u| u.pending_change.as_deref() != Some("DELETE") && u.username != username)
        .count();
    if !users
        .iter()
        .any(|u| u.username == username && u.pending_change.as_deref() != Some("DELETE"))
    {
        return Err(user_not_found(&row.id, username));
    }
    if remaining == 0 {
        return Err(Error::bad_request(
            "username",
            "A broker must keep at least one user.",
        ));
    }
    ctx.store
        .user_mark_deleted(&row.broker_id(), username)
        .await?;
    ctx.nudger.nudge();
    Ok(())
}

pub async fn user_describe(
    ctx: &AppContext,
    caller: &Caller,
    broker_id: &str,
    username: &str,
) -> Result<views::DescribeUserResponse, Error> {
    let row = owned_broker(ctx, caller, broker_id).await?;
    let users = ctx.store.broker_users(&row.broker_id()).await?;
    let u = users
        .iter()
        .find(|u| u.username == username)
        .ok_or_else(|| user_not_found(&row.id, username))?;
    Ok(describe_view(&row.id, u))
}

fn describe_view(broker_id: &str, u: &UserRow) -> views::DescribeUserResponse {
    views::DescribeUserResponse {
        broker_id: broker_id.to_owned(),
        console_access: u.console_access,
        groups: u.groups.0.clone(),
        pending: u
            .pending_change
            .as_ref()
            .map(|c| views::UserPendingChanges {
                pending_change: c.clone(),
                console_access: u.console_access,
                groups: u.groups.0.clone(),
            }),
        replication_user: false,
        username: u.username.clone(),
    }
}

pub async fn user_list(
    ctx: &AppContext,
    caller: &Caller,
    broker_id: &str,
    max_results: Option<&str>,
    next_token: Option<&str>,
) -> Result<views::ListUsersResponse, Error> {
    let row = owned_broker(ctx, caller, broker_id).await?;
    let limit = super::paging::max_results(max_results, 20)?;
    let after = super::paging::decode_token(next_token)?;
    let users = ctx.store.broker_users(&row.broker_id()).await?;
    let mut page: Vec<&UserRow> = users
        .iter()
        .filter(|u| after.as_deref().is_none_or(|a| u.username.as_str() > a))
        .collect();
    let next = super::paging::finish_page(&mut page, limit, |u| u.username.clone());
    Ok(views::ListUsersResponse {
        broker_id: row.id.clone(),
        max_results: limit.max(5),
        next_token: next,
        users: page
            .into_iter()
            .map(|u| views::UserSummary {
                username: u.username.clone(),
                pending_change: u.pending_change.clone(),
            })
            .collect(),
    })
}
