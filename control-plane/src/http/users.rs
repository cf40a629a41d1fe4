//! User handlers (CreateUser, UpdateUser, DeleteUser, DescribeUser, ListUsers).

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::body::parse_json;
use super::ApiState;
use crate::app::{users, Caller};
use crate::error::Error;
use crate::wire::{
    DescribeUserResponse, Empty, ErrorBody, ListUsersResponse, PageQuery, UserRequest,
};

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_users))
        .routes(routes!(
            describe_user,
            create_user,
            update_user,
            delete_user
        ))
}

/// CreateUser: applied live by the broker's agent; pending until it confirms.
#[utoipa::path(post, path = "/v1/brokers/{broker_id}/users/{username}", tag = "users", operation_id = "CreateUser",
    params(("broker_id" = String, Path), ("username" = String, Path)), request_body = UserRequest,
    responses((status = 200, body = Empty), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_user(
    State(state): State<ApiState>,
    caller: Caller,
    Path((broker_id, username)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Empty>, Error> {
    users::user_create(
        &state.app,
        &caller,
        &broker_id,
        &username,
        parse_json(&body)?,
    )
    .await?;
    Ok(Json(Empty {}))
}

/// UpdateUser: new password, console access or groups; applied live.
#[utoipa::path(put, path = "/v1/brokers/{broker_id}/users/{username}", tag = "users", operation_id = "UpdateUser",
    params(("broker_id" = String, Path), ("username" = String, Path)), request_body = UserRequest,
    responses((status = 200, body = Empty), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn update_user(
    State(state): State<ApiState>,
    caller: Caller,
    Path((broker_id, username)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Empty>, Error> {
    users::user_update(
        &state.app,
        &caller,
        &broker_id,
        &username,
        parse_json(&body)?,
    )
    .await?;
    Ok(Json(Empty {}))
}

/// DeleteUser: removed from the running broker; pending DELETE until confirmed.
#[utoipa::path(delete, path = "/v1/brokers/{broker_id}/users/{username}", tag = "users", operation_id = "DeleteUser",
    params(("broker_id" = String, Path), ("username" = String, Path)),
    responses((status = 200, body = Empty), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_user(
    State(state): State<ApiState>,
    caller: Caller,
    Path((broker_id, username)): Path<(String, String)>,
) -> Result<Json<Empty>, Error> {
    users::user_delete(&state.app, &caller, &broker_id, &username).await?;
    Ok(Json(Empty {}))
}

/// DescribeUser.
#[utoipa::path(get, path = "/v1/brokers/{broker_id}/users/{username}", tag = "users", operation_id = "DescribeUser",
    params(("broker_id" = String, Path), ("username" = String, Path)),
    responses((status = 200, body = DescribeUserResponse), (status = 404, body = ErrorBody)))]
async fn describe_user(
    State(state): State<ApiState>,
    caller: Caller,
    Path((broker_id, username)): Path<(String, String)>,
) -> Result<Json<DescribeUserResponse>, Error> {
    Ok(Json(
        users::user_describe(&state.app, &caller, &broker_id, &username).await?,
    ))
}

/// ListUsers, paginated.
#[utoipa::path(get, path = "/v1/brokers/{broker_id}/users", tag = "users", operation_id = "ListUsers",
    params(("broker_id" = String, Path), PageQuery),
    responses((status = 200, body = ListUsersResponse), (status = 404, body = ErrorBody)))]
async fn list_users(
    State(state): State<ApiState>,
    caller: Caller,
    Path(broker_id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Json<ListUsersResponse>, Error> {
    Ok(Json(
        users::user_list(
            &state.app,
            &caller,
            &broker_id,
            q.max_results.as_deref(),
            q.next_token.as_deref(),
        )
        .await?,
    ))
}
