//! Broker handlers: parse → app → view. No business rules here.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::body::parse_json;
use super::ApiState;
use crate::app::{brokers, Caller};
use crate::error::Error;
use crate::wire::{
    CreateBrokerRequest, CreateBrokerResponse, DeleteBrokerResponse, DescribeBrokerResponse,
    DescribeSharedResourcesResponse, Empty, ErrorBody, ListBrokersResponse, PageQuery,
    PromoteRequest, UpdateBrokerRequest, UpdateBrokerResponse,
};

pub const TAG: &str = "brokers";

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_brokers, create_broker))
        .routes(routes!(describe_broker, delete_broker, update_broker))
        .routes(routes!(reboot_broker))
        .routes(routes!(promote))
        .routes(routes!(describe_shared_resources))
}

/// CreateBroker: records the broker and returns at once; it moves from
/// CREATION_IN_PROGRESS to RUNNING (or CREATION_FAILED) in the background.
#[utoipa::path(post, path = "/v1/brokers", tag = TAG, operation_id = "CreateBroker",
    request_body = CreateBrokerRequest,
    responses(
        (status = 200, body = CreateBrokerResponse),
        (status = 400, description = "BadRequestException", body = ErrorBody),
        (status = 409, description = "ConflictException: the name is taken", body = ErrorBody),
    ))]
async fn create_broker(
    State(state): State<ApiState>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<CreateBrokerResponse>, Error> {
    let req: CreateBrokerRequest = parse_json(&body)?;
    let row = brokers::broker_create(&state.app, &caller, req).await?;
    Ok(Json(CreateBrokerResponse {
        broker_arn: brokers::broker_arn(&row),
        broker_id: row.id,
    }))
}

/// DescribeBroker.
#[utoipa::path(get, path = "/v1/brokers/{broker_id}", tag = TAG, operation_id = "DescribeBroker",
    params(("broker_id" = String, Path, description = "Broker id, b-<uuid>")),
    responses(
        (status = 200, body = DescribeBrokerResponse),
        (status = 404, description = "NotFoundException", body = ErrorBody),
    ))]
async fn describe_broker(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<DescribeBrokerResponse>, Error> {
    let detail = brokers::broker_describe(&state.app, &caller, &id).await?;
    Ok(Json(brokers::describe_view(&state.app, &detail)?))
}

/// ListBrokers, paginated with `maxResults` and `nextToken`.
#[utoipa::path(get, path = "/v1/brokers", tag = TAG, operation_id = "ListBrokers",
    params(PageQuery),
    responses(
        (status = 200, body = ListBrokersResponse),
        (status = 400, description = "BadRequestException", body = ErrorBody),
    ))]
async fn list_brokers(
    State(state): State<ApiState>,
    caller: Caller,
    Query(q): Query<PageQuery>,
) -> Result<Json<ListBrokersResponse>, Error> {
    let (rows, next_token) = brokers::broker_list(
        &state.app,
        &caller,
        q.max_results.as_deref(),
        q.next_token.as_deref(),
    )
    .await?;
    Ok(Json(ListBrokersResponse {
        broker_summaries: rows.iter().map(brokers::summary_view).collect(),
        next_token,
    }))
}

/// DeleteBroker: DELETION_IN_PROGRESS, then gone (404) once every resource is removed.
#[utoipa::path(delete, path = "/v1/brokers/{broker_id}", tag = TAG, operation_id = "DeleteBroker",
    params(("broker_id" = String, Path, description = "Broker id, b-<uuid>")),
    responses(
        (status = 200, body = DeleteBrokerResponse),
        (status = 404, description = "NotFoundException", body = ErrorBody),
    ))]
async fn delete_broker(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<DeleteBrokerResponse>, Error> {
    let id = brokers::broker_delete(&state.app, &caller, &id).await?;
    Ok(Json(DeleteBrokerResponse {
        broker_id: id.to_string(),
    }))
}

/// UpdateBroker: instance type and engine version become pending (applied at reboot or
/// in the maintenance window); other settings apply at once.
#[utoipa::path(put, path = "/v1/brokers/{broker_id}", tag = TAG, operation_id = "UpdateBroker",
    params(("broker_id" = String, Path, description = "Broker id, b-<uuid>")),
    request_body = UpdateBrokerRequest,
    responses(
        (status = 200, body = UpdateBrokerResponse),
        (status = 400, description = "BadRequestException", body = ErrorBody),
        (status = 404, description = "NotFoundException", body = ErrorBody),
        (status = 409, description = "ConflictException", body = ErrorBody),
    ))]
async fn update_broker(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<UpdateBrokerResponse>, Error> {
    let req: UpdateBrokerRequest = parse_json(&body)?;
    Ok(Json(
        brokers::broker_update(&state.app, &caller, &id, req).await?,
    ))
}

/// RebootBroker: REBOOT_IN_PROGRESS, pending changes applied, back to RUNNING.
#[utoipa::path(post, path = "/v1/brokers/{broker_id}/reboot", tag = TAG, operation_id = "RebootBroker",
    params(("broker_id" = String, Path, description = "Broker id, b-<uuid>")),
    responses(
        (status = 200, body = Empty),
        (status = 400, description = "BadRequestException: not RUNNING", body = ErrorBody),
        (status = 404, description = "NotFoundException", body = ErrorBody),
    ))]
async fn reboot_broker(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Empty>, Error> {
    brokers::broker_reboot(&state.app, &caller, &id).await?;
    Ok(Json(Empty {}))
}

/// Promote: a CRDR operation; Berth has no cross-region replication, so it answers 400.
#[utoipa::path(post, path = "/v1/brokers/{broker_id}/promote", tag = TAG, operation_id = "Promote",
    params(("broker_id" = String, Path, description = "Broker id, b-<uuid>")),
    request_body = PromoteRequest,
    responses(
        (status = 400, description = "BadRequestException: not in a replication pair", body = ErrorBody),
        (status = 404, description = "NotFoundException", body = ErrorBody),
    ))]
async fn promote(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<DeleteBrokerResponse>, Error> {
    let req: PromoteRequest = parse_json(&body)?;
    brokers::broker_promote(&state.app, &caller, &id, req.mode.as_deref()).await?;
    Ok(Json(DeleteBrokerResponse { broker_id: id }))
}

/// DescribeSharedResources: always empty (no VPC resource sharing here).
#[utoipa::path(get, path = "/v1/brokers/{broker_id}/shared-resources", tag = TAG, operation_id = "DescribeSharedResources",
    params(("broker_id" = String, Path, description = "Broker id, b-<uuid>"), PageQuery),
    responses(
        (status = 200, body = DescribeSharedResourcesResponse),
        (status = 404, description = "NotFoundException", body = ErrorBody),
    ))]
async fn describe_shared_resources(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Json<DescribeSharedResourcesResponse>, Error> {
    brokers::broker_shared_resources(&state.app, &caller, &id, q.max_results.as_deref()).await?;
    Ok(Json(DescribeSharedResourcesResponse {
        shared_resources: Vec::new(),
        next_token: None,
    }))
}
