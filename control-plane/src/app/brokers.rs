//! Broker business rules: CreateBroker validation, lifecycle requests, views.

use super::{owned_broker, paging, AppContext, Caller, MAX_BROKERS_PER_ACCOUNT};
use crate::crypto::random_token;
use crate::db::broker::Created;
use crate::db::model::{BrokerRow, NewBroker, NewUser, PortRow, UserRow};
use crate::domain::profile;
use crate::domain::{
    BrokerId, BrokerName, BrokerState, DeploymentMode, EngineType, EngineVersion, InstanceType,
    Password, Tags,
};
use crate::error::Error;
use crate::wire::{self as views, CreateBrokerRequest, WeeklyStartTime};

/// A broker with what its views need.
pub struct BrokerDetail {
    pub row: BrokerRow,
    pub users: Vec<UserRow>,
    pub ports: Vec<PortRow>,
    pub nodes: Vec<crate::db::nodes::NodeRow>,
}

fn required<T>(v: Option<T>, attribute: &str) -> Result<T, Error> {
    v.ok_or_else(|| Error::bad_request(attribute, format!("{attribute} is required.")))
}

/// Validates `maintenanceWindowStartTime`; absent → Sunday 03:00 UTC.
fn maintenance_window(w: Option<WeeklyStartTime>) -> Result<(String, String, String), Error> {
    let Some(w) = w else {
        return Ok(("SUNDAY".into(), "03:00".into(), "UTC".into()));
    };
    let attr = "maintenanceWindowStartTime";
    let day = required(w.day_of_week, "maintenanceWindowStartTime.dayOfWeek")?;
    if crate::domain::maintenance::parse_day(&day).is_none() {
        return Err(Error::bad_request(
            attr,
            format!(
                "{day} is not a valid dayOfWeek. Valid values: {}.",
                crate::domain::maintenance::DAY_NAMES.join(", ")
            ),
        ));
    }
    let time = required(w.time_of_day, "maintenanceWindowStartTime.timeOfDay")?;
    let ok_time = chrono::NaiveTime::parse_from_str(&time, "%H:%M").is_ok() && time.len() == 5;
    if !ok_time {
        return Err(Error::bad_request(
            attr,
            format!("timeOfDay {time} must use the 24-hour format HH:MM."),
        ));
    }
    let tz = w.time_zone.unwrap_or_else(|| "UTC".into());
    if crate::domain::maintenance::parse_zone(&tz).is_none() {
        return Err(Error::bad_request(
            attr,
            format!("timeZone {tz} is not a valid time zone (use UTC, an offset like +02:00, or an IANA name like Europe/Berlin)."),
        ));
    }
    Ok((day, time, tz))
}

/// Inputs naming features this installation does not offer; shared by CreateBroker and
/// UpdateBroker so both refuse them the same way.
struct Unavailable<'a> {
    authentication_strategy: Option<&'a str>,
    ldap: bool,
    storage_size: bool,
    data_replication_mode: Option<&'a str>,
}

fn refuse_unavailable(u: &Unavailable<'_>) -> Result<(), Error> {
    match u.authentication_strategy {
        None | Some("SIMPLE") => {}
        Some("LDAP") | Some("CONFIG_MANAGED") => {
            return Err(Error::bad_request(
                "authenticationStrategy",
                "Only the SIMPLE authentication strategy is available on this Berth installation.",
            ))
        }
        Some(other) => {
            return Err(Error::bad_request(
                "authenticationStrategy",
                format!("{other} is not a valid authenticationStrategy. Valid values: SIMPLE, LDAP, CONFIG_MANAGED."),
            ))
        }
    }
    if u.ldap {
        return Err(Error::bad_request(
            "ldapServerMetadata",
            "LDAP server metadata requires the LDAP authentication strategy.",
        ));
    }
    if u.storage_size {
        return Err(Error::bad_request(
            "storageSize",
            "storageSize can only be set for RabbitMQ CLUSTER_MULTI_AZ brokers.",
        ));
    }
    match u.data_replication_mode {
        None | Some("NONE") => Ok(()),
        Some("CRDR") => Err(Error::bad_request(
            "dataReplicationMode",
            "Cross-region data replication is not available on this Berth installation.",
        )),
        Some(other) => Err(Error::bad_request(
            "dataReplicationMode",
            format!("{other} is not a valid dataReplicationMode. Valid values: NONE, CRDR."),
        )),
    }
}

