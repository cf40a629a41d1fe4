//! Alarm and webhook pages: the account's alarms (table, create form, delete), one
//! alarm's definition and state history, the webhooks (create with the secret shown
//! once, delete) and one webhook's delivery log, through `app::alarms` and
//! `app::webhooks` with the session's [`Caller`]. Changes are form POSTs checked for CSRF
//! and authorized (viewers read, operators and admins write) before the app layer runs
//! them; a bad input shows the form again with the message at the field it names.

use std::collections::BTreeMap;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};

use super::{html, see_other, session::SourceAddress, ApiState, Audited, Console, Form, Nav};
use crate::app::alarms::{self, Alarm, AlarmState, Comparison, NewAlarm, Statistic, DIMENSIONS};
use crate::app::metrics::METRIC_NAMES;
use crate::app::webhooks::{self, NewWebhook};
use crate::app::{brokers, Action};
use crate::error::Error;

const ALARMS: &str = "/console/alarms";
const WEBHOOKS: &str = "/console/webhooks";

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// The CSS class of an alarm state's badge.
pub fn alarm_class(state: AlarmState) -> &'static str {
    match state {
        AlarmState::Ok => "ok",
        AlarmState::Alarm => "bad",
        AlarmState::InsufficientData => "neutral",
    }
}

/// An option of a select.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

fn choices(items: impl IntoIterator<Item = (String, String)>, selected: &str) -> Vec<Choice> {
    items
        .into_iter()
        .map(|(value, label)| Choice {
            selected: value == selected,
            value,
            label,
        })
        .collect()
}

fn plain(items: &[&str], selected: &str) -> Vec<Choice> {
    choices(
        items.iter().map(|s| (s.to_string(), s.to_string())),
        selected,
    )
}

/// An alarm as a table row or a broker page's badge.
pub struct AlarmItem {
    pub id: String,
    pub name: String,
    pub broker_id: String,
    pub broker_name: String,
    pub builtin: bool,
    pub metric: String,
    pub dimensions: String,
    pub statistic: &'static str,
    pub comparison: &'static str,
    pub threshold: f64,
    pub period_secs: u64,
    pub periods: u32,
    pub state: &'static str,
    pub state_class: &'static str,
    pub reason: String,
    pub since: String,
    pub created: String,
    pub webhooks: String,
}

