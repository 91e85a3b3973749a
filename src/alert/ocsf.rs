//! OCSF (Open Cybersecurity Schema Framework) 1.1 rendering for SIEMs: break-glass
//! grants and revocations are "User Access Management" events (class 3005,
//! category 3 IAM): activity 1 Assign Privileges, 2 Revoke Privileges, 99 Other.

use serde_json::{json, Value};

pub const VERSION: &str = "1.1.0";
const CLASS_UID: i64 = 3005;

fn activity(action: &str) -> (i64, &'static str) {
    match action {
        "grant.active" | "grant.intent" => (1, "Assign Privileges"),
        "revoke.confirmed" | "revoke.started" => (2, "Revoke Privileges"),
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

fn millis(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339).map_or(0, |t| t.timestamp_millis())
}

/// One native alert (see `alert::SCHEMA`) as an OCSF event.
pub fn from_alert(alert: &Value) -> Value {
    let d = &alert["data"];
    let action = d["action"].as_str().unwrap_or_default();
    let (activity_id, activity_name) = activity(action);
    let (severity_id, severity_name) = severity(alert["severity"].as_str().unwrap_or_default());
    json!({
        "class_uid": CLASS_UID,
        "class_name": "User Access Management",
        "category_uid": 3,
        "category_name": "Identity & Access Management",
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": CLASS_UID * 100 + activity_id,
        "time": millis(alert["at"].as_str().unwrap_or_default()),
        "severity_id": severity_id,
        "severity": severity_name,
        "message": format!("break-glass {}: {} {} for {}", alert["kind"].as_str().unwrap_or_default(), d["request_id"].as_str().unwrap_or_default(), d["role"].as_str().unwrap_or_default(), d["requester"].as_str().unwrap_or_default()),
        "metadata": {
            "version": VERSION,
            "uid": alert["event_id"],
            "product": { "name": "breakglass", "vendor_name": "breakglass", "version": env!("CARGO_PKG_VERSION") },
            "log_name": "breakglass-audit",
            "sequence": alert["audit_seq"],
        },
        "actor": { "user": { "name": d["actor"] } },
        "user": { "name": d["requester"] },
        "privileges": [d["role"]],
        "unmapped": {
            "kind": alert["kind"],
            "request_id": d["request_id"],
            "incident": d["incident"],
            "condition": d["condition"],
            "reason": d["reason"],
            "approvers": d["approvers"],
            "expires_at": d["expires_at"],
            "audit_hash": alert["audit_hash"],
            "checkpoint": alert["checkpoint"],
        },
    })
}

/// One audit record as an OCSF event (for `audit export --format ocsf`).
pub fn from_audit(r: &crate::audit::AuditRecord) -> Value {
    let (activity_id, activity_name) = activity(&r.action);
    let detail: Value = serde_json::from_str(&r.detail).unwrap_or(Value::Null);
    json!({
        "class_uid": CLASS_UID,
        "class_name": "User Access Management",
        "category_uid": 3,
        "category_name": "Identity & Access Management",
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": CLASS_UID * 100 + activity_id,
        "time": millis(&r.at),
        "severity_id": 1,
        "severity": "Informational",
        "message": format!("{} {}", r.action, r.request_id.map(|i| format!("REQ-{i}")).unwrap_or_default()),
        "metadata": {
            "version": VERSION,
            "uid": format!("audit-{}", r.seq),
            "product": { "name": "breakglass", "vendor_name": "breakglass", "version": env!("CARGO_PKG_VERSION") },
            "log_name": "breakglass-audit",
            "sequence": r.seq,
        },
        "actor": { "user": { "name": r.actor } },
        "privileges": detail.get("role").cloned().map(|x| vec![x]).unwrap_or_default(),
        "unmapped": {
            "action": r.action,
            "request_id": r.request_id,
            "from": r.from_state,
            "to": r.to_state,
            "detail": detail,
            "hash": r.hash,
            "prev_hash": r.prev_hash,
        },
    })
}
