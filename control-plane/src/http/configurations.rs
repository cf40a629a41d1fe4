//! Configuration handlers.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::body::parse_json;
use super::ApiState;
use crate::app::{configurations, Caller};
use crate::error::Error;
use crate::wire::{
    ConfigurationView, CreateConfigurationRequest, CreateConfigurationResponse,
    DeleteConfigurationResponse, DescribeConfigurationRevisionResponse, ErrorBody,
    ListConfigurationRevisionsResponse, ListConfigurationsResponse, PageQuery,
    UpdateConfigurationRequest, UpdateConfigurationResponse,
};

const TAG: &str = "configurations";

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_configurations, create_configuration))
        .routes(routes!(
            describe_configuration,
            update_configuration,
            delete_configuration
        ))
        .routes(routes!(list_configuration_revisions))
        .routes(routes!(describe_configuration_revision))
}

/// CreateConfiguration: revision 1 is Berth's default for the engine.
#[utoipa::path(post, path = "/v1/configurations", tag = TAG, operation_id = "CreateConfiguration",
    request_body = CreateConfigurationRequest,
    responses((status = 200, body = CreateConfigurationResponse), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_configuration(
    State(state): State<ApiState>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<CreateConfigurationResponse>, Error> {
    Ok(Json(
        configurations::configuration_create(&state.app, &caller, parse_json(&body)?).await?,
    ))
}

/// DescribeConfiguration.
#[utoipa::path(get, path = "/v1/configurations/{configuration_id}", tag = TAG, operation_id = "DescribeConfiguration",
    params(("configuration_id" = String, Path)),
    responses((status = 200, body = ConfigurationView), (status = 404, body = ErrorBody)))]
async fn describe_configuration(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ConfigurationView>, Error> {
    Ok(Json(
        configurations::configuration_describe(&state.app, &caller, &id).await?,
    ))
}

/// ListConfigurations, paginated.
#[utoipa::path(get, path = "/v1/configurations", tag = TAG, operation_id = "ListConfigurations",
    params(PageQuery),
    responses((status = 200, body = ListConfigurationsResponse), (status = 400, body = ErrorBody)))]
async fn list_configurations(
    State(state): State<ApiState>,
    caller: Caller,
    Query(q): Query<PageQuery>,
) -> Result<Json<ListConfigurationsResponse>, Error> {
    Ok(Json(
        configurations::configuration_list(
            &state.app,
            &caller,
            q.max_results.as_deref(),
            q.next_token.as_deref(),
        )
        .await?,
    ))
}

/// UpdateConfiguration: adds a sanitized revision and reports what was removed.
#[utoipa::path(put, path = "/v1/configurations/{configuration_id}", tag = TAG, operation_id = "UpdateConfiguration",
    params(("configuration_id" = String, Path)), request_body = UpdateConfigurationRequest,
    responses((status = 200, body = UpdateConfigurationResponse), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn update_configuration(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<UpdateConfigurationResponse>, Error> {
    Ok(Json(
        configurations::configuration_update(&state.app, &caller, &id, parse_json(&body)?).await?,
    ))
}

/// DeleteConfiguration: refused (409) while a broker uses it.
#[utoipa::path(delete, path = "/v1/configurations/{configuration_id}", tag = TAG, operation_id = "DeleteConfiguration",
    params(("configuration_id" = String, Path)),
    responses((status = 200, body = DeleteConfigurationResponse), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_configuration(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<DeleteConfigurationResponse>, Error> {
    configurations::configuration_delete(&state.app, &caller, &id).await?;
    Ok(Json(DeleteConfigurationResponse {
        configuration_id: id,
    }))
}

/// ListConfigurationRevisions, paginated.
#[utoipa::path(get, path = "/v1/configurations/{configuration_id}/revisions", tag = TAG, operation_id = "ListConfigurationRevisions",
    params(("configuration_id" = String, Path), PageQuery),
    responses((status = 200, body = ListConfigurationRevisionsResponse), (status = 404, body = ErrorBody)))]
async fn list_configuration_revisions(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Json<ListConfigurationRevisionsResponse>, Error> {
    Ok(Json(
        configurations::revision_list(
            &state.app,
            &caller,
            &id,
            q.max_results.as_deref(),
            q.next_token.as_deref(),
        )
        .await?,
    ))
}

/// DescribeConfigurationRevision: the revision's data, base64.
#[utoipa::path(get, path = "/v1/configurations/{configuration_id}/revisions/{configuration_revision}", tag = TAG,
    operation_id = "DescribeConfigurationRevision",
    params(("configuration_id" = String, Path), ("configuration_revision" = String, Path)),
    responses((status = 200, body = DescribeConfigurationRevisionResponse), (status = 404, body = ErrorBody)))]
async fn describe_configuration_revision(
    State(state): State<ApiState>,
    caller: Caller,
    Path((id, revision)): Path<(String, String)>,
) -> Result<Json<DescribeConfigurationRevisionResponse>, Error> {
    Ok(Json(
        configurations::revision_describe(&state.app, &caller, &id, &revision).await?,
    ))
}
