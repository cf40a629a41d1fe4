//! Berth's identity and audit routes, under `/v1/berth/` (no Amazon MQ path starts
//! there): access keys, console users (admin only) and the audit log (admin and
//! operator). Handlers parse, call `app::identity` / `app::audit`, and render.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::body::parse_json;
use super::ApiState;
use crate::app::audit::{self, AuditEvent, AuditQuery};
use crate::app::identity::{self, AccessKeyInfo, ConsoleUser};
use crate::app::Caller;
use crate::error::Error;
use crate::wire::{timestamp, Empty, ErrorBody};

pub const TAG_KEYS: &str = "access-keys";
pub const TAG_USERS: &str = "console-users";
pub const TAG_AUDIT: &str = "audit";

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_access_keys, create_access_key))
        .routes(routes!(delete_access_key))
        .routes(routes!(deactivate_access_key))
        .routes(routes!(activate_access_key))
        .routes(routes!(list_console_users, create_console_user))
        .routes(routes!(update_console_user, delete_console_user))
        .routes(routes!(list_audit_events))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateAccessKeyRequest {
    /// Free text kept with the key (at most 256 characters).
    pub description: Option<String>,
    /// `admin` (default), `operator` or `viewer`.
    pub role: Option<String>,
}

/// An access key; never its secret.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessKeyView {
    pub access_key_id: String,
    pub account_id: String,
    pub description: String,
    pub role: String,
    pub active: bool,
    pub created: String,
    /// Last time it signed a request (to the minute).
    pub last_used: Option<String>,
}

fn key_view(k: &AccessKeyInfo) -> AccessKeyView {
    AccessKeyView {
        access_key_id: k.access_key_id.clone(),
        account_id: k.account.as_str().to_owned(),
        description: k.description.clone(),
        role: k.role.as_str().to_owned(),
        active: k.active,
        created: timestamp(k.created_at),
        last_used: k.last_used_at.map(timestamp),
    }
}

/// A new key with its secret: shown this once, never again.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateAccessKeyResponse {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub account_id: String,
    pub description: String,
    pub role: String,
    pub active: bool,
    pub created: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListAccessKeysResponse {
    pub access_keys: Vec<AccessKeyView>,
}

/// CreateAccessKey (admin): a key of the caller's account. The secret is in this answer
/// only.
#[utoipa::path(post, path = "/v1/berth/access-keys", tag = TAG_KEYS, operation_id = "CreateAccessKey",
    request_body = CreateAccessKeyRequest,
    responses(
        (status = 200, body = CreateAccessKeyResponse),
        (status = 400, description = "BadRequestException", body = ErrorBody),
        (status = 403, description = "AccessDeniedException: not an admin", body = ErrorBody),
    ))]
async fn create_access_key(
    State(state): State<ApiState>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<CreateAccessKeyResponse>, Error> {
    let req: CreateAccessKeyRequest = parse_json(&body)?;
    let (key, info) = identity::access_key_create(
        &state.app,
        &caller,
        req.description.as_deref(),
        req.role.as_deref(),
    )
    .await?;
    Ok(Json(CreateAccessKeyResponse {
        access_key_id: key.access_key_id.clone(),
        secret_access_key: key.secret_access_key.clone(),
        account_id: info.account.as_str().to_owned(),
        description: info.description,
        role: info.role.as_str().to_owned(),
        active: info.active,
        created: timestamp(info.created_at),
    }))
}

/// ListAccessKeys (admin): the caller's account's keys, without secrets.
#[utoipa::path(get, path = "/v1/berth/access-keys", tag = TAG_KEYS, operation_id = "ListAccessKeys",
    responses(
        (status = 200, body = ListAccessKeysResponse),
        (status = 403, description = "AccessDeniedException: not an admin", body = ErrorBody),
    ))]
async fn list_access_keys(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<ListAccessKeysResponse>, Error> {
    let keys = identity::access_key_list(&state.app, &caller).await?;
    Ok(Json(ListAccessKeysResponse {
        access_keys: keys.iter().map(key_view).collect(),
    }))
}

/// DeleteAccessKey (admin): requests signed with it are refused at once.
#[utoipa::path(delete, path = "/v1/berth/access-keys/{access_key_id}", tag = TAG_KEYS, operation_id = "DeleteAccessKey",
    params(("access_key_id" = String, Path, description = "AKIA…")),
    responses(
        (status = 200, body = Empty),
        (status = 403, description = "AccessDeniedException: not an admin", body = ErrorBody),
        (status = 404, description = "NotFoundException", body = ErrorBody),
    ))]
