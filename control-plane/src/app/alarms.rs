//! Alarms on metric history (CloudWatch-like) and the built-in "metrics collection
//! stopped" alarm.
//!
//! An alarm compares a statistic (Average, Minimum, Maximum, Sum, SampleCount) of one
//! metric of one broker — every series of that name whose dimensions contain the alarm's
//! (`@>`), e.g. `{"Queue": "orders"}` across nodes — with a threshold over each of the
//! last `evaluationPeriods` periods of `periodSeconds`, ending now:
//! - every period has data and breaches → ALARM;
//! - some period with data does not breach → OK;
//! - no period has data → INSUFFICIENT_DATA;
//! - otherwise (data missing in some periods, the rest breach) the state stays.
//!
//! The evaluator task (every `alarm_eval_interval_secs`, off when 0) evaluates every
//! alarm; each transition is stored in the alarm's history and notifies, in the same
//! transaction, the alarm's webhooks and the account's `allAlarms` webhooks.
//! Built-in: every RUNNING broker has a "metrics collection stopped" alarm that goes
//! ALARM when its newest `metric_reports.collected_at` (or its creation, if never
//! collected) is older than 3 × the metrics interval; it notifies `allAlarms` hooks.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use agent_contract::metrics::dims;
use chrono::{DateTime, TimeDelta, Utc};
use tokio_util::sync::CancellationToken;

// The metric names an alarm may watch are those Berth collects.
use super::metrics::METRIC_NAMES;
use super::{authorize, Action, AppContext, Caller};
use crate::db::alarms::{AlarmHistoryRow, AlarmRow, CollectionAge, NewDelivery, Transition};
use crate::db::DataStore;
use crate::error::Error;

/// The dimensions an alarm may filter on.
pub const DIMENSIONS: &[&str] = &[dims::NODE, dims::QUEUE, dims::TOPIC, dims::VIRTUAL_HOST];

/// The built-in stale-collector condition.
pub const BUILTIN_STALE: &str = "metrics-collection-stopped";
/// The metric name built-in stale-collector alarms show.
pub const STALE_METRIC: &str = "MetricsCollectionStopped";

/// Every period statistic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Statistic {
    Average,
    Minimum,
    Maximum,
    Sum,
    SampleCount,
}

/// How a statistic is compared with the threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Comparison {
    GreaterThanThreshold,
    GreaterThanOrEqualToThreshold,
    LessThanThreshold,
    LessThanOrEqualToThreshold,
}

/// An alarm's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlarmState {
    Ok,
    Alarm,
    InsufficientData,
}

macro_rules! string_enum {
    ($t:ident, $what:literal, $($v:ident => $s:literal),+) => {
        impl $t {
            pub const ALL: &'static [$t] = &[$($t::$v),+];
            pub fn as_str(self) -> &'static str {
                match self { $($t::$v => $s),+ }
            }
            /// Parses the wire name; anything else is a 400 on `attribute`.
            pub fn parse(s: &str, attribute: &str) -> Result<Self, Error> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s).ok_or_else(|| {
                    let all: Vec<_> = Self::ALL.iter().map(|v| v.as_str()).collect();
                    Error::bad_request(attribute, format!("The {} must be one of {}; got {s:?}.", $what, all.join(", ")))
                })
            }
            /// A value read back from the database.
            pub fn from_db(s: &str) -> Result<Self, Error> {
                Self::parse(s, "stored").map_err(|e| Error::internal(concat!("stored ", $what), anyhow::anyhow!("{e}")))
            }
        }
    };
}

string_enum!(Statistic, "statistic", Average => "Average", Minimum => "Minimum",
    Maximum => "Maximum", Sum => "Sum", SampleCount => "SampleCount");
string_enum!(Comparison, "comparison",
    GreaterThanThreshold => "GreaterThanThreshold",
    GreaterThanOrEqualToThreshold => "GreaterThanOrEqualToThreshold",
    LessThanThreshold => "LessThanThreshold",
    LessThanOrEqualToThreshold => "LessThanOrEqualToThreshold");
string_enum!(AlarmState, "alarm state", Ok => "OK", Alarm => "ALARM",
    InsufficientData => "INSUFFICIENT_DATA");

