//! Broker pages: the list, one broker's page (state, nodes, endpoints, snippets, pending
//! changes, users, tags, configuration revisions, actions) and the create wizard. Data
//! comes from `app::brokers` and friends with the session's [`Caller`]; every action is
//! a form POST checked for CSRF and authorized before the app layer runs it.

use std::collections::BTreeMap;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;

use super::snippets::{snippets, Snippet};
use super::{
    html, in_transition, see_other, session::SourceAddress, state_class, ApiState, Audited,
    Console, Form, Nav,
};
use crate::app::{brokers, configurations, destinations, tags, users, Action};
use crate::domain::catalogue::{ENGINE_VERSIONS, INSTANCE_TYPES};
use crate::error::Error;
use crate::wire;

/// One row of the broker list.
pub struct BrokerItem {
    pub id: String,
    pub name: String,
    pub state: String,
    pub state_class: &'static str,
    pub engine: String,
    pub mode: String,
    pub instance_type: String,
    pub created: String,
}

#[derive(Template)]
#[template(path = "brokers.html")]
struct ListPage {
    nav: Nav,
    brokers: Vec<BrokerItem>,
    next: Option<String>,
}

#[derive(serde::Deserialize, Default)]
pub struct ListQuery {
    next: Option<String>,
}

/// `GET /console/brokers`.
pub async fn list(
    State(state): State<ApiState>,
    c: Console,
    Query(q): Query<ListQuery>,
) -> Response {
    let (rows, next) =
        match brokers::broker_list(&state.app, &c.caller, Some("50"), q.next.as_deref()).await {
            Ok(v) => v,
            Err(e) => return c.error(&e),
        };
    let brokers = rows
        .iter()
        .map(|r| BrokerItem {
            id: r.id.clone(),
            name: r.name.clone(),
            state_class: state_class(&r.state),
            state: r.state.clone(),
            engine: format!("{} {}", r.engine_type, r.engine_version),
            mode: r.deployment_mode.clone(),
            instance_type: r.host_instance_type.clone(),
            created: r.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
        })
        .collect();
    c.render(&ListPage {
        nav: c.nav("brokers"),
        brokers,
        next,
    })
}

/// A node of the broker page.
pub struct NodeItem {
    pub index: u32,
    pub zone: String,
    pub role: String,
    pub health: String,
    pub health_class: &'static str,
}

/// One endpoint with its protocol.
pub struct EndpointItem {
    pub protocol: String,
    pub url: String,
    /// `endpoint-<protocol>-<instance>` (`+` becomes `-`).
    pub dom_id: String,
}

/// A broker user with its pending change.
pub struct UserItem {
    pub username: String,
    pub pending: Option<String>,
    pub console_access: bool,
    pub groups: String,
}

/// A pending change: what it is now, what it becomes.
pub struct PendingItem {
    pub what: &'static str,
    pub current: String,
    pub pending: String,
}

/// A configuration revision of the broker's configuration.
pub struct RevisionItem {
    pub revision: i32,
    pub created: String,
    pub description: String,
}

/// One line of a diff: `+`, `-` or ` `.
pub struct DiffLine {
    pub sign: &'static str,
    pub class: &'static str,
    pub text: String,
}

#[derive(Template)]
#[template(path = "broker.html")]
struct BrokerPage {
    nav: Nav,
    id: String,
    name: String,
    arn: String,
    state: String,
    state_class: &'static str,
    transition: bool,
    engine: String,
    version: String,
    mode: String,
    instance_type: String,
    created: String,
    maintenance: String,
    actions_required: Vec<String>,
    nodes: Vec<NodeItem>,
    instances: Vec<Vec<EndpointItem>>,
    snippets: Vec<Snippet>,
    pending: Vec<PendingItem>,
    users: Vec<UserItem>,
    tags: Vec<(String, String)>,
    instance_types: Vec<String>,
    configuration_id: Option<String>,
    configuration_revision: Option<i32>,
    revisions: Vec<RevisionItem>,
    editor_text: String,
    warnings: Vec<String>,
    diff: Vec<DiffLine>,
    diff_from: i32,
    diff_to: i32,
    message: Option<String>,
    error: Option<String>,
    /// The broker's queues and topics (read through its agent while RUNNING).
    destinations: Vec<DestinationItem>,
    /// Why no destinations are listed (not RUNNING, or the agent's answer).
    destinations_note: Option<String>,
    /// The queue peeked at and what the peek showed.
    peeked_queue: String,
    peeked: Vec<PeekItem>,
    /// This broker's alarms (the Alarms panel).
    alarms: Vec<super::alarms::AlarmItem>,
}

