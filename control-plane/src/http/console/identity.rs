//! Identity pages: access keys and console users (admin) and the audit log (admin and
//! operator), through `app::identity` and `app::audit`, which authorize every call
//! themselves; the console checks the CSRF token and the role before calling them too.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;

use super::{see_other, session::SourceAddress, ApiState, Audited, Console, Form, Nav};
use crate::app::{audit, authorize, identity, Action};
use crate::error::Error;

/// An access key row.
pub struct KeyItem {
    pub id: String,
    pub description: String,
    pub role: &'static str,
    pub active: bool,
    pub created: String,
    pub last_used: String,
}

#[derive(Template)]
#[template(path = "access_keys.html")]
struct KeysPage {
    nav: Nav,
    keys: Vec<KeyItem>,
    /// A just-created key: its id and secret, shown this once.
    created: Option<(String, String)>,
}

fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

async fn keys_page(
    state: &ApiState,
    c: &Console,
    created: Option<(String, String)>,
) -> Result<KeysPage, Error> {
    let keys = identity::access_key_list(&state.app, &c.caller)
        .await?
        .into_iter()
        .map(|k| KeyItem {
            id: k.access_key_id,
            description: k.description,
            role: k.role.as_str(),
            active: k.active,
            created: when(k.created_at),
            last_used: k.last_used_at.map(when).unwrap_or_else(|| "never".into()),
        })
        .collect();
    Ok(KeysPage {
        nav: c.nav("access-keys"),
        keys,
        created,
    })
}

/// `GET /console/access-keys`.
pub async fn access_keys(State(state): State<ApiState>, c: Console) -> Response {
    match keys_page(&state, &c, None).await {
        Ok(p) => c.render(&p),
        Err(e) => c.error(&e),
    }
}

/// `POST /console/access-keys`: `op` = create, deactivate, activate or delete.
pub async fn access_keys_post(
    State(state): State<ApiState>,
    c: Console,
    SourceAddress(source): SourceAddress,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let typed = Form::parse(&body);
    let operation = match typed.get("op").as_str() {
        "create" => "CreateAccessKey",
        "delete" => "DeleteAccessKey",
        _ => "UpdateAccessKey",
    };
    let mut resource_id = typed.opt("id");
    let result: Result<Response, Error> = async {
        let form = c.form(&headers, &body, Action::Admin)?;
        let app = &state.app;
        let id = form.get("id");
        match form.get("op").as_str() {
            "create" => {
                let (issued, _) = identity::access_key_create(
                    app,
                    &c.caller,
                    form.opt("description").as_deref(),
                    form.opt("role").as_deref(),
                )
                .await?;
                resource_id = Some(issued.access_key_id.clone());
                let page = keys_page(
                    &state,
                    &c,
                    Some((
                        issued.access_key_id.clone(),
                        issued.secret_access_key.clone(),
                    )),
                )
                .await?;
                Ok(c.render(&page))
            }
            "deactivate" | "activate" => {
                let active = form.get("op") == "activate";
                identity::access_key_set_active(app, &c.caller, &id, active).await?;
                Ok(see_other("/console/access-keys"))
            }
            "delete" => {
                identity::access_key_delete(app, &c.caller, &id).await?;
                Ok(see_other("/console/access-keys"))
            }
            other => Err(Error::bad_request(
                "op",
                format!("Unknown operation {other:?}."),
            )),
        }
    }
    .await;
    let what = Audited {
        operation,
        resource_type: "AccessKey",
        resource_id,
    };
    c.audit(&state, source, what, result.as_ref().map(|_| ()))
        .await;
    match result {
        Ok(r) => c.with_cookie(r),
        Err(e) => c.error(&e),
    }
}

/// A console user row.
pub struct UserItem {
    pub username: String,
    pub role: String,
    pub created: String,
    pub is_me: bool,
}

#[derive(Template)]
#[template(path = "console_users.html")]
struct UsersPage {
    nav: Nav,
    users: Vec<UserItem>,
    roles: Vec<String>,
}

