//! Broker handlers: parse → app → view. No business rules here.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};

use super::body::parse_json;
use super::views::{
    CreateBrokerRequest, CreateBrokerResponse, DeleteBrokerResponse, DescribeBrokerResponse,
    ListBrokersResponse, PageQuery,
};
use super::ApiState;
use crate::app::{brokers, Caller};
use crate::error::Error;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/brokers", get(list_brokers).post(create_broker))
        .route(
            "/v1/brokers/{broker_id}",
            get(describe_broker).delete(delete_broker),
        )
}

async fn create_broker(
    State(state): State<ApiState>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<CreateBrokerResponse>, Error> {
    let req: CreateBrokerRequest = parse_json(&body)?;
    let row = brokers::broker_create(&state.app, &caller, req).await?;
    Ok(Json(CreateBrokerResponse {
        broker_arn: brokers::broker_arn(&caller.region, &row),
        broker_id: row.id,
    }))
}

async fn describe_broker(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<DescribeBrokerResponse>, Error> {
    let detail = brokers::broker_describe(&state.app, &caller, &id).await?;
    Ok(Json(brokers::describe_view(&state.app, &caller, &detail)))
}

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
        broker_summaries: rows
            .iter()
            .map(|r| brokers::summary_view(&caller, r))
            .collect(),
        next_token,
    }))
}

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