async fn delete_access_key(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Empty>, Error> {
    identity::access_key_delete(&state.app, &caller, &id).await?;
    Ok(Json(Empty {}))
}

/// DeactivateAccessKey (admin): requests signed with it are refused (403) until it is
/// activated again.
#[utoipa::path(post, path = "/v1/berth/access-keys/{access_key_id}/deactivate", tag = TAG_KEYS, operation_id = "DeactivateAccessKey",
    params(("access_key_id" = String, Path, description = "AKIA…")),
    responses(
        (status = 200, body = AccessKeyView),
        (status = 403, description = "AccessDeniedException: not an admin", body = ErrorBody),
        (status = 404, description = "NotFoundException", body = ErrorBody),
    ))]
async fn deactivate_access_key(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<AccessKeyView>, Error> {
    let k = identity::access_key_set_active(&state.app, &caller, &id, false).await?;
    Ok(Json(key_view(&k)))
}

/// ActivateAccessKey (admin).
#[utoipa::path(post, path = "/v1/berth/access-keys/{access_key_id}/activate", tag = TAG_KEYS, operation_id = "ActivateAccessKey",
    params(("access_key_id" = String, Path, description = "AKIA…")),
    responses(
        (status = 200, body = AccessKeyView),
        (status = 403, description = "AccessDeniedException: not an admin", body = ErrorBody),
        (status = 404, description = "NotFoundException", body = ErrorBody),
    ))]
async fn activate_access_key(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<AccessKeyView>, Error> {
    let k = identity::access_key_set_active(&state.app, &caller, &id, true).await?;
    Ok(Json(key_view(&k)))
}

#[derive(Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateConsoleUserRequest {
    /// 1–64 of letters, digits and `. _ - @`; unique in the account.
    pub username: String,
    /// 12–128 characters, at least 4 different ones, not the username.
    pub password: String,
    /// `admin`, `operator` or `viewer`.
    pub role: String,
}

#[derive(Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateConsoleUserRequest {
    pub role: Option<String>,
    /// A new password ends the user's sessions.
    pub password: Option<String>,
}

/// A console user; never the password or its hash.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsoleUserView {
    pub id: String,
    pub account_id: String,
    pub username: String,
    pub role: String,
    pub created: String,
    pub updated: String,
}

fn user_view(u: &ConsoleUser) -> ConsoleUserView {
    ConsoleUserView {
        id: u.id.to_string(),
        account_id: u.account.as_str().to_owned(),
        username: u.username.as_str().to_owned(),
        role: u.role.as_str().to_owned(),
        created: timestamp(u.created_at),
        updated: timestamp(u.updated_at),
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListConsoleUsersResponse {
    pub console_users: Vec<ConsoleUserView>,
}

/// CreateConsoleUser (admin): a user of the caller's account.
#[utoipa::path(post, path = "/v1/berth/console-users", tag = TAG_USERS, operation_id = "CreateConsoleUser",
    request_body = CreateConsoleUserRequest,
    responses(
        (status = 200, body = ConsoleUserView),
        (status = 400, description = "BadRequestException", body = ErrorBody),
        (status = 403, description = "AccessDeniedException: not an admin", body = ErrorBody),
        (status = 409, description = "ConflictException: the username is taken", body = ErrorBody),
    ))]
async fn create_console_user(
    State(state): State<ApiState>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<ConsoleUserView>, Error> {
    let req: CreateConsoleUserRequest = parse_json(&body)?;
    let u =
        identity::console_user_create(&state.app, &caller, &req.username, &req.password, &req.role)
            .await?;
    Ok(Json(user_view(&u)))
}

/// ListConsoleUsers (admin).
#[utoipa::path(get, path = "/v1/berth/console-users", tag = TAG_USERS, operation_id = "ListConsoleUsers",
    responses(
        (status = 200, body = ListConsoleUsersResponse),
        (status = 403, description = "AccessDeniedException: not an admin", body = ErrorBody),
    ))]
async fn list_console_users(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<ListConsoleUsersResponse>, Error> {
    let users = identity::console_user_list(&state.app, &caller).await?;
    Ok(Json(ListConsoleUsersResponse {
        console_users: users.iter().map(user_view).collect(),
    }))
}

/// UpdateConsoleUser (admin): a new role and/or password. The account's last admin
/// keeps its role (409).
#[utoipa::path(put, path = "/v1/berth/console-users/{console_username}", tag = TAG_USERS, operation_id = "UpdateConsoleUser",
    params(("console_username" = String, Path, description = "The console user's name")),
    request_body = UpdateConsoleUserRequest,
    responses(
        (status = 200, body = ConsoleUserView),
        (status = 400, description = "BadRequestException", body = ErrorBody),
        (status = 403, description = "AccessDeniedException: not an admin", body = ErrorBody),
        (status = 404, description = "NotFoundException", body = ErrorBody),
        (status = 409, description = "ConflictException: the last admin", body = ErrorBody),
    ))]