fn check_logs(engine: EngineType, logs: &views::LogsInput) -> Result<(), Error> {
    if !profile::profile(engine).audit_logs && logs.audit == Some(true) {
        return Err(Error::bad_request(
            "logs",
            format!("Audit logs are not supported for engine type {engine}."),
        ));
    }
    Ok(())
}

/// `logs.audit` as a broker shows it: a value only where the engine has an audit log.
fn audit_flag(row: &BrokerRow) -> Result<Option<bool>, Error> {
    Ok(profile::profile(row.engine()?)
        .audit_logs
        .then_some(row.logs_audit))
}

/// CreateBroker: validate everything, record the desired state, wake the reconciler.
pub async fn broker_create(
    ctx: &AppContext,
    caller: &Caller,
    req: CreateBrokerRequest,
) -> Result<BrokerRow, Error> {
    let name = BrokerName::parse(&required(req.broker_name, "brokerName")?)?;
    let engine_type = EngineType::parse_request(&required(req.engine_type, "engineType")?)?;
    let profile = profile::profile(engine_type);
    let mode = DeploymentMode::parse_request(&required(req.deployment_mode, "deploymentMode")?)?;
    let instance_name = required(req.host_instance_type, "hostInstanceType")?;
    let publicly_accessible = required(req.publicly_accessible, "publiclyAccessible")?;
    let version = EngineVersion::resolve(engine_type, req.engine_version.as_deref())?;
    profile.check_mode(mode)?;
    let instance = InstanceType::resolve(&instance_name, &version)?;
    let storage = profile.check_storage(req.storage_type.as_deref())?;
    profile.check_combination(mode, &version, &instance, storage)?;
    refuse_unavailable(&Unavailable {
        authentication_strategy: req.authentication_strategy.as_deref(),
        ldap: req.ldap_server_metadata.is_some(),
        storage_size: req.storage_size.is_some(),
        data_replication_mode: req.data_replication_mode.as_deref(),
    })?;
    let configuration = match &req.configuration {
        None => None,
        Some(input) => Some(
            super::configurations::resolve_for_broker(ctx, caller, input, engine_type, &version)
                .await?,
        ),
    };
    let logs = req.logs.unwrap_or_default();
    check_logs(engine_type, &logs)?;
    if let Some(enc) = &req.encryption_options {
        if enc.use_aws_owned_key.is_none() {
            return Err(Error::bad_request(
                "encryptionOptions",
                "encryptionOptions.useAwsOwnedKey is required.",
            ));
        }
    }
    let (day, time, tz) = maintenance_window(req.maintenance_window_start_time)?;
    let tags = Tags::parse(req.tags.unwrap_or_default())?;
    let security_groups = match &req.security_groups {
        None => Vec::new(),
        Some(ids) => crate::domain::vpc::security_groups(ids)?,
    };
    let subnet_ids = match &req.subnet_ids {
        None => Vec::new(),
        Some(ids) => crate::domain::vpc::subnet_ids(mode, ids)?,
    };
    if let Some(token) = &req.creator_request_id {
        if token.is_empty() || token.len() > 128 {
            return Err(Error::bad_request(
                "creatorRequestId",
                "creatorRequestId must be between 1 and 128 characters long.",
            ));
        }
    }

    let users_in = req.users.unwrap_or_default();
    let rules = profile.users;
    if !(rules.min_at_create..=rules.max_at_create).contains(&users_in.len()) {
        let message = if rules.min_at_create == rules.max_at_create {
            format!(
                "A {engine_type} broker takes exactly {} user(s) at creation.",
                rules.min_at_create
            )
        } else {
            format!(
                "A {engine_type} broker takes between {} and {} users at creation.",
                rules.min_at_create, rules.max_at_create
            )
        };
        return Err(Error::bad_request("users", message));
    }
    let mut users: Vec<NewUser> = Vec::with_capacity(users_in.len());
    for u in users_in {
        let username =
            profile.username(&required(u.username, "users.username")?, "users.username")?;
        if users.iter().any(|x| x.username == username.as_str()) {
            return Err(Error::bad_request(
                "users.username",
                format!("User {username} is listed more than once."),
            ));
        }
        let password = Password::parse(&required(u.password, "users.password")?, "users.password")?;
        let groups = u.groups.unwrap_or_default();
        if !rules.groups && !groups.is_empty() {
            return Err(Error::bad_request(
                "users.groups",
                format!("Groups are not supported for engine type {engine_type}."),
            ));
        }
        let groups = super::users::parse_groups(&groups)?;
        if u.replication_user == Some(true) {
            return Err(Error::bad_request(
                "users.replicationUser",
                "Replication users require cross-region data replication, which is not available.",
            ));
        }
        users.push(NewUser {
            username: username.as_str().to_owned(),
            password_enc: ctx.secrets.seal(password.expose()),
            console_access: u.console_access.unwrap_or(false),
            groups,
        });
    }

    if ctx.store.broker_count(&caller.scope).await? >= MAX_BROKERS_PER_ACCOUNT {
        return Err(Error::bad_request(
            "brokerName",
            format!("This account already has the maximum of {MAX_BROKERS_PER_ACCOUNT} brokers."),
        ));
    }

    let id = BrokerId::generate();
    // Pinned host ports: every node's, and the load balancer's (a cluster's one
    // endpoint per protocol).
    let layout = crate::domain::nodes::layout(&id, mode, caller.scope.region.as_str());
    let mut ports: Vec<(i32, &'static str)> = layout
        .indexes()
        .flat_map(|node| {
            profile
                .node_ports()
                .into_iter()
                .map(move |(protocol, _)| (node as i32, protocol))
        })
        .collect();
    if layout.load_balancer {
        ports.extend(
            profile
                .node_ports()
                .into_iter()
                .filter(|(protocol, _)| *protocol != profile::AGENT_PROTOCOL)
                .map(|(protocol, _)| (crate::domain::objects::LOAD_BALANCER_PORTS, protocol)),
        );
    }
    let new = NewBroker {
        id,
        scope: caller.scope.clone(),
        name: name.as_str().to_owned(),
        engine_type: engine_type.as_wire().to_owned(),
        engine_version: version.name.to_owned(),
        deployment_mode: mode.as_wire().to_owned(),
        host_instance_type: instance.name.to_owned(),
        storage_type: storage.as_wire().to_owned(),
        authentication_strategy: "SIMPLE".to_owned(),
        publicly_accessible,
        auto_minor_version_upgrade: req.auto_minor_version_upgrade.unwrap_or(true),
        maintenance_day: day,
        maintenance_time: time,
        maintenance_time_zone: tz,
        logs_general: logs.general.unwrap_or(false),
        logs_audit: logs.audit.unwrap_or(false),
        tags: tags.into_inner(),
        creator_request_id: req.creator_request_id,
        agent_token_enc: ctx.secrets.seal(&random_token()),
        erlang_cookie_enc: ctx.secrets.seal(&random_token()),
        users,
        configuration,
        subnet_ids,
        security_groups,
        ports,
    };
    let row = match ctx.store.broker_create(new, &ctx.ports).await? {
        Created::New(row) => {
            tracing::info!(broker = %row.id, name = %row.name, "broker requested");
            row
        }
        Created::Existing(row) => row,
    };
    ctx.nudger.nudge();
    Ok(row)
}

pub async fn broker_describe(
    ctx: &AppContext,
    caller: &Caller,
    id: &str,
) -> Result<BrokerDetail, Error> {
    let id = BrokerId::parse(id)?;
    let b = ctx
        .store
        .broker_bundle(&caller.scope, &id)
        .await?
        .ok_or_else(|| Error::broker_not_found(id.as_str()))?;
    Ok(BrokerDetail {
        row: b.row,
        users: b.users,
        ports: b.ports,
        nodes: b.nodes,
    })
}

/// One page of brokers and the token of the next page.
pub async fn broker_list(
    ctx: &AppContext,
    caller: &Caller,
    max_results: Option<&str>,
    next_token: Option<&str>,
) -> Result<(Vec<BrokerRow>, Option<String>), Error> {
    let limit = paging::max_results(max_results, 20)?;
    let after = paging::decode_token(next_token)?
        .map(|s| BrokerId::parse(&s).map_err(|_| paging::invalid_token()))
        .transpose()?;
    let mut rows = ctx
        .store
        .broker_list(&caller.scope, after.as_ref(), limit + 1)
        .await?;
    let next = paging::finish_page(&mut rows, limit, |r| r.id.clone());
    Ok((rows, next))
}

/// DeleteBroker: mark for deletion (from any state); the reconciler tears it down.
pub async fn broker_delete(ctx: &AppContext, caller: &Caller, id: &str) -> Result<BrokerId, Error> {
    let id = BrokerId::parse(id)?;
    let row = ctx
        .store
        .broker_fetch(&caller.scope, &id)
        .await?
        .ok_or_else(|| Error::broker_not_found(id.as_str()))?;
    let from = [
        BrokerState::CreationInProgress,
        BrokerState::CreationFailed,
        BrokerState::Running,
        BrokerState::RebootInProgress,
        BrokerState::CriticalActionRequired,
    ];
    if row.state()? != BrokerState::DeletionInProgress {
        ctx.store
            .broker_transition(&id, &from, BrokerState::DeletionInProgress, None)
            .await?;
        tracing::info!(broker = %id, "broker deletion requested");
    }
    ctx.nudger.nudge();
    Ok(id)
}

pub fn broker_arn(row: &BrokerRow) -> String {
    format!(
        "arn:aws:mq:{}:{}:broker:{}:{}",
        row.region, row.account_id, row.name, row.id
    )
}

/// The DescribeBroker view.
pub fn describe_view(
    ctx: &AppContext,
    d: &BrokerDetail,
) -> Result<views::DescribeBrokerResponse, Error> {
    let row = &d.row;
    let engine_type = row.engine()?;
    let state = row.state()?;
    let show_instances = matches!(
        state,
        BrokerState::Running | BrokerState::RebootInProgress | BrokerState::CriticalActionRequired
    );
    let host = &ctx.advertised_host;
    let profile = profile::profile(engine_type);
    let layout = crate::domain::nodes::layout(&row.broker_id(), row.mode()?, &row.region);
    // Endpoints and console of the ports owned by `owner` (a node, or the load balancer).
    let instance = |owner: i32| {
        let port_of = |proto: &str| {
            d.ports
                .iter()
                .find(|p| p.node == owner && p.protocol == proto)
                .map(|p| p.host_port)
        };
        let endpoints: Vec<String> = profile
            .served(ctx.listeners)
            .filter_map(|ep| {
                port_of(ep.protocol).map(|p| format!("{}://{host}:{p}{}", ep.scheme, ep.path))
            })
            .collect();
        let console = profile
            .served_console(ctx.listeners)
            .and_then(|c| port_of(c.protocol).map(|p| format!("{}://{host}:{p}", c.scheme)));
        (endpoints, console)
    };
    let ip_address = (engine_type == EngineType::Activemq).then(|| host.clone());
    let broker_instances = match (show_instances, layout.load_balancer) {
        (false, _) => Vec::new(),
        // A cluster is one instance: its load-balanced endpoint.
        (true, true) => {
            let (endpoints, console_url) = instance(crate::domain::objects::LOAD_BALANCER_PORTS);
            vec![views::BrokerInstance {
                console_url,
                endpoints,
                ip_address: None,
            }]
        }
        (true, false) => layout
            .indexes()
            .map(|node| {
                let (endpoints, console_url) = instance(node as i32);
                views::BrokerInstance {
                    console_url,
                    endpoints,
                    ip_address: ip_address.clone(),
                }
            })
            .collect(),
    };
    let berth_nodes = layout
        .nodes
        .iter()
        .map(|plan| {
            let stored = d.nodes.iter().find(|n| n.node == plan.index as i32);
            let state = stored.and_then(|n| n.current_state());
            let (endpoints, console_url) = instance(plan.index as i32);
            views::BerthNode {
                index: plan.index,
                zone: plan.zone.clone(),
                role: crate::domain::nodes::observed_role(layout.kind, state)
                    .as_wire()
                    .to_owned(),
                engine_state: stored.and_then(|n| n.engine_state.clone()),
                last_error: stored.and_then(|n| n.last_error.clone()),
                unreachable_since: stored
                    .and_then(|n| n.unreachable_since)
                    .map(views::timestamp),
                cluster_running: stored
                    .and_then(|n| n.cluster_running.as_ref().map(|j| j.0.clone())),
                endpoints,
                console_url,
            }
        })
        .collect();
    // Engine alarms are named per node with Amazon MQ's codes; other trouble is one
    // BROKER_UNHEALTHY with the reconciler's reason.
    let alarms: Vec<views::ActionRequired> = layout
        .nodes
        .iter()
        .flat_map(|plan| {
            let stored = d.nodes.iter().find(|n| n.node == plan.index as i32);
            stored
                .map(|n| n.alarms())
                .unwrap_or_default()
                .into_iter()
                .map(move |alarm| views::ActionRequired {
                    action_required_code: alarm.code,
                    action_required_info: format!(
                        "Node {} ({}): {}",
                        plan.index, plan.zone, alarm.message
                    ),
                })
        })
        .collect();
    let actions_required = match (state, &row.state_reason) {
        (BrokerState::CreationFailed, Some(reason)) => vec![views::ActionRequired {
            action_required_code: "CREATION_FAILED".into(),
            action_required_info: reason.clone(),
        }],
        (BrokerState::CriticalActionRequired, _) if !alarms.is_empty() => alarms,
        (BrokerState::CriticalActionRequired, Some(reason)) => vec![views::ActionRequired {
            action_required_code: "BROKER_UNHEALTHY".into(),
            action_required_info: reason.clone(),
        }],
        _ => Vec::new(),
    };
    Ok(views::DescribeBrokerResponse {
        actions_required,
        authentication_strategy: row.authentication_strategy.clone(),
        auto_minor_version_upgrade: row.auto_minor_version_upgrade,
        broker_arn: broker_arn(row),
        broker_id: row.id.clone(),
        broker_instances,
        broker_name: row.name.clone(),
        broker_state: state.as_wire().to_owned(),
        configurations: configurations_view(row),
        created: views::timestamp(row.created_at),
        deployment_mode: row.deployment_mode.clone(),
        encryption_options: views::EncryptionOptions {
            use_aws_owned_key: true,
        },
        engine_type: row.engine_type.clone(),
        engine_version: row.engine_version.clone(),
        host_instance_type: row.host_instance_type.clone(),
        logs: views::LogsSummary {
            general: row.logs_general,
            general_log_group: format!("/aws/amazonmq/broker/{}/general", row.id),
            audit: audit_flag(row)?,
            audit_log_group: audit_flag(row)?
                .map(|_| format!("/aws/amazonmq/broker/{}/audit", row.id)),
        },
        maintenance_window_start_time: WeeklyStartTime {
            day_of_week: Some(row.maintenance_day.clone()),
            time_of_day: Some(row.maintenance_time.clone()),
            time_zone: Some(row.maintenance_time_zone.clone()),
        },
        publicly_accessible: row.publicly_accessible,
        security_groups: row.security_groups.0.clone(),
        storage_type: row.storage_type.clone(),
        subnet_ids: row.subnet_ids.0.clone(),
        tags: row.tags.0.clone(),
        berth_nodes,
        users: d
            .users
            .iter()
            .map(|u| views::UserSummary {
                username: u.username.clone(),
                pending_change: u.pending_change.clone(),
            })
            .collect(),
        pending_engine_version: row.pending_engine_version.clone(),
        pending_host_instance_type: row.pending_host_instance_type.clone(),
    })
}

pub fn summary_view(row: &BrokerRow) -> views::BrokerSummary {
    views::BrokerSummary {
        broker_arn: broker_arn(row),
        broker_id: row.id.clone(),
        broker_name: row.name.clone(),
        broker_state: row.state.clone(),
        created: views::timestamp(row.created_at),
        deployment_mode: row.deployment_mode.clone(),
        engine_type: row.engine_type.clone(),
        host_instance_type: row.host_instance_type.clone(),
    }
}

fn configurations_view(row: &BrokerRow) -> views::Configurations {
    let view = |id: &Option<String>, rev: Option<i32>| {
        id.as_ref()
            .zip(rev)
            .map(|(id, revision)| views::ConfigurationIdView {
                id: id.clone(),
                revision,
            })
    };
    views::Configurations {
        current: view(&row.configuration_id, row.configuration_revision),
        history: row
            .configuration_history
            .0
            .iter()
            .map(|c| views::ConfigurationIdView {
                id: c.id.clone(),
                revision: c.revision,
            })
            .collect(),
        pending: view(
            &row.pending_configuration_id,
            row.pending_configuration_revision,
        ),
    }
}

/// UpdateBroker: settings that Amazon MQ applies at once (maintenance window, minor
/// upgrades, logs) change now; the instance type and engine version become pending and
/// are applied at the next reboot or maintenance window.
pub async fn broker_update(
    ctx: &AppContext,
    caller: &Caller,
    id: &str,
    req: views::UpdateBrokerRequest,
) -> Result<views::UpdateBrokerResponse, Error> {
    let row = owned_broker(ctx, caller, id).await?;
    let bid = row.broker_id();
    if row.state()? == BrokerState::DeletionInProgress {
        return Err(Error::conflict(
            "broker-id",
            format!("Broker {bid} is being deleted."),
        ));
    }
    let engine_type = row.engine()?;
    let current = row.version()?;
    let mut update = crate::db::model::BrokerUpdate::default();

    let target_version = match req.engine_version.as_deref() {
        None => EngineVersion::from_db(
            engine_type,
            row.pending_engine_version
                .as_deref()
                .unwrap_or(&row.engine_version),
        )?,
        Some(v) => {
            let target = EngineVersion::resolve(engine_type, Some(v))?;
            current
                .upgrade_to(&target)
                .map_err(|why| Error::bad_request("engineVersion", why))?;
            update.pending_engine_version =
                Some((target.name != current.name).then(|| target.name.to_owned()));
            target
        }
    };
    if let Some(t) = &req.host_instance_type {
        let it = InstanceType::resolve(t, &target_version)?;
        let storage = crate::domain::StorageType::from_db(&row.storage_type)?;
        profile::profile(engine_type).check_combination(
            row.mode()?,
            &target_version,
            &it,
            storage,
        )?;
        update.pending_host_instance_type =
            Some((it.name != row.host_instance_type).then(|| it.name.to_owned()));
    }
    refuse_unavailable(&Unavailable {
        authentication_strategy: req.authentication_strategy.as_deref(),
        ldap: req.ldap_server_metadata.is_some(),
        storage_size: req.storage_size.is_some(),
        data_replication_mode: req.data_replication_mode.as_deref(),
    })?;
    if let Some(input) = &req.configuration {
        let cfg = super::configurations::resolve_for_broker(
            ctx,
            caller,
            input,
            engine_type,
            &target_version,
        )
        .await?;
        let same = row.configuration_id.as_deref() == Some(cfg.id.as_str())
            && row.configuration_revision == Some(cfg.revision);
        update.pending_configuration = Some((!same).then_some(cfg));
    }
    if req
        .resource_share_arns
        .as_ref()
        .is_some_and(|r| !r.is_empty())
    {
        return Err(Error::bad_request(
            "resourceShareArns",
            "Resource sharing is not available on this Berth installation.",
        ));
    }
    if let Some(logs) = &req.logs {
        check_logs(engine_type, logs)?;
        update.logs_general = logs.general;
        update.logs_audit = logs.audit;
    }
    if let Some(sg) = &req.security_groups {
        update.security_groups = Some(crate::domain::vpc::security_groups(sg)?);
    }
    if req.maintenance_window_start_time.is_some() {
        update.maintenance = Some(maintenance_window(req.maintenance_window_start_time)?);
    }
    update.auto_minor_version_upgrade = req.auto_minor_version_upgrade;
    ctx.store.broker_update(&bid, &update).await?;
    let row = owned_broker(ctx, caller, bid.as_str()).await?;
    let configuration = match &update.pending_configuration {
        Some(Some(c)) => Some(views::ConfigurationIdView {
            id: c.id.clone(),
            revision: c.revision,
        }),
        // Asked for what the broker already runs.
        Some(None) => row
            .configuration_id
            .clone()
            .zip(row.configuration_revision)
            .map(|(id, revision)| views::ConfigurationIdView { id, revision }),
        None => None,
    };
    Ok(views::UpdateBrokerResponse {
        configuration,
        auto_minor_version_upgrade: row.auto_minor_version_upgrade,
        broker_id: row.id.clone(),
        engine_version: req.engine_version.map(|_| target_version.name.to_owned()),
        host_instance_type: req.host_instance_type,
        logs: views::LogsView {
            general: row.logs_general,
            audit: audit_flag(&row)?,
        },
        maintenance_window_start_time: WeeklyStartTime {
            day_of_week: Some(row.maintenance_day.clone()),
            time_of_day: Some(row.maintenance_time.clone()),
            time_zone: Some(row.maintenance_time_zone.clone()),
        },
        security_groups: row.security_groups.0.clone(),
    })
}

/// RebootBroker: REBOOT_IN_PROGRESS now; the reconciler applies pending changes,
/// restarts the engine on the same volume and returns the broker to RUNNING.
pub async fn broker_reboot(ctx: &AppContext, caller: &Caller, id: &str) -> Result<(), Error> {
    let row = owned_broker(ctx, caller, id).await?;
    let bid = row.broker_id();
    if !ctx.store.broker_request_reboot(&bid).await? {
        return Err(Error::bad_request(
            "broker-id",
            format!(
                "Broker {bid} is in state {}; only a RUNNING broker can be rebooted.",
                row.state
            ),
        ));
    }
    tracing::info!(broker = %bid, "reboot requested");
    ctx.nudger.nudge();
    Ok(())
}

/// Promote: only brokers in a cross-region data replication pair can be promoted, and
/// Berth has no CRDR, so every existing broker answers with a clear 400.
pub async fn broker_promote(
    ctx: &AppContext,
    caller: &Caller,
    id: &str,
    mode: Option<&str>,
) -> Result<(), Error> {
    match mode {
        Some("SWITCHOVER") | Some("FAILOVER") => {}
        Some(other) => {
            return Err(Error::bad_request(
                "mode",
                format!("{other} is not a valid mode. Valid values: SWITCHOVER, FAILOVER."),
            ))
        }
        None => return Err(Error::bad_request("mode", "mode is required.")),
    }
    let row = owned_broker(ctx, caller, id).await?;
    Err(Error::bad_request(
        "broker-id",
        format!("Broker {} is not part of a cross-region data replication pair, so it cannot be promoted.", row.id),
    ))
}

/// DescribeSharedResources: Berth shares no VPC resources, so an existing broker has none.
pub async fn broker_shared_resources(
    ctx: &AppContext,
    caller: &Caller,
    id: &str,
    max_results: Option<&str>,
) -> Result<(), Error> {
    paging::max_results(max_results, 20)?;
    owned_broker(ctx, caller, id).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maintenance_window_validation() {
        let w = |d: &str, t: &str, z: Option<&str>| {
            maintenance_window(Some(WeeklyStartTime {
                day_of_week: Some(d.into()),
                time_of_day: Some(t.into()),
                time_zone: z.map(Into::into),
            }))
        };
        assert!(w("MONDAY", "02:30", None).is_ok());
        assert!(w("MONDAY", "02:30", Some("Europe/Berlin")).is_ok());
        assert!(w("MONDAY", "02:30", Some("+02:00")).is_ok());
        assert!(w("FUNDAY", "02:30", None).is_err());
        assert!(w("MONDAY", "25:00", None).is_err());
        assert!(w("MONDAY", "2:30", None).is_err());
        assert_eq!(maintenance_window(None).unwrap().0, "SUNDAY");
    }
}