impl Statistic {
    /// The statistic of `values`, `None` when there are none.
    pub fn of(self, values: &[f64]) -> Option<f64> {
        if values.is_empty() {
            return None;
        }
        let sum: f64 = values.iter().sum();
        Some(match self {
            Self::Average => sum / values.len() as f64,
            Self::Minimum => values.iter().copied().fold(f64::INFINITY, f64::min),
            Self::Maximum => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            Self::Sum => sum,
            Self::SampleCount => values.len() as f64,
        })
    }
}

impl Comparison {
    pub fn breaches(self, value: f64, threshold: f64) -> bool {
        match self {
            Self::GreaterThanThreshold => value > threshold,
            Self::GreaterThanOrEqualToThreshold => value >= threshold,
            Self::LessThanThreshold => value < threshold,
            Self::LessThanOrEqualToThreshold => value <= threshold,
        }
    }
}

/// What an alarm evaluates.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub statistic: Statistic,
    pub comparison: Comparison,
    pub threshold: f64,
    pub period: Duration,
    pub evaluation_periods: u32,
}

impl Rule {
    /// The span of history the rule looks at.
    pub fn window(&self) -> TimeDelta {
        TimeDelta::from_std(self.period * self.evaluation_periods).unwrap_or(TimeDelta::MAX)
    }

    /// The statistic of each period, newest first: period `i` is
    /// `(now - (i+1)·period, now - i·period]`.
    pub fn period_values(
        &self,
        samples: &[(DateTime<Utc>, f64)],
        now: DateTime<Utc>,
    ) -> Vec<Option<f64>> {
        let period_ms = self.period.as_millis().max(1) as i64;
        let mut buckets = vec![Vec::new(); self.evaluation_periods as usize];
        for (ts, v) in samples {
            let age = (now - *ts).num_milliseconds();
            if age < 0 {
                continue;
            }
            let i = (age / period_ms) as usize;
            if let Some(b) = buckets.get_mut(i) {
                b.push(*v);
            }
        }
        buckets.iter().map(|b| self.statistic.of(b)).collect()
    }

    /// The state the period values call for, with why; `None` keeps the current state.
    pub fn decide(&self, values: &[Option<f64>]) -> Option<(AlarmState, String)> {
        let present: Vec<f64> = values.iter().flatten().copied().collect();
        let describe = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if present.is_empty() {
            return Some((
                AlarmState::InsufficientData,
                format!("No data in the last {} period(s).", values.len()),
            ));
        }
        let breaching = |v: &f64| self.comparison.breaches(*v, self.threshold);
        if !present.iter().all(breaching) {
            return Some((
                AlarmState::Ok,
                format!(
                    "Threshold not crossed: {} [{}] {} {}.",
                    self.statistic.as_str(),
                    describe(&present),
                    self.comparison.as_str(),
                    self.threshold
                ),
            ));
        }
        if present.len() == values.len() {
            return Some((
                AlarmState::Alarm,
                format!(
                    "Threshold crossed: {} [{}] {} {} in {} of {} period(s).",
                    self.statistic.as_str(),
                    describe(&present),
                    self.comparison.as_str(),
                    self.threshold,
                    present.len(),
                    values.len()
                ),
            ));
        }
        None
    }
}

/// Where the evaluator reads samples from: metric history by broker, name and
/// dimensions contained in the series'.
#[async_trait::async_trait]
pub trait MetricHistory: Send + Sync {
    async fn samples(
        &self,
        broker_id: &str,
        metric: &str,
        dimensions: &BTreeMap<String, String>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, f64)>, Error>;
}

/// [`MetricHistory`] over `metric_series`/`metric_points`.
pub struct PgHistory<'a>(pub &'a DataStore);

#[async_trait::async_trait]
impl MetricHistory for PgHistory<'_> {
    async fn samples(
        &self,
        broker_id: &str,
        metric: &str,
        dimensions: &BTreeMap<String, String>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, f64)>, Error> {
        let dims =
            serde_json::to_value(dimensions).map_err(|e| Error::internal("alarm dimensions", e))?;
        self.0
            .metric_samples(broker_id, metric, &dims, from, to)
            .await
    }
}