fn dimensions_text(d: &BTreeMap<String, String>) -> String {
    d.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn alarm_item(a: Alarm, broker_names: &BTreeMap<String, String>) -> AlarmItem {
    AlarmItem {
        broker_name: broker_names.get(&a.broker_id).cloned().unwrap_or_default(),
        dimensions: dimensions_text(&a.dimensions),
        statistic: a.rule.statistic.as_str(),
        comparison: a.rule.comparison.as_str(),
        threshold: a.rule.threshold,
        period_secs: a.rule.period.as_secs(),
        periods: a.rule.evaluation_periods,
        state: a.state.as_str(),
        state_class: alarm_class(a.state),
        since: when(a.state_changed_at),
        created: when(a.created_at),
        webhooks: a.webhook_ids.join(", "),
        reason: a.state_reason,
        id: a.id,
        name: a.name,
        broker_id: a.broker_id,
        builtin: a.builtin,
        metric: a.metric_name,
    }
}

/// The account's brokers, id → name (every page of the list).
async fn broker_names(state: &ApiState, c: &Console) -> Result<BTreeMap<String, String>, Error> {
    let mut names = BTreeMap::new();
    let mut next: Option<String> = None;
    loop {
        let (rows, more) =
            brokers::broker_list(&state.app, &c.caller, Some("100"), next.as_deref()).await?;
        names.extend(rows.into_iter().map(|r| (r.id, r.name)));
        match more {
            Some(n) => next = Some(n),
            None => return Ok(names),
        }
    }
}

/// The alarms of broker `id`, for the broker page's panel.
pub async fn broker_alarms(
    state: &ApiState,
    c: &Console,
    id: &str,
) -> Result<Vec<AlarmItem>, Error> {
    let names = BTreeMap::new();
    Ok(alarms::alarm_list(&state.app, &c.caller)
        .await?
        .into_iter()
        .filter(|a| a.broker_id == id)
        .map(|a| alarm_item(a, &names))
        .collect())
}

/// What the create form holds (as typed).
#[derive(Clone, Debug)]
pub struct AlarmValues {
    pub name: String,
    pub broker: String,
    pub metric: String,
    pub dimension: String,
    pub dimension_value: String,
    pub statistic: String,
    pub comparison: String,
    pub threshold: String,
    pub period: String,
    pub periods: String,
    pub webhook: String,
}

impl Default for AlarmValues {
    fn default() -> Self {
        Self {
            name: String::new(),
            broker: String::new(),
            metric: String::new(),
            dimension: String::new(),
            dimension_value: String::new(),
            statistic: Statistic::Average.as_str().into(),
            comparison: Comparison::GreaterThanThreshold.as_str().into(),
            threshold: String::new(),
            period: "60".into(),
            periods: "1".into(),
            webhook: String::new(),
        }
    }
}

impl AlarmValues {
    fn from_form(form: &Form) -> Self {
        Self {
            name: form.get("name"),
            broker: form.get("brokerId"),
            metric: form.get("metricName"),
            dimension: form.get("dimension"),
            dimension_value: form.get("dimensionValue"),
            statistic: form.get("statistic"),
            comparison: form.get("comparison"),
            threshold: form.get("threshold"),
            period: form.get("periodSeconds"),
            periods: form.get("evaluationPeriods"),
            webhook: form.get("webhookId"),
        }
    }

    /// The app layer's request; a field that is not a number is a 400 on it.
    fn to_new(&self) -> Result<NewAlarm, Error> {
        fn number<T: std::str::FromStr>(s: &str, attribute: &str) -> Result<Option<T>, Error> {
            if s.is_empty() {
                return Ok(None);
            }
            s.parse().map(Some).map_err(|_| {
                Error::bad_request(
                    attribute,
                    format!("The {attribute} must be a number; got {s:?}."),
                )
            })
        }
        let mut dimensions = BTreeMap::new();
        if !self.dimension.is_empty() {
            dimensions.insert(self.dimension.clone(), self.dimension_value.clone());
        } else if !self.dimension_value.is_empty() {
            return Err(Error::bad_request(
                "dimensions",
                "Choose which dimension the value is for.",
            ));
        }
        let opt = |s: &str| Some(s.to_owned()).filter(|s| !s.is_empty());
        Ok(NewAlarm {
            name: opt(&self.name),
            broker_id: opt(&self.broker),
            metric_name: opt(&self.metric),
            dimensions,
            statistic: opt(&self.statistic),
            comparison: opt(&self.comparison),
            threshold: number(&self.threshold, "threshold")?,
            period_seconds: number(&self.period, "periodSeconds")?,
            evaluation_periods: number(&self.periods, "evaluationPeriods")?,
            webhook_ids: opt(&self.webhook).into_iter().collect(),
        })
    }
}

/// The form field an `errorAttribute` of CreateAlarm points at.
fn alarm_field(attribute: &str) -> &'static str {
    match attribute {
        "name" => "name",
        "brokerId" => "brokerId",
        "metricName" => "metricName",
        "dimensions" => "dimensions",
        "statistic" => "statistic",
        "comparison" => "comparison",
        "threshold" => "threshold",
        "periodSeconds" => "periodSeconds",
        "evaluationPeriods" => "evaluationPeriods",
        "webhookIds" => "webhookId",
        _ => "form",
    }
}

#[derive(Template)]
#[template(path = "alarms.html")]
struct AlarmsPage {
    nav: Nav,
    alarms: Vec<AlarmItem>,
    v: AlarmValues,
    brokers: Vec<Choice>,
    metrics: Vec<Choice>,
    dimensions: Vec<Choice>,
    statistics: Vec<Choice>,
    comparisons: Vec<Choice>,
    webhooks: Vec<Choice>,
    message: Option<String>,
    /// The field the error names, and its message.
    error_attribute: String,
    error: Option<String>,
}

