//! A broker's logs page: the collected engine lines (`app::logs`), newest first, with a
//! search box (plain text), stream and node filters and an "Older lines" link carrying
//! the page token. Every role may read it; askama escapes every line.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;

use super::{ApiState, Console, Nav};
use crate::app::logs::{self, LogQuery};

/// How many lines a page shows.
const PAGE: &str = "100";

/// One `<option>` of a filter.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

pub struct LineItem {
    pub time: String,
    pub node: u32,
    pub stream: &'static str,
    pub message: String,
}

pub struct DroppedItem {
    pub node: u32,
    pub stream: &'static str,
    pub count: u64,
}

#[derive(Template)]
#[template(path = "logs.html")]
struct LogsPage {
    nav: Nav,
    id: String,
    name: String,
    /// The streams turned on, e.g. "general, audit" (empty: none).
    collected: String,
    streams: Vec<Choice>,
    nodes: Vec<Choice>,
    stream: String,
    node: String,
    contains: String,
    lines: Vec<LineItem>,
    dropped: Vec<DroppedItem>,
    next: Option<String>,
}

#[derive(serde::Deserialize, Default)]
pub struct LogsParams {
    stream: Option<String>,
    node: Option<String>,
    contains: Option<String>,
    next: Option<String>,
}

fn choices(all: &str, values: Vec<String>, current: &str) -> Vec<Choice> {
    std::iter::once((String::new(), all.to_owned()))
        .chain(values.into_iter().map(|v| (v.clone(), v)))
        .map(|(value, label)| Choice {
            selected: value == current,
            value,
            label,
        })
        .collect()
}

/// `GET /console/brokers/{id}/logs`.
pub async fn page(
    State(state): State<ApiState>,
    c: Console,
    Path(id): Path<String>,
    Query(q): Query<LogsParams>,
) -> Response {
    let stream = q.stream.unwrap_or_default();
    let node = q.node.unwrap_or_default();
    let contains = q.contains.unwrap_or_default();
    let result = async {
        let broker = logs::logs_broker(&state.app, &c.caller, &id).await?;
        let page = logs::logs_search(
            &state.app,
            &c.caller,
            &id,
            LogQuery {
                stream: Some(&stream),
                node: Some(&node),
                contains: Some(&contains),
                max_results: Some(PAGE),
                next_token: q.next.as_deref(),
                ..LogQuery::default()
            },
        )
        .await?;
        Ok::<_, crate::error::Error>((broker, page))
    }
    .await;
    let (broker, page) = match result {
        Ok(v) => v,
        Err(e) => return c.error(&e),
    };
    c.render(&LogsPage {
        nav: c.nav("brokers"),
        name: broker.name,
        collected: broker
            .collected
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        streams: choices(
            "All streams",
            broker
                .streams
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect(),
            &stream,
        ),
        nodes: choices(
            "All nodes",
            broker.nodes.iter().map(u32::to_string).collect(),
            &node,
        ),
        lines: page
            .events
            .into_iter()
            .map(|e| LineItem {
                time: e.timestamp.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string(),
                node: e.node,
                stream: e.stream.as_str(),
                message: e.message,
            })
            .collect(),
        dropped: page
            .collection
            .into_iter()
            .filter(|c| c.dropped_lines > 0)
            .map(|c| DroppedItem {
                node: c.node,
                stream: c.stream.as_str(),
                count: c.dropped_lines,
            })
            .collect(),
        next: page.next_token,
        id,
        stream,
        node,
        contains,
    })
}
