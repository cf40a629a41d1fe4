//! Berth's webhook routes (`/v1/berth/webhooks`): create (the secret is in this answer
//! only), list, delete and the per-hook delivery log (`app::webhooks`).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::body::parse_json;
use super::ApiState;
use crate::app::webhooks::{self, NewWebhook, Webhook};
use crate::app::Caller;
use crate::error::Error;
use crate::wire::{timestamp, ErrorBody};

pub const TAG: &str = "webhooks";

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(create_webhook, list_webhooks))
        .routes(routes!(delete_webhook))
        .routes(routes!(list_deliveries))
}

/// A new webhook.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateWebhookRequest {
    /// An http:// or https:// URL.
    pub url: Option<String>,
    pub description: Option<String>,
    /// Notified of every alarm of the account, built-in ones included.
    #[serde(default)]
    pub all_alarms: bool,
}

/// A webhook (never its secret).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookView {
    pub webhook_id: String,
    pub url: String,
    pub description: String,
    pub all_alarms: bool,
    pub created: String,
}

impl From<Webhook> for WebhookView {
    fn from(w: Webhook) -> Self {
        Self {
            webhook_id: w.id,
            url: w.url,
            description: w.description,
            all_alarms: w.all_alarms,
            created: timestamp(w.created_at),
        }
    }
}

/// A new webhook with its signing secret: shown this once, never again.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateWebhookResponse {
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// Key of `X-Berth-Signature: sha256=<hex HMAC-SHA256 of the body>`.
    pub secret: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListWebhooksResponse {
    pub webhooks: Vec<WebhookView>,
}

/// One notification to one hook.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    /// The `X-Berth-Delivery` header.
    pub delivery_id: String,
    pub event: String,
    /// PENDING, DELIVERED or FAILED (gave up).
    pub status: String,
    pub attempts: i32,
    /// When a PENDING delivery is tried next.
    pub next_attempt: Option<String>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub created: String,
    pub finished: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListDeliveriesResponse {
    /// Newest first.
    pub deliveries: Vec<DeliveryView>,
}

/// Creates a webhook; the answer carries its signing secret, which is never shown again.
#[utoipa::path(post, path = "/v1/berth/webhooks", tag = TAG, operation_id = "CreateWebhook",
    request_body = CreateWebhookRequest,
    responses(
        (status = 200, body = CreateWebhookResponse),
        (status = 400, description = "BadRequestException", body = ErrorBody),
    ))]
async fn create_webhook(
    State(state): State<ApiState>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<CreateWebhookResponse>, Error> {
    let r: CreateWebhookRequest = parse_json(&body)?;
    let new = NewWebhook {
        url: r.url,
        description: r.description,
        all_alarms: r.all_alarms,
    };
    let (hook, secret) = webhooks::webhook_create(&state.app, &caller, new).await?;
    Ok(Json(CreateWebhookResponse {
        webhook: hook.into(),
        secret,
    }))
}

/// Lists the account's webhooks.
#[utoipa::path(get, path = "/v1/berth/webhooks", tag = TAG, operation_id = "ListWebhooks",
    responses((status = 200, body = ListWebhooksResponse)))]
async fn list_webhooks(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<ListWebhooksResponse>, Error> {
    let list = webhooks::webhook_list(&state.app, &caller).await?;
    Ok(Json(ListWebhooksResponse {
        webhooks: list.into_iter().map(WebhookView::from).collect(),
    }))
}

/// Deletes a webhook and its pending deliveries.
#[utoipa::path(delete, path = "/v1/berth/webhooks/{webhook_id}", tag = TAG,
    operation_id = "DeleteWebhook",
    params(("webhook_id" = String, Path, description = "Webhook id, wh-<uuid>")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "NotFoundException", body = ErrorBody),
    ))]
async fn delete_webhook(
    State(state): State<ApiState>,
    caller: Caller,
    Path(webhook_id): Path<String>,
) -> Result<StatusCode, Error> {
    webhooks::webhook_delete(&state.app, &caller, &webhook_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The webhook's delivery log, newest first.
#[utoipa::path(get, path = "/v1/berth/webhooks/{webhook_id}/deliveries", tag = TAG,
    operation_id = "ListWebhookDeliveries",
    params(("webhook_id" = String, Path, description = "Webhook id, wh-<uuid>")),
    responses(
        (status = 200, body = ListDeliveriesResponse),
        (status = 404, description = "NotFoundException", body = ErrorBody),
    ))]
async fn list_deliveries(
    State(state): State<ApiState>,
    caller: Caller,
    Path(webhook_id): Path<String>,
) -> Result<Json<ListDeliveriesResponse>, Error> {
    let rows = webhooks::delivery_list(&state.app, &caller, &webhook_id).await?;
    Ok(Json(ListDeliveriesResponse {
        deliveries: rows
            .into_iter()
            .map(|d| DeliveryView {
                delivery_id: d.id.to_string(),
                next_attempt: (d.status == "PENDING").then(|| timestamp(d.next_attempt_at)),
                event: d.event,
                status: d.status,
                attempts: d.attempts,
                last_status_code: d.last_status_code,
                last_error: d.last_error,
                created: timestamp(d.created_at),
                finished: d.finished_at.map(timestamp),
            })
            .collect(),
    }))
}
