//! The audit log: who changed what, when, from where, and how it ended.
//!
//! HTTP records every mutating `/v1/` call (whatever its outcome, once the caller is
//! known) and the app layer records logins, failed logins and logouts. Events never hold
//! a secret or a request body. Reading them (`ListAuditEvents`) is for admins and
//! operators, within their own account, newest first.

use std::net::IpAddr;

use chrono::{DateTime, Utc};

use super::paging;
use super::{authorize, Action, AppContext, Caller};
use crate::db::audit::{AuditEventRow, AuditFilter, NewAuditEvent};
use crate::domain::AccountId;
use crate::error::Error;

/// An event to record.
#[derive(Clone, Debug)]
pub struct AuditRecord {
    pub account: AccountId,
    /// `access_key`, `console_user`, `internal`.
    pub principal_kind: &'static str,
    pub principal_id: String,
    pub principal_name: Option<String>,
    /// Amazon MQ operation name (`CreateBroker`) or Berth's (`CreateAccessKey`, `Login`).
    pub operation: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub source: Option<IpAddr>,
    /// HTTP status of the answer.
    pub status: u16,
    /// `x-amzn-ErrorType` of a failure.
    pub error_code: Option<String>,
}

impl AuditRecord {
    /// A record for `caller`'s `operation`, outcome still to fill in.
    pub fn for_caller(
        caller: &Caller,
        operation: impl Into<String>,
        source: Option<IpAddr>,
    ) -> Self {
        Self {
            account: caller.scope.account.clone(),
            principal_kind: caller.principal.kind(),
            principal_id: caller.principal.id(),
            principal_name: caller.principal.name().map(str::to_owned),
            operation: operation.into(),
            resource_type: None,
            resource_id: None,
            source,
            status: 200,
            error_code: None,
        }
    }
}

/// Appends the event. A failure to record is logged, not returned: the change it
/// describes has happened already.
pub async fn record(ctx: &AppContext, r: AuditRecord) {
    let event = NewAuditEvent {
        account_id: r.account.as_str().to_owned(),
        principal_kind: r.principal_kind.to_owned(),
        principal_id: r.principal_id,
        principal_name: r.principal_name,
        operation: r.operation,
        resource_type: r.resource_type,
        resource_id: r.resource_id,
        source_address: r.source.map(|ip| ip.to_string()),
        status: i32::from(r.status),
        error_code: r.error_code,
    };
    if let Err(e) = ctx.store.audit_insert(&event).await {
        tracing::error!(error = %format!("{e:#}"), operation = %event.operation, "could not record audit event");
    }
}

/// An event as the API shows it.
#[derive(Clone, Debug)]
pub struct AuditEvent {
    pub event_id: i64,
    pub time: DateTime<Utc>,
    pub account: AccountId,
    pub principal_kind: String,
    pub principal_id: String,
    pub principal_name: Option<String>,
    pub operation: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub source_address: Option<String>,
    pub status: i32,
    pub error_code: Option<String>,
}

impl TryFrom<AuditEventRow> for AuditEvent {
    type Error = Error;
    fn try_from(r: AuditEventRow) -> Result<Self, Error> {
        Ok(Self {
            event_id: r.seq,
            time: r.at,
            account: AccountId::parse(&r.account_id)
                .map_err(|e| Error::internal("stored account id", anyhow::anyhow!(e)))?,
            principal_kind: r.principal_kind,
            principal_id: r.principal_id,
            principal_name: r.principal_name,
            operation: r.operation,
            resource_type: r.resource_type,
            resource_id: r.resource_id,
            source_address: r.source_address,
            status: r.status,
            error_code: r.error_code,
        })
    }
}

/// A list query.
#[derive(Debug, Default)]
pub struct AuditQuery<'a> {
    pub resource_id: Option<&'a str>,
    pub principal: Option<&'a str>,
    pub max_results: Option<&'a str>,
    pub next_token: Option<&'a str>,
}

/// ListAuditEvents (admin, operator): the caller's account's events, newest first,
/// paged like Amazon MQ's lists.
pub async fn list(
    ctx: &AppContext,
    caller: &Caller,
    q: AuditQuery<'_>,
) -> Result<(Vec<AuditEvent>, Option<String>), Error> {
    authorize(caller, Action::ReadAudit)?;
    let limit = paging::max_results(q.max_results, 20)?;
    let before_seq = match paging::decode_token(q.next_token)? {
        None => None,
        Some(k) => Some(k.parse::<i64>().map_err(|_| paging::invalid_token())?),
    };
    let filter = AuditFilter {
        resource_id: q.resource_id.filter(|s| !s.is_empty()).map(str::to_owned),
        principal: q.principal.filter(|s| !s.is_empty()).map(str::to_owned),
        before_seq,
    };
    let mut rows = ctx
        .store
        .audit_list(caller.scope.account.as_str(), &filter, limit + 1)
        .await?;
    let next = paging::finish_page(&mut rows, limit, |r| r.seq.to_string());
    let events = rows
        .into_iter()
        .map(AuditEvent::try_from)
        .collect::<Result<_, _>>()?;
    Ok((events, next))
}