/// A row of the queues and topics table.
struct DestinationItem {
    kind: &'static str,
    name: String,
    messages: u64,
    ready: u64,
    unacked: u64,
    consumers: u64,
    rates: String,
}

/// A message seen by a peek.
struct PeekItem {
    body: String,
    headers: String,
    redelivered: bool,
}

#[derive(serde::Deserialize, Default)]
pub struct PageQuery {
    from: Option<i32>,
    to: Option<i32>,
    done: Option<String>,
}

fn protocol_of(url: &str) -> String {
    url.split("://").next().unwrap_or("").to_owned()
}

/// The API's base URL as the visitor reached it (for the aws CLI snippet).
fn api_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1:8080");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .filter(|p| p.eq_ignore_ascii_case("https"))
        .map_or("http", |_| "https");
    format!("{scheme}://{host}")
}

/// What the broker page shows beyond the broker itself: a notice, an error, a revision
/// text and the sanitizer's warnings after a failed or successful save.
#[derive(Default)]
struct Extras {
    message: Option<String>,
    error: Option<String>,
    editor_text: Option<String>,
    warnings: Vec<String>,
    /// A peek's queue and messages.
    peeked: Option<(String, Vec<agent_contract::PeekedMessage>)>,
}

/// The broker's destinations for the page, or why there are none.
async fn destination_items(
    state: &ApiState,
    c: &Console,
    id: &str,
    broker_state: &str,
) -> (Vec<DestinationItem>, Option<String>) {
    if broker_state != "RUNNING" {
        return (
            Vec::new(),
            Some("Queues and topics are listed while the broker is RUNNING.".into()),
        );
    }
    match destinations::destinations_list(&state.app, &c.caller, id).await {
        Ok(list) => {
            let items = list
                .into_iter()
                .map(|d| DestinationItem {
                    kind: d.kind.as_str(),
                    name: d.name,
                    messages: d.messages,
                    ready: d.messages_ready,
                    unacked: d.messages_unacked,
                    consumers: d.consumers,
                    rates: match (d.publish_rate, d.deliver_rate) {
                        (None, None) => "–".into(),
                        (p, d) => format!(
                            "in {:.1}/s, out {:.1}/s",
                            p.unwrap_or_default(),
                            d.unwrap_or_default()
                        ),
                    },
                })
                .collect::<Vec<_>>();
            let note = items
                .is_empty()
                .then(|| "No queues or topics yet.".to_owned());
            (items, note)
        }
        Err(e) => (Vec::new(), Some(e.to_string())),
    }
}