/// An alarm as the API shows it.
#[derive(Clone, Debug)]
pub struct Alarm {
    pub id: String,
    pub name: String,
    pub broker_id: String,
    pub builtin: bool,
    pub metric_name: String,
    pub dimensions: BTreeMap<String, String>,
    pub rule: Rule,
    pub webhook_ids: Vec<String>,
    pub state: AlarmState,
    pub state_reason: String,
    pub state_changed_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

impl TryFrom<AlarmRow> for Alarm {
    type Error = Error;
    fn try_from(r: AlarmRow) -> Result<Self, Error> {
        let stored =
            |what: &str, e: serde_json::Error| Error::internal(format!("stored alarm {what}"), e);
        Ok(Self {
            dimensions: serde_json::from_value(r.dimensions.0)
                .map_err(|e| stored("dimensions", e))?,
            webhook_ids: serde_json::from_value(r.webhook_ids.0)
                .map_err(|e| stored("webhook ids", e))?,
            rule: Rule {
                statistic: Statistic::from_db(&r.statistic)?,
                comparison: Comparison::from_db(&r.comparison)?,
                threshold: r.threshold,
                period: Duration::from_secs(u64::try_from(r.period_secs).unwrap_or(1).max(1)),
                evaluation_periods: u32::try_from(r.evaluation_periods).unwrap_or(1).max(1),
            },
            state: AlarmState::from_db(&r.state)?,
            id: r.id,
            name: r.name,
            broker_id: r.broker_id,
            builtin: r.builtin.is_some(),
            metric_name: r.metric_name,
            state_reason: r.state_reason,
            state_changed_at: r.state_changed_at,
            created_at: r.created_at,
        })
    }
}

/// What CreateAlarm asks for (wire names in the errors' attributes).
#[derive(Clone, Debug, Default)]
pub struct NewAlarm {
    pub name: Option<String>,
    pub broker_id: Option<String>,
    pub metric_name: Option<String>,
    pub dimensions: BTreeMap<String, String>,
    pub statistic: Option<String>,
    pub comparison: Option<String>,
    pub threshold: Option<f64>,
    pub period_seconds: Option<i64>,
    pub evaluation_periods: Option<i64>,
    pub webhook_ids: Vec<String>,
}

fn required<T>(v: Option<T>, attribute: &str) -> Result<T, Error> {
    v.ok_or_else(|| Error::bad_request(attribute, format!("The {attribute} is required.")))
}

/// Validates everything that needs no database.
fn validate(new: NewAlarm) -> Result<(String, String, String, Rule, NewAlarm), Error> {
    let name = required(new.name.clone(), "name")?;
    if name.trim().is_empty() || name.chars().count() > 255 || name.chars().any(char::is_control) {
        return Err(Error::bad_request(
            "name",
            "The name must be 1 to 255 printable characters.",
        ));
    }
    let broker_id = required(new.broker_id.clone(), "brokerId")?;
    let metric = required(new.metric_name.clone(), "metricName")?;
    if !METRIC_NAMES.contains(&metric.as_str()) {
        return Err(Error::bad_request(
            "metricName",
            format!("Unknown metric {metric:?}."),
        ));
    }
    for (k, v) in &new.dimensions {
        if !DIMENSIONS.contains(&k.as_str()) {
            return Err(Error::bad_request(
                "dimensions",
                format!(
                    "Unknown dimension {k:?}; use one of {}.",
                    DIMENSIONS.join(", ")
                ),
            ));
        }
        if v.is_empty() || v.chars().count() > 255 {
            return Err(Error::bad_request(
                "dimensions",
                format!("The value of {k} must be 1 to 255 characters."),
            ));
        }
    }
    let statistic = Statistic::parse(&required(new.statistic.clone(), "statistic")?, "statistic")?;
    let comparison = Comparison::parse(
        &required(new.comparison.clone(), "comparison")?,
        "comparison",
    )?;
    let threshold = required(new.threshold, "threshold")?;
    if !threshold.is_finite() {
        return Err(Error::bad_request(
            "threshold",
            "The threshold must be a finite number.",
        ));
    }
    let period = required(new.period_seconds, "periodSeconds")?;
    if !(10..=86_400).contains(&period) {
        return Err(Error::bad_request(
            "periodSeconds",
            "The periodSeconds must be from 10 to 86400.",
        ));
    }
    let periods = required(new.evaluation_periods, "evaluationPeriods")?;
    if !(1..=100).contains(&periods) {
        return Err(Error::bad_request(
            "evaluationPeriods",
            "The evaluationPeriods must be from 1 to 100.",
        ));
    }
    let rule = Rule {
        statistic,
        comparison,
        threshold,
        period: Duration::from_secs(period as u64),
        evaluation_periods: periods as u32,
    };
    Ok((name, broker_id, metric, rule, new))
}

/// Creates an alarm on one of the caller's brokers, INSUFFICIENT_DATA until evaluated.
pub async fn alarm_create(
    ctx: &AppContext,
    caller: &Caller,
    new: NewAlarm,
) -> Result<Alarm, Error> {
    authorize(caller, Action::Write)?;
    let (name, broker_id, metric, rule, new) = validate(new)?;
    let broker = super::owned_broker(ctx, caller, &broker_id)
        .await
        .map_err(|_| {
            Error::bad_request(
                "brokerId",
                format!("No broker {broker_id:?} in this account."),
            )
        })?;
    let account = caller.scope.account.as_str();
    let hooks: BTreeSet<String> = ctx
        .store
        .webhook_list(account)
        .await?
        .into_iter()
        .map(|w| w.id)
        .collect();
    let webhook_ids: Vec<String> = new
        .webhook_ids
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if let Some(missing) = webhook_ids.iter().find(|id| !hooks.contains(*id)) {
        return Err(Error::bad_request(
            "webhookIds",
            format!("No webhook {missing:?} in this account."),
        ));
    }
    let now = Utc::now();
    let row = AlarmRow {
        id: format!("al-{}", uuid::Uuid::new_v4()),
        account_id: account.to_owned(),
        name,
        broker_id: broker.id,
        builtin: None,
        metric_name: metric,
        dimensions: sqlx::types::Json(
            serde_json::to_value(&new.dimensions).map_err(|e| Error::internal("dimensions", e))?,
        ),
        statistic: rule.statistic.as_str().into(),
        comparison: rule.comparison.as_str().into(),
        threshold: rule.threshold,
        period_secs: rule.period.as_secs() as i32,
        evaluation_periods: rule.evaluation_periods as i32,
        webhook_ids: sqlx::types::Json(serde_json::json!(webhook_ids)),
        state: AlarmState::InsufficientData.as_str().into(),
        state_reason: "Not evaluated yet.".into(),
        state_changed_at: now,
        created_at: now,
    };
    ctx.store.alarm_insert(&row).await?;
    row.try_into()
}

pub async fn alarm_list(ctx: &AppContext, caller: &Caller) -> Result<Vec<Alarm>, Error> {
    authorize(caller, Action::Read)?;
    ctx.store
        .alarm_list(Some(caller.scope.account.as_str()))
        .await?
        .into_iter()
        .map(Alarm::try_from)
        .collect()
}

fn alarm_not_found(id: &str) -> Error {
    Error::not_found("alarm-id", format!("Can't find requested alarm [{id}]."))
}

pub async fn alarm_describe(ctx: &AppContext, caller: &Caller, id: &str) -> Result<Alarm, Error> {
    authorize(caller, Action::Read)?;
    ctx.store
        .alarm_fetch(caller.scope.account.as_str(), id)
        .await?
        .ok_or_else(|| alarm_not_found(id))?
        .try_into()
}

/// Deletes a user-defined alarm; a built-in one is a 400.
pub async fn alarm_delete(ctx: &AppContext, caller: &Caller, id: &str) -> Result<(), Error> {
    authorize(caller, Action::Write)?;
    let alarm = alarm_describe(ctx, caller, id).await?;
    if alarm.builtin {
        return Err(Error::bad_request(
            "alarm-id",
            "Built-in alarms cannot be deleted.",
        ));
    }
    if ctx
        .store
        .alarm_delete(caller.scope.account.as_str(), id)
        .await?
    {
        Ok(())
    } else {
        Err(alarm_not_found(id))
    }
}

pub async fn alarm_history(
    ctx: &AppContext,
    caller: &Caller,
    id: &str,
) -> Result<Vec<AlarmHistoryRow>, Error> {
    alarm_describe(ctx, caller, id).await?;
    ctx.store.alarm_history(id).await
}

/// How the evaluator runs.
#[derive(Clone, Debug)]
pub struct EvaluatorConfig {
    pub interval: Duration,
    /// The collector's interval: a broker not collected for 3× this is stale.
    pub metrics_interval: Duration,
}

/// Evaluates every alarm once, as of `now`. Returns how many changed state.
pub async fn evaluate_all(
    store: &DataStore,
    history: &dyn MetricHistory,
    config: &EvaluatorConfig,
    now: DateTime<Utc>,
) -> Result<usize, Error> {
    let ages: BTreeMap<String, CollectionAge> = store
        .metric_collection_ages()
        .await?
        .into_iter()
        .map(|a| (a.broker_id.clone(), a))
        .collect();
    store.alarm_builtin_prune().await?;
    let mut rows = store.alarm_list(None).await?;
    let covered: BTreeSet<&str> = rows
        .iter()
        .filter(|r| r.builtin.as_deref() == Some(BUILTIN_STALE))
        .map(|r| r.broker_id.as_str())
        .collect();
    let missing: Vec<&CollectionAge> = ages
        .values()
        .filter(|a| !covered.contains(a.broker_id.as_str()))
        .collect();
    if !missing.is_empty() {
        ensure_builtin(store, &missing, config, now).await?;
        rows = store.alarm_list(None).await?;
    }
    let after = stale_after(config);
    let mut all_alarm_hooks: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut changed = 0;
    for row in rows {
        let account = row.account_id.clone();
        let builtin = row.builtin.clone();
        let alarm = match Alarm::try_from(row) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "skipping an unreadable alarm");
                continue;
            }
        };
        let decision = match builtin.as_deref() {
            Some(BUILTIN_STALE) => ages
                .get(&alarm.broker_id)
                .map(|a| stale_state(a.created_at, a.collected_at, after, now)),
            Some(_) => None,
            None => {
                let samples = history
                    .samples(
                        &alarm.broker_id,
                        &alarm.metric_name,
                        &alarm.dimensions,
                        now - alarm.rule.window(),
                        now,
                    )
                    .await?;
                alarm.rule.decide(&alarm.rule.period_values(&samples, now))
            }
        };
        let Some((state, reason)) = decision else {
            continue;
        };
        if state == alarm.state {
            continue;
        }
        if !all_alarm_hooks.contains_key(&account) {
            let hooks = store.webhook_list(&account).await?;
            all_alarm_hooks.insert(
                account.clone(),
                hooks
                    .into_iter()
                    .filter(|h| h.all_alarms)
                    .map(|h| h.id)
                    .collect(),
            );
        }
        let hooks: BTreeSet<&String> = alarm
            .webhook_ids
            .iter()
            .chain(&all_alarm_hooks[&account])
            .collect();
        let deliveries: Vec<NewDelivery> = hooks
            .into_iter()
            .map(|hook| {
                let id = uuid::Uuid::new_v4();
                NewDelivery {
                    id,
                    webhook_id: hook.clone(),
                    event: "alarm.state_changed".into(),
                    body: notification(id, &account, &alarm, state, &reason, now),
                }
            })
            .collect();
        if store
            .alarm_transition(
                &Transition {
                    id: &alarm.id,
                    account: &account,
                    old: alarm.state.as_str(),
                    new: state.as_str(),
                    reason: &reason,
                    at: now,
                },
                &deliveries,
            )
            .await?
        {
            changed += 1;
        }
    }
    Ok(changed)
}

