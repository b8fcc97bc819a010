//! The audit trail: who deployed, undeployed, started, cancelled, retried, forked,
//! approved, rejected, signalled, paused or resumed what, and when, kept with the
//! state (`braid audit`, `GET /audit`). An entry is written once its action took
//! effect; a store error then is logged, not returned: the action stands, and failing
//! it would invite a retry that does it twice.

use super::api::{ApiRequest, ApiResponse, failure};
use super::{HandlerError, HandlerResult, Handlers};
use braid_engine::model::{AuditAction, AuditEntry, RunId};
use braid_ports::AuditFilter;
use serde_json::json;
use std::collections::HashMap;

/// The most characters of a detail (a reason, a comment) an entry keeps.
const MAX_DETAIL_CHARS: usize = 500;

/// The most entries one listing returns.
pub const MAX_AUDIT_LIMIT: usize = 1000;

/// What an action was done to, for its entry.
#[derive(Debug, Default, Clone)]
pub struct Target<'a> {
    pub workflow: &'a str,
    pub run_id: Option<&'a RunId>,
    pub step: Option<&'a str>,
    pub detail: Option<&'a str>,
}

impl Handlers {
    /// Records that `actor` did `action` to `target`.
    pub(super) async fn audit_action(&self, action: AuditAction, actor: &str, target: Target<'_>) {
        let entry = AuditEntry {
            at: self.now(),
            actor: actor.to_string(),
            action,
            workflow: target.workflow.to_string(),
            run_id: target.run_id.cloned(),
            step: target.step.map(str::to_string),
            detail: target
                .detail
                .map(|d| d.chars().take(MAX_DETAIL_CHARS).collect()),
        };
        if let Err(e) = self.ports.store.note_audit(&entry).await {
            tracing::error!(action = action.as_str(), %actor, workflow = target.workflow, error = %e,
                "recording an action in the audit trail failed");
        }
    }

    /// The audit entries `filter` asks for, oldest first.
    pub async fn audit_trail(&self, filter: &AuditFilter) -> HandlerResult<Vec<AuditEntry>> {
        Ok(self.ports.store.audit(filter).await?)
    }

    /// `GET /audit?workflow=W&since=T&limit=N`: `{"entries": [...]}`, oldest first.
    pub(super) async fn api_audit(&self, req: &ApiRequest) -> ApiResponse {
        match audit_filter(&req.query) {
            Ok(filter) => match self.audit_trail(&filter).await {
                Ok(entries) => ApiResponse::ok(200, json!({ "entries": entries })),
                Err(e) => failure(e),
            },
            Err(e) => failure(e),
        }
    }
}

/// The filter a query string asks for; `since` is an RFC 3339 instant or a date.
fn audit_filter(query: &HashMap<String, String>) -> HandlerResult<AuditFilter> {
    let since = match query.get("since") {
        None => None,
        Some(s) => Some(parse_since(s).ok_or_else(|| {
            HandlerError::Invalid(format!(
                "since `{s}` is not an instant (2026-12-07T09:00:00Z) or a date (2026-12-07)"
            ))
        })?),
    };
    let limit = match query.get("limit").map(|l| l.parse::<usize>()) {
        None => 100,
        Some(Ok(n)) if (1..=MAX_AUDIT_LIMIT).contains(&n) => n,
        Some(_) => {
            return Err(HandlerError::Invalid(format!(
                "limit must be a number from 1 to {MAX_AUDIT_LIMIT}"
            )));
        }
    };
    Ok(AuditFilter {
        workflow: query.get("workflow").cloned(),
        since,
        limit,
    })
}

/// An RFC 3339 instant, or a date meaning its start (UTC).
pub fn parse_since(s: &str) -> Option<braid_engine::model::Timestamp> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&chrono::Utc));
    }
    let day = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    Some(day.and_hms_opt(0, 0, 0)?.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_an_instant_or_the_start_of_a_date() {
        assert_eq!(
            parse_since("2026-12-07").unwrap().to_rfc3339(),
            "2026-12-07T00:00:00+00:00"
        );
        assert_eq!(
            parse_since("2026-12-07T10:00:00+01:00")
                .unwrap()
                .to_rfc3339(),
            "2026-12-07T09:00:00+00:00"
        );
        assert!(parse_since("yesterday").is_none());
    }

    #[test]
    fn a_bad_since_or_limit_is_refused_naming_it() {
        let q = |k: &str, v: &str| HashMap::from([(k.to_string(), v.to_string())]);
        let e = audit_filter(&q("since", "soon")).unwrap_err().to_string();
        assert!(e.contains("since `soon`"), "{e}");
        let e = audit_filter(&q("limit", "0")).unwrap_err().to_string();
        assert!(e.contains("limit must be"), "{e}");
        assert_eq!(audit_filter(&q("workflow", "w")).unwrap().limit, 100);
    }
}
