//! A broker's metrics page: the charts its engine profile names
//! (`domain::profile::EngineProfile::dashboard`: queue depth, rates, connections, CPU,
//! memory against its limit, disk or heap), over 1 hour, 1 day or 1 week, drawn
//! server-side as SVG ([`super::charts`]) from the stored history (`app::metrics`), and
//! the broker's cost this month to date (`app::metering`). Every role may read it.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use chrono::Utc;

use super::charts::{self, Chart, ChartInput, Line, Range, Scale};
use super::{ApiState, Console, Nav};
use crate::app::metrics::{metrics_datapoints, DatapointsQuery};
use crate::app::{brokers, metering, Caller};
use crate::domain::profile::{self, ChartSpec, ChartUnit};
use crate::error::Error;

/// One range link.
pub struct RangeLink {
    pub key: &'static str,
    pub label: &'static str,
    pub current: bool,
}

#[derive(Template)]
#[template(path = "metrics.html")]
struct MetricsPage {
    nav: Nav,
    id: String,
    name: String,
    ranges: Vec<RangeLink>,
    charts: Vec<String>,
    /// This month's cost to date, e.g. "$12.34 (44.5 instance-hours)".
    month_to_date: Option<String>,
}

#[derive(serde::Deserialize, Default)]
pub struct MetricsParams {
    range: Option<String>,
}

fn scale(unit: ChartUnit) -> Scale {
    match unit {
        ChartUnit::Count => Scale::Count,
        ChartUnit::Percent => Scale::Percent,
        ChartUnit::Bytes => Scale::Bytes,
        ChartUnit::PerSecond => Scale::PerSecond,
    }
}

/// The points of one metric over the range (an empty line when there is no history).
async fn points(
    state: &ApiState,
    caller: &Caller,
    id: &str,
    metric: &str,
    range: Range,
    stat: &str,
    now: chrono::DateTime<Utc>,
) -> Result<Vec<(chrono::DateTime<Utc>, f64)>, Error> {
    let q = DatapointsQuery {
        start_time: Some((now - range.duration()).to_rfc3339()),
        end_time: Some(now.to_rfc3339()),
        period: Some(range.period_secs().to_string()),
        stat: Some(stat.to_owned()),
        dimensions: Vec::new(),
    };
    let d = metrics_datapoints(
        &state.app,
        caller,
        &state.metrics.retention,
        id,
        metric,
        q,
        now,
    )
    .await?;
    Ok(d.points)
}

async fn render_chart(
    state: &ApiState,
    caller: &Caller,
    id: &str,
    spec: &ChartSpec,
    range: Range,
    now: chrono::DateTime<Utc>,
) -> Result<String, Error> {
    let mut lines = Vec::new();
    for (metric, label) in spec.lines {
        lines.push(Line {
            label: (*label).to_owned(),
            points: points(state, caller, id, metric, range, "Average", now).await?,
        });
    }
    let limit = match spec.limit {
        Some((metric, label)) => points(state, caller, id, metric, range, "Maximum", now)
            .await?
            .last()
            .map(|p| (label.to_owned(), p.1)),
        None => None,
    };
    let chart: Chart = charts::chart(
        spec.id,
        ChartInput {
            title: spec.title.to_owned(),
            scale: scale(spec.unit),
            lines,
            limit,
        },
        range,
        now,
    );
    chart
        .render()
        .map_err(|e| Error::internal("rendering a chart", e))
}

/// `GET /console/brokers/{id}/metrics?range=1h|1d|1w`.
pub async fn page(
    State(state): State<ApiState>,
    c: Console,
    Path(id): Path<String>,
    Query(q): Query<MetricsParams>,
) -> Response {
    let range = Range::parse(q.range.as_deref());
    let now = Utc::now();
    let result = async {
        let d = brokers::broker_describe(&state.app, &c.caller, &id).await?;
        let engine = d.row.engine()?;
        // The charts' queries run concurrently (each a handful of small range reads).
        let rendered = futures_util::future::try_join_all(
            profile::profile(engine)
                .dashboard
                .iter()
                .map(|spec| render_chart(&state, &c.caller, &d.row.id, spec, range, now)),
        )
        .await?;
        let cost = metering::broker_cost(&state.app, &c.caller, &d.row.id, now)
            .await
            .ok()
            .map(|(_, line)| {
                format!(
                    "${:.2} ({:.1} instance-hours)",
                    line.cost, line.instance_hours
                )
            });
        Ok::<_, Error>((d.row, rendered, cost))
    }
    .await;
    let (row, rendered, month_to_date) = match result {
        Ok(v) => v,
        Err(e) => return c.error(&e),
    };
    c.render(&MetricsPage {
        nav: c.nav("brokers"),
        id: row.id,
        name: row.name,
        ranges: Range::ALL
            .iter()
            .map(|r| RangeLink {
                key: r.key(),
                label: r.label(),
                current: *r == range,
            })
            .collect(),
        charts: rendered,
        month_to_date,
    })
}
