//! Tag handlers. The ARN arrives percent-encoded in the path; axum decodes it.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::body::parse_json;
use super::ApiState;
use crate::app::{tags, Caller};
use crate::error::Error;
use crate::wire::{ErrorBody, TagsBody};

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(list_tags, create_tags, delete_tags))
}

/// ListTags.
#[utoipa::path(get, path = "/v1/tags/{resource_arn}", tag = "tags", operation_id = "ListTags",
    params(("resource_arn" = String, Path)),
    responses((status = 200, body = TagsBody), (status = 404, body = ErrorBody)))]
async fn list_tags(
    State(state): State<ApiState>,
    caller: Caller,
    Path(arn): Path<String>,
) -> Result<Json<TagsBody>, Error> {
    Ok(Json(TagsBody {
        tags: tags::tags_list(&state.app, &caller, &arn).await?,
    }))
}

/// CreateTags: adds or overwrites tags; 204.
#[utoipa::path(post, path = "/v1/tags/{resource_arn}", tag = "tags", operation_id = "CreateTags",
    params(("resource_arn" = String, Path)), request_body = TagsBody,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn create_tags(
    State(state): State<ApiState>,
    caller: Caller,
    Path(arn): Path<String>,
    body: Bytes,
) -> Result<StatusCode, Error> {
    let body: TagsBody = parse_json(&body)?;
    tags::tags_create(&state.app, &caller, &arn, body.tags).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// DeleteTags: removes the keys given as repeated `tagKeys`; 204.
#[utoipa::path(delete, path = "/v1/tags/{resource_arn}", tag = "tags", operation_id = "DeleteTags",
    params(("resource_arn" = String, Path), ("tagKeys" = Vec<String>, Query)),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_tags(
    State(state): State<ApiState>,
    caller: Caller,
    Path(arn): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<StatusCode, Error> {
    let keys: Vec<String> = form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .filter(|(k, _)| k == "tagKeys")
        .map(|(_, v)| v.into_owned())
        .collect();
    tags::tags_delete(&state.app, &caller, &arn, &keys).await?;
    Ok(StatusCode::NO_CONTENT)
}