async fn broker_page(
    state: &ApiState,
    c: &Console,
    headers: &HeaderMap,
    id: &str,
    q: PageQuery,
    extras: Extras,
) -> Result<BrokerPage, Error> {
    let d = brokers::broker_describe(&state.app, &c.caller, id).await?;
    let v = brokers::describe_view(&state.app, &d)?;
    let nodes = v
        .berth_nodes
        .iter()
        .map(|n| {
            let (health, class) = match (&n.unreachable_since, &n.last_error, &n.engine_state) {
                (Some(since), _, _) => (format!("unreachable since {since}"), "bad"),
                (_, Some(err), _) => (err.clone(), "bad"),
                (_, _, Some(s)) if s == "ready" => ("healthy".to_owned(), "ok"),
                (_, _, Some(s)) => (s.clone(), "busy"),
                _ => ("unknown".to_owned(), "neutral"),
            };
            NodeItem {
                index: n.index,
                zone: n.zone.clone(),
                role: n.role.clone(),
                health,
                health_class: class,
            }
        })
        .collect();
    let instances: Vec<Vec<EndpointItem>> = v
        .broker_instances
        .iter()
        .enumerate()
        .map(|(n, i)| {
            let item = |protocol: String, url: &String| EndpointItem {
                dom_id: format!("endpoint-{}-{n}", protocol.replace('+', "-")),
                protocol,
                url: url.clone(),
            };
            let mut eps: Vec<EndpointItem> = i
                .endpoints
                .iter()
                .map(|e| item(protocol_of(e), e))
                .collect();
            if let Some(u) = &i.console_url {
                eps.push(item("console".into(), u));
            }
            eps
        })
        .collect();
    let first_user = d
        .users
        .iter()
        .map(|u| u.username.clone())
        .next()
        .unwrap_or_else(|| "<user>".into());
    let raw_instances: Vec<Vec<String>> = v
        .broker_instances
        .iter()
        .map(|i| i.endpoints.clone())
        .collect();
    let snippets = if raw_instances.is_empty() {
        Vec::new()
    } else {
        snippets(
            &v.engine_type,
            &v.broker_id,
            &raw_instances,
            &first_user,
            &api_url(headers),
        )
    };
    let window = &v.maintenance_window_start_time;
    let maintenance = format!(
        "{} {} {}",
        window.day_of_week.clone().unwrap_or_default(),
        window.time_of_day.clone().unwrap_or_default(),
        window.time_zone.clone().unwrap_or_default()
    );
    let mut pending = Vec::new();
    if let Some(p) = &v.pending_host_instance_type {
        pending.push(PendingItem {
            what: "Instance type",
            current: v.host_instance_type.clone(),
            pending: p.clone(),
        });
    }
    if let Some(p) = &v.pending_engine_version {
        pending.push(PendingItem {
            what: "Engine version",
            current: v.engine_version.clone(),
            pending: p.clone(),
        });
    }
    if let Some(p) = &v.configurations.pending {
        let current = v
            .configurations
            .current
            .as_ref()
            .map(|c| format!("{} revision {}", c.id, c.revision))
            .unwrap_or_else(|| "none".into());
        let next = format!("{} revision {}", p.id, p.revision);
        if current != next {
            pending.push(PendingItem {
                what: "Configuration",
                current,
                pending: next,
            });
        }
    }
    let users = d
        .users
        .iter()
        .map(|u| UserItem {
            username: u.username.clone(),
            pending: u.pending_change.clone(),
            console_access: u.console_access,
            groups: u.groups.0.join(", "),
        })
        .collect();
    let engine = d.row.engine()?;
    let version = crate::domain::EngineVersion::from_db(engine, &d.row.engine_version).ok();
    let instance_types = INSTANCE_TYPES
        .iter()
        .filter(|t| version.is_some_and(|v| t.runs(&v)))
        .map(|t| t.name.to_owned())
        .collect();
    // The configuration in use (or pending), its revisions and a diff of two of them.
    let cfg = v
        .configurations
        .pending
        .as_ref()
        .or(v.configurations.current.as_ref());
    let (configuration_id, configuration_revision) =
        (cfg.map(|c| c.id.clone()), cfg.map(|c| c.revision));
    let mut revisions = Vec::new();
    let mut editor_text = String::new();
    let mut diff = Vec::new();
    let (mut diff_from, mut diff_to) = (0, 0);
    if let Some(cid) = &configuration_id {
        let list =
            configurations::revision_list(&state.app, &c.caller, cid, Some("100"), None).await?;
        revisions = list
            .revisions
            .iter()
            .rev()
            .map(|r| RevisionItem {
                revision: r.revision,
                created: r.created.clone(),
                description: r.description.clone(),
            })
            .collect();
        let latest = list.revisions.iter().map(|r| r.revision).max().unwrap_or(1);
        editor_text = revision_text(state, c, cid, latest).await?;
        diff_to = q.to.unwrap_or(latest);
        diff_from = q.from.unwrap_or((diff_to - 1).max(1));
        if diff_from != diff_to {
            let a = revision_text(state, c, cid, diff_from).await?;
            let b = revision_text(state, c, cid, diff_to).await?;
            diff = line_diff(&a, &b);
        }
    }
    let message = extras.message.or(match q.done.as_deref() {
        Some("reboot") => Some("Reboot requested.".into()),
        Some("resize") => Some(
            "Instance type change recorded; it applies at the next reboot or maintenance window."
                .into(),
        ),
        Some("user") => Some("User change recorded; the broker applies it shortly.".into()),
        Some("tags") => Some("Tags saved.".into()),
        Some("revision") => Some("Revision saved.".into()),
        _ => None,
    });
    let (dest_items, dest_note) = destination_items(state, c, id, &v.broker_state).await;
    let (peeked_queue, peeked) = match extras.peeked {
        Some((queue, messages)) => (
            queue,
            messages
                .into_iter()
                .map(|m| PeekItem {
                    body: if m.body_base64 {
                        format!("(base64) {}", m.body)
                    } else {
                        m.body
                    },
                    headers: m
                        .headers
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    redelivered: m.redelivered,
                })
                .collect(),
        ),
        None => (String::new(), Vec::new()),
    };
    Ok(BrokerPage {
        nav: c.nav("brokers"),
        id: v.broker_id.clone(),
        name: v.broker_name.clone(),
        arn: v.broker_arn.clone(),
        state_class: state_class(&v.broker_state),
        transition: in_transition(&v.broker_state),
        state: v.broker_state.clone(),
        engine: v.engine_type.clone(),
        version: v.engine_version.clone(),
        mode: v.deployment_mode.clone(),
        instance_type: v.host_instance_type.clone(),
        created: v.created.clone(),
        maintenance,
        actions_required: v
            .actions_required
            .iter()
            .map(|a| format!("{}: {}", a.action_required_code, a.action_required_info))
            .collect(),
        nodes,
        instances,
        snippets,
        pending,
        users,
        tags: v.tags.clone().into_iter().collect(),
        instance_types,
        configuration_id,
        configuration_revision,
        revisions,
        editor_text: extras.editor_text.unwrap_or(editor_text),
        warnings: extras.warnings,
        diff,
        diff_from,
        diff_to,
        message,
        error: extras.error,
        destinations: dest_items,
        destinations_note: dest_note,
        peeked_queue,
        peeked,
        alarms: super::alarms::broker_alarms(state, c, id).await?,
    })
}