async fn alarms_page(
    state: &ApiState,
    c: &Console,
    v: AlarmValues,
    message: Option<String>,
    error: Option<&Error>,
) -> Result<AlarmsPage, Error> {
    let names = broker_names(state, c).await?;
    let alarms = alarms::alarm_list(&state.app, &c.caller)
        .await?
        .into_iter()
        .map(|a| alarm_item(a, &names))
        .collect();
    let hooks = webhooks::webhook_list(&state.app, &c.caller).await?;
    let none = |label: &str| (String::new(), label.to_owned());
    let statistics: Vec<&str> = Statistic::ALL.iter().map(|s| s.as_str()).collect();
    let comparisons: Vec<&str> = Comparison::ALL.iter().map(|s| s.as_str()).collect();
    Ok(AlarmsPage {
        nav: c.nav("alarms"),
        alarms,
        brokers: choices(
            std::iter::once(none("Choose a broker")).chain(
                names
                    .iter()
                    .map(|(id, name)| (id.clone(), format!("{name} ({id})"))),
            ),
            &v.broker,
        ),
        metrics: choices(
            std::iter::once(none("Choose a metric"))
                .chain(METRIC_NAMES.iter().map(|m| (m.to_string(), m.to_string()))),
            &v.metric,
        ),
        dimensions: choices(
            std::iter::once(none("None (every series)"))
                .chain(DIMENSIONS.iter().map(|d| (d.to_string(), d.to_string()))),
            &v.dimension,
        ),
        statistics: plain(&statistics, &v.statistic),
        comparisons: plain(&comparisons, &v.comparison),
        webhooks: choices(
            std::iter::once(none("None")).chain(hooks.into_iter().map(|h| {
                let label = if h.description.is_empty() {
                    h.url.clone()
                } else {
                    format!("{} ({})", h.description, h.url)
                };
                (h.id, label)
            })),
            &v.webhook,
        ),
        v,
        message,
        error_attribute: error
            .and_then(|e| e.attribute())
            .map(alarm_field)
            .unwrap_or(if error.is_some() { "form" } else { "" })
            .to_owned(),
        error: error.map(|e| e.to_string()),
    })
}

#[derive(serde::Deserialize, Default)]
pub struct AlarmsQuery {
    /// Prefills the create form's broker.
    broker: Option<String>,
    done: Option<String>,
}

/// `GET /console/alarms[?broker=…]`.
pub async fn list(
    State(state): State<ApiState>,
    c: Console,
    Query(q): Query<AlarmsQuery>,
) -> Response {
    let v = AlarmValues {
        broker: q.broker.unwrap_or_default(),
        ..AlarmValues::default()
    };
    let message = match q.done.as_deref() {
        Some("create") => Some("Alarm created; it is evaluated shortly.".to_owned()),
        Some("delete") => Some("Alarm deleted.".to_owned()),
        _ => None,
    };
    match alarms_page(&state, &c, v, message, None).await {
        Ok(p) => c.render(&p),
        Err(e) => c.error(&e),
    }
}

/// A delete form must carry the ticked `confirm` box.
fn confirmed(form: &Form) -> Result<(), Error> {
    if form.checked("confirm") {
        Ok(())
    } else {
        Err(Error::bad_request(
            "confirm",
            "Tick the confirmation box to delete.",
        ))
    }
}