async fn update_console_user(
    State(state): State<ApiState>,
    caller: Caller,
    Path(username): Path<String>,
    body: Bytes,
) -> Result<Json<ConsoleUserView>, Error> {
    let req: UpdateConsoleUserRequest = parse_json(&body)?;
    let u = identity::console_user_update(
        &state.app,
        &caller,
        &username,
        req.role.as_deref(),
        req.password.as_deref(),
    )
    .await?;
    Ok(Json(user_view(&u)))
}

/// DeleteConsoleUser (admin): never the account's last admin (409).
#[utoipa::path(delete, path = "/v1/berth/console-users/{console_username}", tag = TAG_USERS, operation_id = "DeleteConsoleUser",
    params(("console_username" = String, Path, description = "The console user's name")),
    responses(
        (status = 200, body = Empty),
        (status = 403, description = "AccessDeniedException: not an admin", body = ErrorBody),
        (status = 404, description = "NotFoundException", body = ErrorBody),
        (status = 409, description = "ConflictException: the last admin", body = ErrorBody),
    ))]
async fn delete_console_user(
    State(state): State<ApiState>,
    caller: Caller,
    Path(username): Path<String>,
) -> Result<Json<Empty>, Error> {
    identity::console_user_delete(&state.app, &caller, &username).await?;
    Ok(Json(Empty {}))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct AuditQueryParams {
    /// Only events of this resource (a broker id also finds its users).
    pub resource_id: Option<String>,
    /// Only events of this principal: access key id, console user id or username.
    pub principal: Option<String>,
    /// 1–100, default 20.
    pub max_results: Option<String>,
    pub next_token: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEventView {
    pub event_id: i64,
    pub time: String,
    pub account_id: String,
    /// `access_key`, `console_user` or `internal`.
    pub principal_type: String,
    /// Access key id or console user id (empty for a failed login of an unknown user).
    pub principal_id: String,
    /// Console username.
    pub principal_name: Option<String>,
    /// `CreateBroker`, `UpdateUser`, `CreateAccessKey`, `Login`, …
    pub operation: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub source_address: Option<String>,
    /// HTTP status of the answer.
    pub status: i32,
    /// Error type of a failure (`x-amzn-ErrorType`).
    pub error_code: Option<String>,
}

fn event_view(e: &AuditEvent) -> AuditEventView {
    AuditEventView {
        event_id: e.event_id,
        time: timestamp(e.time),
        account_id: e.account.as_str().to_owned(),
        principal_type: e.principal_kind.clone(),
        principal_id: e.principal_id.clone(),
        principal_name: e.principal_name.clone(),
        operation: e.operation.clone(),
        resource_type: e.resource_type.clone(),
        resource_id: e.resource_id.clone(),
        source_address: e.source_address.clone(),
        status: e.status,
        error_code: e.error_code.clone(),
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListAuditEventsResponse {
    pub audit_events: Vec<AuditEventView>,
    pub next_token: Option<String>,
}

/// ListAuditEvents (admin, operator): the caller's account's events, newest first,
/// paged with `maxResults` and `nextToken`.
#[utoipa::path(get, path = "/v1/berth/audit-events", tag = TAG_AUDIT, operation_id = "ListAuditEvents",
    params(AuditQueryParams),
    responses(
        (status = 200, body = ListAuditEventsResponse),
        (status = 400, description = "BadRequestException", body = ErrorBody),
        (status = 403, description = "AccessDeniedException: a viewer", body = ErrorBody),
    ))]
async fn list_audit_events(
    State(state): State<ApiState>,
    caller: Caller,
    Query(q): Query<AuditQueryParams>,
) -> Result<Json<ListAuditEventsResponse>, Error> {
    let (events, next_token) = audit::list(
        &state.app,
        &caller,
        AuditQuery {
            resource_id: q.resource_id.as_deref(),
            principal: q.principal.as_deref(),
            max_results: q.max_results.as_deref(),
            next_token: q.next_token.as_deref(),
        },
    )
    .await?;
    Ok(Json(ListAuditEventsResponse {
        audit_events: events.iter().map(event_view).collect(),
        next_token,
    }))
}
