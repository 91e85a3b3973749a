//! OCSF (Open Cybersecurity Schema Framework) 1.1 rendering for SIEMs: break-glass
//! grants and revocations are "User Access Management" events (class 3005,
//! category 3 IAM): activity 1 Assign Privileges, 2 Revoke Privileges, 99 Other.
//!
//! Every event declares the Host profile: in OCSF 1.1.0 class 3005 only has
//! `actor` (who acted, e.g. the approver) under that profile, and a validator
//! rejects an undeclared attribute. `user` (whose access it is) and `privileges`
//! (the role) are required; fields with no value are left out, never `null`.

use crate::domain::AuditAction;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

pub const VERSION: &str = "1.1.0";
/// Declared in `metadata.profiles`; `actor` needs "host" on class 3005 in 1.1.0.
pub const PROFILES: [&str; 1] = ["host"];
const CLASS_UID: i64 = 3005;
/// `user.name` when nothing names anyone (no requester, no actor).
const UNKNOWN_USER: &str = "unknown";

fn activity(action: &str) -> (i64, &'static str) {
    use AuditAction::*;
    match action.parse() {
        Ok(GrantActive | GrantIntent) => (1, "Assign Privileges"),
        Ok(RevokeConfirmed | RevokeStarted) => (2, "Revoke Privileges"),
        _ => (99, "Other"),
    }
}

fn severity(s: &str) -> (i64, &'static str) {
    match s {
        "critical" => (5, "Critical"),
        "high" => (4, "High"),
        "medium" => (3, "Medium"),
        "low" => (2, "Low"),
        _ => (1, "Informational"),
    }
}

/// OCSF `status_id` of what the event records: a refusal or a failed grant,
/// revocation or invalidation of copied credentials is 2 Failure, with the start of its reason as `status_detail`
/// (the whole of it stays in `unmapped`); anything else 1 Success.
fn status(action: &str, detail: &Value) -> (i64, Option<String>) {
    if action == AuditAction::PolicyRefused.as_str()
        || action == AuditAction::CredentialsInvalidationFailed.as_str()
        || action.ends_with(".failed")
    {
        let why = ["refusal", "error"]
            .iter()
            .find_map(|k| detail.get(*k).and_then(Value::as_str))
            .map(|s| crate::sanitize::line(s, 160));
        (2, why)
    } else {
        (1, None)
    }
}

fn millis(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339).map_or(0, |t| t.timestamp_millis())
}

/// Drops `null` members and array items, at any depth: OCSF wants an absent
/// field left out, and SIEMs index `null` as a value.
fn prune(v: Value) -> Value {
    match v {
        Value::Array(a) => {
            Value::Array(a.into_iter().filter(|x| !x.is_null()).map(prune).collect())
        }
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, x)| !x.is_null())
                .map(|(k, x)| (k, prune(x)))
                .collect::<Map<_, _>>(),
        ),
        other => other,
    }
}

/// What one event says, before it is laid out as OCSF.
struct Facts<'a> {
    action: &'a str,
    time: i64,
    severity: &'a str,
    message: String,
    uid: Value,
    sequence: Value,
    actor: Option<&'a str>,
    /// Whose access: the requester, else whoever acted.
    user: Option<&'a str>,
    role: Option<&'a str>,
    detail: &'a Value,
    unmapped: Value,
}

fn event(f: Facts) -> Value {
    let (activity_id, activity_name) = activity(f.action);
    let (severity_id, severity_name) = severity(f.severity);
    let (status_id, status_detail) = status(f.action, f.detail);
    let user = f.user.or(f.actor).unwrap_or(UNKNOWN_USER);
    prune(json!({
        "class_uid": CLASS_UID,
        "class_name": "User Access Management",
        "category_uid": 3,
        "category_name": "Identity & Access Management",
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": CLASS_UID * 100 + activity_id,
        "time": f.time,
        "severity_id": severity_id,
        "severity": severity_name,
        "status_id": status_id,
        "status_detail": status_detail,
        "message": f.message,
        "metadata": {
            "version": VERSION,
            "profiles": PROFILES,
            "uid": f.uid,
            "product": { "name": "breakglass", "vendor_name": "breakglass", "version": env!("CARGO_PKG_VERSION") },
            "log_name": "breakglass-audit",
            "sequence": f.sequence,
        },
        "actor": f.actor.map(|a| json!({ "user": { "name": a } })),
        "user": { "name": user },
        "privileges": f.role.into_iter().collect::<Vec<_>>(),
        "unmapped": f.unmapped,
    }))
}

