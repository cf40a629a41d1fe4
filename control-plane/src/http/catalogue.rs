//! Catalogue handlers.

use axum::extract::Query;
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ApiState;
use crate::app::{catalogue, Caller};
use crate::error::Error;
use crate::wire::{
    CatalogueQuery, DescribeBrokerEngineTypesResponse, DescribeBrokerInstanceOptionsResponse,
    ErrorBody,
};

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(describe_broker_engine_types))
        .routes(routes!(describe_broker_instance_options))
}

/// DescribeBrokerEngineTypes: engines and versions this installation can run.
#[utoipa::path(get, path = "/v1/broker-engine-types", tag = "catalogue", operation_id = "DescribeBrokerEngineTypes",
    params(CatalogueQuery),
    responses((status = 200, body = DescribeBrokerEngineTypesResponse), (status = 400, body = ErrorBody)))]
async fn describe_broker_engine_types(
    _caller: Caller,
    Query(q): Query<CatalogueQuery>,
) -> Result<Json<DescribeBrokerEngineTypesResponse>, Error> {
    Ok(Json(catalogue::engine_types(
        q.engine_type.as_deref(),
        q.max_results.as_deref(),
        q.next_token.as_deref(),
    )?))
}

/// DescribeBrokerInstanceOptions: instance types (with enforced limits), storage and modes.
#[utoipa::path(get, path = "/v1/broker-instance-options", tag = "catalogue", operation_id = "DescribeBrokerInstanceOptions",
    params(CatalogueQuery),
    responses((status = 200, body = DescribeBrokerInstanceOptionsResponse), (status = 400, body = ErrorBody)))]
async fn describe_broker_instance_options(
    caller: Caller,
    Query(q): Query<CatalogueQuery>,
) -> Result<Json<DescribeBrokerInstanceOptionsResponse>, Error> {
    Ok(Json(catalogue::instance_options(
        q.engine_type.as_deref(),
        q.host_instance_type.as_deref(),
        q.storage_type.as_deref(),
        q.max_results.as_deref(),
        q.next_token.as_deref(),
        &format!("{}a", caller.scope.region),
    )?))
}