async fn revision_text(
    state: &ApiState,
    c: &Console,
    cid: &str,
    revision: i32,
) -> Result<String, Error> {
    let r = configurations::revision_describe(&state.app, &c.caller, cid, &revision.to_string())
        .await?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(r.data.as_bytes())
        .map_err(|e| Error::internal("stored revision data", e))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// A line diff of `a` → `b`.
pub fn line_diff(a: &str, b: &str) -> Vec<DiffLine> {
    similar::TextDiff::from_lines(a, b)
        .iter_all_changes()
        .map(|ch| {
            let (sign, class) = match ch.tag() {
                similar::ChangeTag::Delete => ("-", "del"),
                similar::ChangeTag::Insert => ("+", "ins"),
                similar::ChangeTag::Equal => (" ", "eq"),
            };
            DiffLine {
                sign,
                class,
                text: ch.value().trim_end_matches('\n').to_owned(),
            }
        })
        .collect()
}

/// `GET /console/brokers/{id}`.
pub async fn page(
    State(state): State<ApiState>,
    c: Console,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    match broker_page(&state, &c, &headers, &id, q, Extras::default()).await {
        Ok(p) => c.render(&p),
        Err(e) => c.error(&e),
    }
}

/// `GET /console/brokers/{id}/state`: the state, for the page's poll while in transition.
pub async fn state_json(
    State(state): State<ApiState>,
    c: Console,
    Path(id): Path<String>,
) -> Response {
    match brokers::broker_describe(&state.app, &c.caller, &id).await {
        Ok(d) => {
            let s = d.row.state;
            c.with_cookie(
                (
                    [(header::CACHE_CONTROL, "no-store")],
                    Json(serde_json::json!({"state": s, "transition": in_transition(&s)})),
                )
                    .into_response(),
            )
        }
        Err(e) => c.error(&e),
    }
}

/// `POST /console/brokers/{id}/{action}`: reboot, resize, delete, user-add, user-edit,
/// user-delete, tag-add, tag-delete, revision.
pub async fn action(
    State(state): State<ApiState>,
    c: Console,
    SourceAddress(source): SourceAddress,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let (operation, resource_type) = match action.as_str() {
        "reboot" => ("RebootBroker", "Broker"),
        "resize" => ("UpdateBroker", "Broker"),
        "delete" => ("DeleteBroker", "Broker"),
        "user-add" => ("CreateUser", "User"),
        "user-edit" => ("UpdateUser", "User"),
        "user-delete" => ("DeleteUser", "User"),
        "tag-add" => ("CreateTags", "Tags"),
        "tag-delete" => ("DeleteTags", "Tags"),
        "revision" => ("UpdateConfiguration", "Configuration"),
        "send" => ("SendTestMessage", "Destination"),
        "peek" => ("PeekMessages", "Destination"),
        _ => ("Console", "Broker"),
    };
    let form = Form::parse(&body);
    let resource_id = match resource_type {
        "User" => Some(format!("{id}/{}", form.get("username"))),
        "Configuration" => Some(form.get("configurationId")),
        "Destination" => Some(format!("{id}/{}", form.get("name"))),
        _ => Some(id.clone()),
    };
    let what = Audited {
        operation,
        resource_type,
        resource_id,
    };
    let form = match c.form(&headers, &body, Action::Write) {
        Ok(f) => f,
        Err(e) => {
            c.audit(&state, source, what, Err(&e)).await;
            return c.error(&e);
        }
    };
    let back = |done: &str| see_other(&format!("/console/brokers/{id}?done={done}"));
    let result: Result<Response, Error> = async {
        let app = &state.app;
        let caller = &c.caller;
        match action.as_str() {
            "reboot" => {
                brokers::broker_reboot(app, caller, &id).await?;
                Ok(back("reboot"))
            }
            "resize" => {
                let req = wire::UpdateBrokerRequest {
                    host_instance_type: Some(form.get("hostInstanceType")),
                    ..Default::default()
                };
                brokers::broker_update(app, caller, &id, req).await?;
                Ok(back("resize"))
            }
            "delete" => {
                let d = brokers::broker_describe(app, caller, &id).await?;
                if form.get("confirm") != d.row.name {
                    return Err(Error::bad_request(
                        "confirm",
                        format!("Type the broker's name, {}, to delete it.", d.row.name),
                    ));
                }
                brokers::broker_delete(app, caller, &id).await?;
                Ok(see_other("/console/brokers"))
            }
            "user-add" | "user-edit" => {
                let username = form.get("username");
                let groups: Vec<String> = form
                    .get("groups")
                    .split(',')
                    .map(|g| g.trim().to_owned())
                    .filter(|g| !g.is_empty())
                    .collect();
                let req = wire::UserRequest {
                    console_access: Some(form.checked("consoleAccess")),
                    groups: Some(groups),
                    password: Some(form.raw("password")).filter(|p| !p.is_empty()),
                    replication_user: None,
                };
                if action == "user-add" {
                    users::user_create(app, caller, &id, &username, req).await?;
                } else {
                    users::user_update(app, caller, &id, &username, req).await?;
                }
                Ok(back("user"))
            }
            "user-delete" => {
                users::user_delete(app, caller, &id, &form.get("username")).await?;
                Ok(back("user"))
            }
            "tag-add" | "tag-delete" => {
                let d = brokers::broker_describe(app, caller, &id).await?;
                let arn = brokers::broker_arn(&d.row);
                if action == "tag-add" {
                    let mut add = BTreeMap::new();
                    add.insert(form.get("key"), form.raw("value"));
                    tags::tags_create(app, caller, &arn, add).await?;
                } else {
                    tags::tags_delete(app, caller, &arn, &[form.get("key")]).await?;
                }
                Ok(back("tags"))
            }
            "revision" => {
                let cid = form.get("configurationId");
                let req = wire::UpdateConfigurationRequest {
                    data: Some(base64::engine::general_purpose::STANDARD.encode(form.raw("data"))),
                    description: Some(form.get("description")),
                };
                let saved = configurations::configuration_update(app, caller, &cid, req).await;
                let extras = match saved {
                    Ok(r) => Extras {
                        message: Some(format!("Revision {} saved.", r.latest_revision.revision)),
                        warnings: r
                            .warnings
                            .iter()
                            .map(|w| {
                                format!(
                                    "{}: <{}>{}",
                                    w.reason,
                                    w.element_name,
                                    w.attribute_name
                                        .as_ref()
                                        .map(|a| format!(" attribute {a}"))
                                        .unwrap_or_default()
                                )
                            })
                            .collect(),
                        ..Default::default()
                    },
                    Err(e @ Error::BadRequest { .. }) => Extras {
                        error: Some(e.to_string()),
                        editor_text: Some(form.raw("data")),
                        ..Default::default()
                    },
                    Err(e) => return Err(e),
                };
                let p =
                    broker_page(&state, &c, &headers, &id, PageQuery::default(), extras).await?;
                Ok(c.render(&p))
            }
            "send" => {
                let message = agent_contract::TestMessage {
                    body: form.raw("body"),
                    properties: BTreeMap::new(),
                    persistent: true,
                };
                let (kind, name) = (form.get("kind"), form.get("name"));
                destinations::destination_send(app, caller, &id, &kind, &name, message).await?;
                Ok(back("send"))
            }
            "peek" => {
                let name = form.get("name");
                let count = form.get("count").parse().ok();
                let messages =
                    destinations::destination_peek(app, caller, &id, &name, count).await?;
                let extras = Extras {
                    message: Some(format!(
                        "{} message(s) at the head of {name}, left in the queue.",
                        messages.len()
                    )),
                    peeked: Some((name, messages)),
                    ..Default::default()
                };
                let p =
                    broker_page(&state, &c, &headers, &id, PageQuery::default(), extras).await?;
                Ok(c.render(&p))
            }
            _ => Err(Error::not_found(
                "action",
                format!("The console has no broker action {action:?}."),
            )),
        }
    }
    .await;
    c.audit(&state, source, what, result.as_ref().map(|_| ()))
        .await;
    match result {
        Ok(r) => c.with_cookie(r),
        Err(e) => c.error(&e),
    }
}

/// An option of a select: value, label, selected.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// The values a wizard form shows (typed values survive an error, except the password).
#[derive(Clone, Debug)]
pub struct WizardValues {
    pub name: String,
    pub engine_version: String,
    pub mode: String,
    pub instance_type: String,
    pub storage: String,
    pub username: String,
    pub public: bool,
    pub day: String,
    pub time: String,
    pub zone: String,
    pub configuration: String,
}

impl Default for WizardValues {
    fn default() -> Self {
        Self {
            name: String::new(),
            engine_version: "RABBITMQ 4.0".into(),
            mode: "SINGLE_INSTANCE".into(),
            instance_type: "mq.m7g.large".into(),
            storage: "EBS".into(),
            username: String::new(),
            public: false,
            day: "SUNDAY".into(),
            time: "03:00".into(),
            zone: "UTC".into(),
            configuration: String::new(),
        }
    }
}

#[derive(Template)]
#[template(path = "new_broker.html")]
struct WizardPage {
    nav: Nav,
    v: WizardValues,
    engines: Vec<Choice>,
    modes: Vec<Choice>,
    instance_types: Vec<Choice>,
    storages: Vec<Choice>,
    days: Vec<Choice>,
    configurations: Vec<Choice>,
    /// The attribute the error names, and its message.
    error_attribute: String,
    error: Option<String>,
}

fn choices(items: Vec<(String, String)>, selected: &str) -> Vec<Choice> {
    items
        .into_iter()
        .map(|(value, label)| Choice {
            selected: value == selected,
            value,
            label,
        })
        .collect()
}

async fn wizard_page(
    state: &ApiState,
    c: &Console,
    v: WizardValues,
    error: Option<&Error>,
) -> Result<WizardPage, Error> {
    let engines = choices(
        ENGINE_VERSIONS
            .iter()
            .map(|e| {
                let value = format!("{} {}", e.engine.as_wire(), e.name);
                let label = format!("{} {} ({})", e.engine.as_wire(), e.name, e.full);
                (value, label)
            })
            .collect(),
        &v.engine_version,
    );
    let modes = choices(
        [
            "SINGLE_INSTANCE",
            "ACTIVE_STANDBY_MULTI_AZ",
            "CLUSTER_MULTI_AZ",
        ]
        .iter()
        .map(|m| (m.to_string(), m.to_string()))
        .collect(),
        &v.mode,
    );
    let instance_types = choices(
        INSTANCE_TYPES
            .iter()
            .map(|t| {
                (
                    t.name.to_owned(),
                    format!("{} ({} vCPU, {} GiB)", t.name, t.vcpus, t.memory_gib),
                )
            })
            .collect(),
        &v.instance_type,
    );
    let storages = choices(
        ["EBS", "EFS"]
            .iter()
            .map(|m| (m.to_string(), m.to_string()))
            .collect(),
        &v.storage,
    );
    let days = choices(
        crate::domain::maintenance::DAY_NAMES
            .iter()
            .map(|d| (d.to_string(), d.to_string()))
            .collect(),
        &v.day,
    );
    let mut configurations = vec![("".to_owned(), "Default configuration".to_owned())];
    let list = configurations::configuration_list(&state.app, &c.caller, Some("100"), None).await?;
    for cfg in list.configurations {
        configurations.push((
            cfg.id.clone(),
            format!("{} ({} {})", cfg.name, cfg.engine_type, cfg.engine_version),
        ));
    }
    let configurations = choices(configurations, &v.configuration);
    Ok(WizardPage {
        nav: c.nav("brokers"),
        v,
        engines,
        modes,
        instance_types,
        storages,
        days,
        configurations,
        error_attribute: error
            .and_then(|e| e.attribute())
            .map(wizard_field)
            .unwrap_or_default()
            .to_owned(),
        error: error.map(|e| e.to_string()),
    })
}

/// The wizard field an `errorAttribute` points at.
fn wizard_field(attribute: &str) -> &'static str {
    let a = attribute.split('.').next().unwrap_or(attribute);
    match a {
        "brokerName" => "brokerName",
        "engineType" | "engineVersion" => "engine",
        "deploymentMode" => "deploymentMode",
        "hostInstanceType" => "hostInstanceType",
        "storageType" => "storageType",
        "users" | "username" | "password" => {
            if attribute.contains("password") {
                "password"
            } else {
                "username"
            }
        }
        "maintenanceWindowStartTime" => "maintenance",
        "configuration" => "configuration",
        "publiclyAccessible" => "publiclyAccessible",
        _ => "form",
    }
}