/// `POST /console/alarms`: `op` = create or delete.
pub async fn post(
    State(state): State<ApiState>,
    c: Console,
    SourceAddress(source): SourceAddress,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let typed = Form::parse(&body);
    let create = typed.get("op") == "create";
    let mut resource_id = typed.opt("id");
    let mut values = None;
    let result: Result<Response, Error> = async {
        let form = c.form(&headers, &body, Action::Write)?;
        match form.get("op").as_str() {
            "create" => {
                let v = AlarmValues::from_form(&form);
                values = Some(v.clone());
                let alarm = alarms::alarm_create(&state.app, &c.caller, v.to_new()?).await?;
                resource_id = Some(alarm.id.clone());
                Ok(see_other(&format!("{ALARMS}/{}?done=create", alarm.id)))
            }
            "delete" => {
                confirmed(&form)?;
                alarms::alarm_delete(&state.app, &c.caller, &form.get("id")).await?;
                Ok(see_other(&format!("{ALARMS}?done=delete")))
            }
            other => Err(Error::bad_request(
                "op",
                format!("Unknown operation {other:?}."),
            )),
        }
    }
    .await;
    let what = Audited {
        operation: if create { "CreateAlarm" } else { "DeleteAlarm" },
        resource_type: "Alarm",
        resource_id,
    };
    c.audit(&state, source, what, result.as_ref().map(|_| ()))
        .await;
    match (result, values) {
        (Ok(r), _) => c.with_cookie(r),
        (Err(e @ Error::BadRequest { .. }), Some(v)) => {
            match alarms_page(&state, &c, v, None, Some(&e)).await {
                Ok(p) => c.with_cookie(html(StatusCode::BAD_REQUEST, &p)),
                Err(e) => c.error(&e),
            }
        }
        (Err(e), _) => c.error(&e),
    }
}

/// A state change of one alarm.
pub struct HistoryItem {
    pub time: String,
    pub from: String,
    pub from_class: &'static str,
    pub to: String,
    pub to_class: &'static str,
    pub reason: String,
}

fn state_badge(s: &str) -> &'static str {
    AlarmState::from_db(s).map_or("neutral", alarm_class)
}

#[derive(Template)]
#[template(path = "alarms_detail.html")]
struct AlarmPage {
    nav: Nav,
    a: AlarmItem,
    history: Vec<HistoryItem>,
    message: Option<String>,
}

#[derive(serde::Deserialize, Default)]
pub struct DoneQuery {
    done: Option<String>,
}

/// `GET /console/alarms/{id}`: the definition and its history, newest first.
pub async fn detail(
    State(state): State<ApiState>,
    c: Console,
    Path(id): Path<String>,
    Query(q): Query<DoneQuery>,
) -> Response {
    let result = async {
        let alarm = alarms::alarm_describe(&state.app, &c.caller, &id).await?;
        let mut history = alarms::alarm_history(&state.app, &c.caller, &id).await?;
        history.sort_by(|a, b| b.at.cmp(&a.at).then(b.seq.cmp(&a.seq)));
        let names = broker_names(&state, &c).await?;
        Ok::<_, Error>(AlarmPage {
            nav: c.nav("alarms"),
            a: alarm_item(alarm, &names),
            history: history
                .into_iter()
                .map(|h| HistoryItem {
                    time: when(h.at),
                    from_class: state_badge(&h.old_state),
                    to_class: state_badge(&h.new_state),
                    from: h.old_state,
                    to: h.new_state,
                    reason: h.reason,
                })
                .collect(),
            message: (q.done.as_deref() == Some("create")).then(|| {
                "Alarm created: INSUFFICIENT_DATA until it is first evaluated.".to_owned()
            }),
        })
    }
    .await;
    match result {
        Ok(p) => c.render(&p),
        Err(e) => c.error(&e),
    }
}

/// A webhook row.
pub struct HookItem {
    pub id: String,
    pub url: String,
    pub description: String,
    pub all_alarms: bool,
    pub created: String,
}

impl From<webhooks::Webhook> for HookItem {
    fn from(h: webhooks::Webhook) -> Self {
        Self {
            id: h.id,
            url: h.url,
            description: h.description,
            all_alarms: h.all_alarms,
            created: when(h.created_at),
        }
    }
}

/// What the webhook form holds (as typed).
#[derive(Clone, Debug, Default)]
pub struct HookValues {
    pub url: String,
    pub description: String,
    pub all_alarms: bool,
}