/// `GET /console/console-users`.
pub async fn console_users(State(state): State<ApiState>, c: Console) -> Response {
    match identity::console_user_list(&state.app, &c.caller).await {
        Ok(list) => {
            let users = list
                .into_iter()
                .map(|u| UserItem {
                    is_me: u.id == c.session.user_id,
                    username: u.username.as_str().to_owned(),
                    role: u.role.as_str().to_owned(),
                    created: when(u.created_at),
                })
                .collect();
            c.render(&UsersPage {
                nav: c.nav("console-users"),
                users,
                roles: crate::app::Role::ALL
                    .iter()
                    .map(|r| r.as_str().to_owned())
                    .collect(),
            })
        }
        Err(e) => c.error(&e),
    }
}

/// `POST /console/console-users`: `op` = create, role or delete.
pub async fn console_users_post(
    State(state): State<ApiState>,
    c: Console,
    SourceAddress(source): SourceAddress,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let typed = Form::parse(&body);
    let what = Audited {
        operation: match typed.get("op").as_str() {
            "create" => "CreateConsoleUser",
            "delete" => "DeleteConsoleUser",
            _ => "UpdateConsoleUser",
        },
        resource_type: "ConsoleUser",
        resource_id: typed.opt("username"),
    };
    let result: Result<(), Error> = async {
        let form = c.form(&headers, &body, Action::Admin)?;
        let app = &state.app;
        let username = form.get("username");
        match form.get("op").as_str() {
            "create" => {
                identity::console_user_create(
                    app,
                    &c.caller,
                    &username,
                    &form.raw("password"),
                    &form.get("role"),
                )
                .await?;
            }
            "role" => {
                identity::console_user_update(
                    app,
                    &c.caller,
                    &username,
                    Some(&form.get("role")),
                    None,
                )
                .await?;
            }
            "delete" => identity::console_user_delete(app, &c.caller, &username).await?,
            other => {
                return Err(Error::bad_request(
                    "op",
                    format!("Unknown operation {other:?}."),
                ))
            }
        }
        Ok(())
    }
    .await;
    c.audit(&state, source, what, result.as_ref().map(|_| ()))
        .await;
    match result {
        Ok(()) => c.with_cookie(see_other("/console/console-users")),
        Err(e) => c.error(&e),
    }
}

/// An audit event row.
pub struct EventItem {
    pub time: String,
    pub who: String,
    pub operation: String,
    pub resource: String,
    pub source: String,
    pub status: i32,
    pub error: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    nav: Nav,
    events: Vec<EventItem>,
    resource: String,
    next: Option<String>,
}

#[derive(serde::Deserialize, Default)]
pub struct AuditParams {
    resource: Option<String>,
    next: Option<String>,
}

/// `GET /console/audit?resource=…&next=…`.
pub async fn audit(
    State(state): State<ApiState>,
    c: Console,
    Query(q): Query<AuditParams>,
) -> Response {
    let result = async {
        authorize(&c.caller, Action::ReadAudit)?;
        audit::list(
            &state.app,
            &c.caller,
            audit::AuditQuery {
                resource_id: q.resource.as_deref(),
                principal: None,
                max_results: Some("50"),
                next_token: q.next.as_deref().filter(|s| !s.is_empty()),
            },
        )
        .await
    }
    .await;
    match result {
        Ok((events, next)) => c.render(&AuditPage {
            nav: c.nav("audit"),
            events: events
                .into_iter()
                .map(|e| EventItem {
                    time: when(e.time),
                    who: e.principal_name.unwrap_or(e.principal_id),
                    operation: e.operation,
                    resource: [e.resource_type, e.resource_id]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(" "),
                    source: e.source_address.unwrap_or_default(),
                    status: e.status,
                    error: e.error_code.unwrap_or_default(),
                })
                .collect(),
            resource: q.resource.unwrap_or_default(),
            next,
        }),
        Err(e) => c.error(&e),
    }
}
