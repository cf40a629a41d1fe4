//! The console's Cost page: the account's brokers (deleted ones included) with their
//! metered cost this month to date (`app::metering`).

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use super::{Console, Nav};
use crate::app::metering::{self, Granularity};
use crate::http::ApiState;

/// One broker's month-to-date line.
pub struct CostItem {
    pub id: String,
    pub name: String,
    pub instance_hours: String,
    pub storage_gb_hours: String,
    pub cost: String,
}

#[derive(Template)]
#[template(path = "cost.html")]
struct CostPage {
    nav: Nav,
    month: String,
    total: String,
    brokers: Vec<CostItem>,
}

/// Dollars with cents (and tenths of a cent for small amounts).
pub fn dollars(v: f64) -> String {
    format!("${v:.3}")
}

pub async fn page(State(state): State<ApiState>, c: Console) -> Response {
    let report = match metering::cost_report(
        &state.app,
        &c.caller,
        None,
        None,
        Granularity::Monthly,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => return c.error(&e),
    };
    let brokers = report
        .by_broker
        .into_iter()
        .map(|l| CostItem {
            name: l.broker_name.unwrap_or_default(),
            id: l.key,
            instance_hours: format!("{:.2}", l.instance_hours),
            storage_gb_hours: format!("{:.1}", l.storage_gb_hours),
            cost: dollars(l.cost),
        })
        .collect();
    c.render(&CostPage {
        nav: c.nav("cost"),
        month: report.start.format("%B %Y").to_string(),
        total: dollars(report.total),
        brokers,
    })
}