#[derive(Template)]
#[template(path = "webhooks.html")]
struct HooksPage {
    nav: Nav,
    hooks: Vec<HookItem>,
    v: HookValues,
    /// A just-created hook: its id and secret, shown this once.
    created: Option<(String, String)>,
    message: Option<String>,
    error_attribute: String,
    error: Option<String>,
}

async fn hooks_page(
    state: &ApiState,
    c: &Console,
    v: HookValues,
    created: Option<(String, String)>,
    error: Option<&Error>,
) -> Result<HooksPage, Error> {
    let hooks = webhooks::webhook_list(&state.app, &c.caller)
        .await?
        .into_iter()
        .map(HookItem::from)
        .collect();
    Ok(HooksPage {
        nav: c.nav("webhooks"),
        hooks,
        v,
        created,
        message: None,
        error_attribute: error
            .and_then(|e| e.attribute())
            .map(|a| match a {
                "url" => "url",
                "description" => "description",
                _ => "form",
            })
            .unwrap_or(if error.is_some() { "form" } else { "" })
            .to_owned(),
        error: error.map(|e| e.to_string()),
    })
}

/// `GET /console/webhooks`.
pub async fn hooks(
    State(state): State<ApiState>,
    c: Console,
    Query(q): Query<DoneQuery>,
) -> Response {
    match hooks_page(&state, &c, HookValues::default(), None, None).await {
        Ok(mut p) => {
            p.message = (q.done.as_deref() == Some("delete")).then(|| "Webhook deleted.".into());
            c.render(&p)
        }
        Err(e) => c.error(&e),
    }
}

/// `POST /console/webhooks`: `op` = create (answers with the secret, once) or delete.
pub async fn hooks_post(
    State(state): State<ApiState>,
    c: Console,
    SourceAddress(source): SourceAddress,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let typed = Form::parse(&body);
    let create = typed.get("op") == "create";
    let mut resource_id = typed.opt("id");
    let mut values = None;
    let result: Result<Response, Error> = async {
        let form = c.form(&headers, &body, Action::Write)?;
        match form.get("op").as_str() {
            "create" => {
                let v = HookValues {
                    url: form.get("url"),
                    description: form.get("description"),
                    all_alarms: form.checked("allAlarms"),
                };
                values = Some(v.clone());
                let new = NewWebhook {
                    url: form.opt("url"),
                    description: form.opt("description"),
                    all_alarms: v.all_alarms,
                };
                let (hook, secret) = webhooks::webhook_create(&state.app, &c.caller, new).await?;
                resource_id = Some(hook.id.clone());
                let page = hooks_page(
                    &state,
                    &c,
                    HookValues::default(),
                    Some((hook.id, secret)),
                    None,
                )
                .await?;
                Ok(c.render(&page))
            }
            "delete" => {
                confirmed(&form)?;
                webhooks::webhook_delete(&state.app, &c.caller, &form.get("id")).await?;
                Ok(see_other(&format!("{WEBHOOKS}?done=delete")))
            }
            other => Err(Error::bad_request(
                "op",
                format!("Unknown operation {other:?}."),
            )),
        }
    }
    .await;
    let what = Audited {
        operation: if create {
            "CreateWebhook"
        } else {
            "DeleteWebhook"
        },
        resource_type: "Webhook",
        resource_id,
    };
    c.audit(&state, source, what, result.as_ref().map(|_| ()))
        .await;
    match (result, values) {
        (Ok(r), _) => c.with_cookie(r),
        (Err(e @ Error::BadRequest { .. }), Some(v)) => {
            match hooks_page(&state, &c, v, None, Some(&e)).await {
                Ok(p) => c.with_cookie(html(StatusCode::BAD_REQUEST, &p)),
                Err(e) => c.error(&e),
            }
        }
        (Err(e), _) => c.error(&e),
    }
}

/// One delivery of the log.
pub struct DeliveryItem {
    pub id: String,
    pub time: String,
    pub alarm_id: String,
    pub alarm: String,
    pub change: String,
    pub status: String,
    pub status_class: &'static str,
    pub attempts: i32,
    pub outcome: String,
    pub next_retry: String,
}