/// The JSON body of a transition's notification.
fn notification(
    id: uuid::Uuid,
    account: &str,
    alarm: &Alarm,
    state: AlarmState,
    reason: &str,
    at: DateTime<Utc>,
) -> String {
    serde_json::json!({
        "deliveryId": id,
        "event": "alarm.state_changed",
        "time": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "accountId": account,
        "alarm": {
            "alarmId": alarm.id,
            "name": alarm.name,
            "brokerId": alarm.broker_id,
            "builtIn": alarm.builtin,
            "metricName": alarm.metric_name,
            "dimensions": alarm.dimensions,
        },
        "oldState": alarm.state.as_str(),
        "newState": state.as_str(),
        "reason": reason,
    })
    .to_string()
}

/// Three collection intervals; never when collection is turned off (interval 0).
fn stale_after(config: &EvaluatorConfig) -> TimeDelta {
    if config.metrics_interval.is_zero() {
        return TimeDelta::MAX;
    }
    TimeDelta::from_std(config.metrics_interval * 3).unwrap_or(TimeDelta::MAX)
}

/// Whether a broker last collected at `collected` (created at `created`) is stale.
pub fn stale_state(
    created: DateTime<Utc>,
    collected: Option<DateTime<Utc>>,
    after: TimeDelta,
    now: DateTime<Utc>,
) -> (AlarmState, String) {
    let last = collected.unwrap_or(created);
    let age = now - last;
    if age > after {
        let what = if collected.is_some() {
            "last collected"
        } else {
            "never collected; created"
        };
        (
            AlarmState::Alarm,
            format!(
                "Metrics collection stopped: {what} {} s ago (more than {} s).",
                age.num_seconds(),
                after.num_seconds()
            ),
        )
    } else {
        (AlarmState::Ok, "Metrics are being collected.".into())
    }
}