/// `GET /console/brokers/new`.
pub async fn wizard(State(state): State<ApiState>, c: Console) -> Response {
    match wizard_page(&state, &c, WizardValues::default(), None).await {
        Ok(p) => c.render(&p),
        Err(e) => c.error(&e),
    }
}

/// `POST /console/brokers/new`: CreateBroker through the app layer; on a bad input the
/// form again, the message at the field it names, typed values kept (not the password).
pub async fn create(
    State(state): State<ApiState>,
    c: Console,
    SourceAddress(source): SourceAddress,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let what = |resource_id| Audited {
        operation: "CreateBroker",
        resource_type: "Broker",
        resource_id,
    };
    let form = match c.form(&headers, &body, Action::Write) {
        Ok(f) => f,
        Err(e) => {
            c.audit(&state, source, what(None), Err(&e)).await;
            return c.error(&e);
        }
    };
    let v = WizardValues {
        name: form.get("brokerName"),
        engine_version: form.get("engine"),
        mode: form.get("deploymentMode"),
        instance_type: form.get("hostInstanceType"),
        storage: form.get("storageType"),
        username: form.get("username"),
        public: form.checked("publiclyAccessible"),
        day: form.get("day"),
        time: form.get("time"),
        zone: form.get("zone"),
        configuration: form.get("configuration"),
    };
    let (engine, version) = v
        .engine_version
        .split_once(' ')
        .map(|(e, v)| (e.to_owned(), v.to_owned()))
        .unwrap_or_else(|| (v.engine_version.clone(), String::new()));
    let req = wire::CreateBrokerRequest {
        broker_name: Some(v.name.clone()),
        engine_type: Some(engine),
        engine_version: Some(version).filter(|s| !s.is_empty()),
        deployment_mode: Some(v.mode.clone()),
        host_instance_type: Some(v.instance_type.clone()),
        storage_type: Some(v.storage.clone()),
        publicly_accessible: Some(v.public),
        auto_minor_version_upgrade: Some(true),
        maintenance_window_start_time: Some(wire::WeeklyStartTime {
            day_of_week: Some(v.day.clone()),
            time_of_day: Some(v.time.clone()),
            time_zone: Some(v.zone.clone()).filter(|z| !z.is_empty()),
        }),
        configuration: (!v.configuration.is_empty()).then(|| wire::ConfigurationIdInput {
            id: Some(v.configuration.clone()),
            revision: None,
        }),
        users: Some(vec![wire::UserInput {
            username: Some(v.username.clone()),
            password: Some(form.raw("password")),
            console_access: Some(true),
            groups: None,
            replication_user: None,
        }]),
        ..Default::default()
    };
    let created = brokers::broker_create(&state.app, &c.caller, req).await;
    let rid = created.as_ref().ok().map(|r| r.id.clone());
    c.audit(&state, source, what(rid), created.as_ref().map(|_| ()))
        .await;
    match created {
        Ok(row) => c.with_cookie(see_other(&format!("/console/brokers/{}", row.id))),
        Err(e @ (Error::BadRequest { .. } | Error::Conflict { .. } | Error::NotFound { .. })) => {
            match wizard_page(&state, &c, v, Some(&e)).await {
                Ok(p) => c.with_cookie(html(StatusCode::BAD_REQUEST, &p)),
                Err(e) => c.error(&e),
            }
        }
        Err(e) => c.error(&e),
    }
}