/// "REQ-1 k8s-cluster-admin for alice", with what is known.
fn summary(
    request: Option<&str>,
    role: Option<&str>,
    user: Option<&str>,
    actor: Option<&str>,
) -> String {
    let mut s: Vec<String> = request
        .into_iter()
        .chain(role)
        .map(str::to_string)
        .collect();
    match (user, actor) {
        (Some(u), _) => s.push(format!("for {u}")),
        (None, Some(a)) => s.push(format!("by {a}")),
        (None, None) => {}
    }
    s.join(" ")
}

/// One native alert (see `alert::SCHEMA`) as an OCSF event.
pub fn from_alert(alert: &Value) -> Value {
    let d = &alert["data"];
    let kind = alert["kind"].as_str().unwrap_or_default();
    let (request, role) = (d["request_id"].as_str(), d["role"].as_str());
    let (user, actor) = (d["requester"].as_str(), d["actor"].as_str());
    event(Facts {
        action: d["action"].as_str().unwrap_or_default(),
        time: millis(alert["at"].as_str().unwrap_or_default()),
        severity: alert["severity"].as_str().unwrap_or_default(),
        message: format!(
            "break-glass {kind}: {}",
            summary(request, role, user, actor)
        ),
        uid: alert["event_id"].clone(),
        sequence: alert["audit_seq"].clone(),
        actor,
        user,
        role,
        detail: &d["detail"],
        unmapped: json!({
            "kind": alert["kind"],
            "request_id": d["request_id"],
            "incident": d["incident"],
            "condition": d["condition"],
            "reason": d["reason"],
            "approvers": d["approvers"],
            "expires_at": d["expires_at"],
            "approval": d["approval"],
            "audit_hash": alert["audit_hash"],
            "checkpoint": alert["checkpoint"],
        }),
    })
}

/// Renders the audit log, read in order, as OCSF (`audit export --format ocsf`).
/// An audit record names only who acted; the requester and role of a request
/// come from its `request.created` record, so each later event of the request
/// can name whose access it is about.
#[derive(Default)]
pub struct AuditExport {
    requests: HashMap<i64, (String, Option<String>)>,
}

impl AuditExport {
    pub fn render(&mut self, r: &crate::audit::AuditRecord) -> Value {
        let detail: Value = serde_json::from_str(&r.detail).unwrap_or(Value::Null);
        if let Some(id) = r
            .request_id
            .filter(|_| r.action == AuditAction::RequestCreated)
        {
            let role = detail["role"].as_str().map(str::to_string);
            self.requests.insert(id, (r.actor.clone(), role));
        }
        let known = r.request_id.and_then(|id| self.requests.get(&id));
        let user = known.map(|(u, _)| u.as_str());
        let role = known
            .and_then(|(_, role)| role.as_deref())
            .or(detail["role"].as_str());
        // Short: the export carries the whole log, and user, privileges and
        // actor already say who and what.
        let message = match r.request_id {
            Some(i) => format!("{} REQ-{i}", r.action),
            None => r.action.clone(),
        };
        event(Facts {
            action: &r.action,
            time: millis(&r.at),
            severity: "informational",
            message,
            uid: json!(format!("audit-{}", r.seq)),
            sequence: json!(r.seq),
            actor: Some(&r.actor),
            user,
            role,
            detail: &detail,
            unmapped: json!({
                "action": r.action,
                "request_id": r.request_id,
                "from": r.from_state,
                "to": r.to_state,
                "detail": detail,
                "hash": r.hash,
                "prev_hash": r.prev_hash,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_of_someone_unknown_has_no_null() {
        let e = from_alert(&json!({
            "kind": "refusal", "severity": "medium", "at": "2026-11-25T00:00:00Z",
            "data": { "request_id": null, "role": null, "requester": null, "actor": "mallory",
                      "action": "policy.refused", "detail": { "refusal": "mallory may not request" } },
        }));
        assert_eq!(e["privileges"], json!([]));
        assert_eq!(e["user"]["name"], "mallory");
        assert_eq!(e["actor"]["user"]["name"], "mallory");
        assert_eq!(e["status_id"], 2);
        assert_eq!(e["status_detail"], "mallory may not request");
        assert_eq!(e["message"], "break-glass refusal: by mallory");
        assert!(!e.to_string().contains("null"), "{e}");
    }

    #[test]
    fn nothing_named_is_an_unknown_user_and_no_actor() {
        let e = from_alert(&json!({}));
        assert_eq!(e["user"]["name"], UNKNOWN_USER);
        assert!(e.get("actor").is_none());
        assert!(!e.to_string().contains("null"), "{e}");
    }
}