/// Creates the built-in alarm of RUNNING brokers that lack one, in the state they are in
/// (so a new broker does not notify).
async fn ensure_builtin(
    store: &DataStore,
    missing: &[&CollectionAge],
    config: &EvaluatorConfig,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let after = stale_after(config);
    for a in missing.iter().map(|a| (*a).clone()) {
        let (state, reason) = stale_state(a.created_at, a.collected_at, after, now);
        let row = AlarmRow {
            id: format!("al-{}", uuid::Uuid::new_v4()),
            account_id: a.account_id,
            name: format!(
                "metrics collection stopped: {} ({})",
                a.broker_name, a.broker_id
            ),
            broker_id: a.broker_id,
            builtin: Some(BUILTIN_STALE.into()),
            metric_name: STALE_METRIC.into(),
            dimensions: sqlx::types::Json(serde_json::json!({})),
            statistic: Statistic::Maximum.as_str().into(),
            comparison: Comparison::GreaterThanThreshold.as_str().into(),
            threshold: after.num_seconds() as f64,
            period_secs: i32::try_from(config.metrics_interval.as_secs().max(1))
                .unwrap_or(i32::MAX),
            evaluation_periods: 1,
            webhook_ids: sqlx::types::Json(serde_json::json!([])),
            state: state.as_str().into(),
            state_reason: reason,
            state_changed_at: now,
            created_at: now,
        };
        store.alarm_insert(&row).await?;
    }
    Ok(())
}