/// The alarm id, name and `old → new` a notification body names (blank if unreadable).
fn notified(body: &str) -> (String, String, String) {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let s = |p: &str| v.pointer(p).and_then(|x| x.as_str()).unwrap_or_default();
    let change = match (s("/oldState"), s("/newState")) {
        ("", "") => String::new(),
        (a, b) => format!("{a} → {b}"),
    };
    (
        s("/alarm/alarmId").to_owned(),
        s("/alarm/name").to_owned(),
        change,
    )
}

#[derive(Template)]
#[template(path = "webhook_detail.html")]
struct HookPage {
    nav: Nav,
    h: HookItem,
    deliveries: Vec<DeliveryItem>,
}

/// `GET /console/webhooks/{id}`: the hook and its delivery log, newest first.
pub async fn hook_detail(
    State(state): State<ApiState>,
    c: Console,
    Path(id): Path<String>,
) -> Response {
    let result = async {
        let rows = webhooks::delivery_list(&state.app, &c.caller, &id).await?;
        let hook = webhooks::webhook_list(&state.app, &c.caller)
            .await?
            .into_iter()
            .find(|h| h.id == id)
            .ok_or_else(|| {
                Error::not_found(
                    "webhook-id",
                    format!("Can't find requested webhook [{id}]."),
                )
            })?;
        let deliveries = rows
            .into_iter()
            .map(|d| {
                let (alarm_id, alarm, change) = notified(&d.body);
                let outcome = match (d.last_status_code, &d.last_error) {
                    (Some(code), Some(e)) => format!("HTTP {code}: {e}"),
                    (Some(code), None) => format!("HTTP {code}"),
                    (None, Some(e)) => e.clone(),
                    (None, None) => "not sent yet".into(),
                };
                DeliveryItem {
                    id: d.id.to_string(),
                    time: when(d.created_at),
                    alarm_id,
                    alarm,
                    change,
                    status_class: match d.status.as_str() {
                        "DELIVERED" => "ok",
                        "FAILED" => "bad",
                        _ => "busy",
                    },
                    next_retry: if d.status == "PENDING" {
                        when(d.next_attempt_at)
                    } else {
                        "–".into()
                    },
                    status: d.status,
                    attempts: d.attempts,
                    outcome,
                }
            })
            .collect();
        Ok::<_, Error>(HookPage {
            nav: c.nav("webhooks"),
            h: hook.into(),
            deliveries,
        })
    }
    .await;
    match result {
        Ok(p) => c.render(&p),
        Err(e) => c.error(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_numbers_that_are_not_numbers_name_their_field() {
        let v = AlarmValues {
            threshold: "lots".into(),
            ..AlarmValues::default()
        };
        assert_eq!(v.to_new().unwrap_err().attribute(), Some("threshold"));
        let v = AlarmValues {
            period: "1.5".into(),
            ..AlarmValues::default()
        };
        assert_eq!(v.to_new().unwrap_err().attribute(), Some("periodSeconds"));
        let v = AlarmValues {
            dimension_value: "orders".into(),
            ..AlarmValues::default()
        };
        assert_eq!(v.to_new().unwrap_err().attribute(), Some("dimensions"));
        let ok = AlarmValues {
            threshold: "2.5".into(),
            dimension: "Queue".into(),
            dimension_value: "orders".into(),
            webhook: "wh-1".into(),
            ..AlarmValues::default()
        }
        .to_new()
        .unwrap();
        assert_eq!(ok.threshold, Some(2.5));
        assert_eq!(ok.dimensions["Queue"], "orders");
        assert_eq!(ok.webhook_ids, vec!["wh-1".to_owned()]);
    }

    #[test]
    fn a_notification_names_its_alarm() {
        let body = r#"{"alarm":{"alarmId":"al-1","name":"n"},"oldState":"OK","newState":"ALARM"}"#;
        assert_eq!(
            notified(body),
            ("al-1".into(), "n".into(), "OK → ALARM".into())
        );
        assert_eq!(notified("not json"), Default::default());
    }
}