/// The evaluator task: [`evaluate_all`] every `interval` until `cancel`.
pub async fn run(store: DataStore, config: EvaluatorConfig, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(config.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = evaluate_all(&store, &PgHistory(&store), &config, Utc::now()).await {
            tracing::warn!(error = %format!("{e:#}"), "alarm evaluation failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(statistic: Statistic, comparison: Comparison, threshold: f64, periods: u32) -> Rule {
        Rule {
            statistic,
            comparison,
            threshold,
            period: Duration::from_secs(60),
            evaluation_periods: periods,
        }
    }

    fn at(now: DateTime<Utc>, secs_ago: i64) -> DateTime<Utc> {
        now - TimeDelta::seconds(secs_ago)
    }

    #[test]
    fn statistics() {
        let v = [1.0, 4.0, 7.0];
        assert_eq!(Statistic::Average.of(&v), Some(4.0));
        assert_eq!(Statistic::Minimum.of(&v), Some(1.0));
        assert_eq!(Statistic::Maximum.of(&v), Some(7.0));
        assert_eq!(Statistic::Sum.of(&v), Some(12.0));
        assert_eq!(Statistic::SampleCount.of(&v), Some(3.0));
        assert_eq!(Statistic::Sum.of(&[]), None);
    }

    #[test]
    fn samples_fall_into_periods_ending_now() {
        let now = Utc::now();
        let r = rule(Statistic::Sum, Comparison::GreaterThanThreshold, 0.0, 3);
        let samples = [
            (at(now, 0), 1.0),
            (at(now, 60), 2.0),
            (at(now, 61), 4.0),
            (at(now, 179), 8.0),
            (at(now, 181), 16.0),
        ];
        assert_eq!(
            r.period_values(&samples, now),
            vec![Some(1.0), Some(6.0), Some(8.0)]
        );
    }

    #[test]
    fn consumer_count_zero_alarms_then_recovers() {
        let now = Utc::now();
        let r = rule(
            Statistic::Maximum,
            Comparison::LessThanOrEqualToThreshold,
            0.0,
            2,
        );
        let zero = [(at(now, 10), 0.0), (at(now, 70), 0.0)];
        assert_eq!(
            r.decide(&r.period_values(&zero, now)).unwrap().0,
            AlarmState::Alarm
        );
        let back = [(at(now, 10), 2.0), (at(now, 70), 0.0)];
        assert_eq!(
            r.decide(&r.period_values(&back, now)).unwrap().0,
            AlarmState::Ok
        );
        // Breaching where there is data, but a period is missing: no change.
        let partial = [(at(now, 70), 0.0)];
        assert_eq!(r.decide(&r.period_values(&partial, now)), None);
        assert_eq!(
            r.decide(&r.period_values(&[], now)).unwrap().0,
            AlarmState::InsufficientData
        );
    }

    #[test]
    fn comparisons() {
        use Comparison::*;
        assert!(
            GreaterThanThreshold.breaches(2.0, 1.0) && !GreaterThanThreshold.breaches(1.0, 1.0)
        );
        assert!(GreaterThanOrEqualToThreshold.breaches(1.0, 1.0));
        assert!(LessThanThreshold.breaches(0.0, 1.0) && !LessThanThreshold.breaches(1.0, 1.0));
        assert!(LessThanOrEqualToThreshold.breaches(1.0, 1.0));
        assert_eq!(
            Comparison::parse("Bigger", "comparison")
                .unwrap_err()
                .attribute(),
            Some("comparison")
        );
    }

    #[test]
    fn a_broker_not_collected_for_three_intervals_is_stale() {
        let now = Utc::now();
        let after = TimeDelta::seconds(180);
        assert_eq!(
            stale_state(at(now, 3600), Some(at(now, 10)), after, now).0,
            AlarmState::Ok
        );
        assert_eq!(
            stale_state(at(now, 3600), Some(at(now, 200)), after, now).0,
            AlarmState::Alarm
        );
        assert_eq!(stale_state(at(now, 60), None, after, now).0, AlarmState::Ok);
        assert_eq!(
            stale_state(at(now, 600), None, after, now).0,
            AlarmState::Alarm
        );
    }

    #[test]
    fn bad_alarms_name_their_attribute() {
        let good = NewAlarm {
            name: Some("no consumers".into()),
            broker_id: Some("b-x".into()),
            metric_name: Some("ConsumerCount".into()),
            dimensions: [("Queue".to_owned(), "orders".to_owned())].into(),
            statistic: Some("Maximum".into()),
            comparison: Some("LessThanOrEqualToThreshold".into()),
            threshold: Some(0.0),
            period_seconds: Some(60),
            evaluation_periods: Some(1),
            webhook_ids: vec![],
        };
        assert!(validate(good.clone()).is_ok());
        let cases: Vec<(&str, NewAlarm)> = vec![
            (
                "name",
                NewAlarm {
                    name: None,
                    ..good.clone()
                },
            ),
            (
                "metricName",
                NewAlarm {
                    metric_name: Some("Nope".into()),
                    ..good.clone()
                },
            ),
            (
                "dimensions",
                NewAlarm {
                    dimensions: [("Color".to_owned(), "x".to_owned())].into(),
                    ..good.clone()
                },
            ),
            (
                "statistic",
                NewAlarm {
                    statistic: Some("p99".into()),
                    ..good.clone()
                },
            ),
            (
                "threshold",
                NewAlarm {
                    threshold: Some(f64::NAN),
                    ..good.clone()
                },
            ),
            (
                "periodSeconds",
                NewAlarm {
                    period_seconds: Some(9),
                    ..good.clone()
                },
            ),
            (
                "evaluationPeriods",
                NewAlarm {
                    evaluation_periods: Some(101),
                    ..good.clone()
                },
            ),
            (
                "evaluationPeriods",
                NewAlarm {
                    evaluation_periods: Some(0),
                    ..good.clone()
                },
            ),
        ];
        for (attr, bad) in cases {
            assert_eq!(validate(bad).unwrap_err().attribute(), Some(attr));
        }
    }
}
