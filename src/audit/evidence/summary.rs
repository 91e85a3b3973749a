//! `summary.txt`: the request's story for a person, rendered only from the
//! request's events and the manifest, so `evidence verify` can render it again
//! and prove it says nothing the events do not. Every value from the events is
//! cleaned of control and escape characters and capped.

use super::*;
use crate::audit::AuditRecord;
use serde_json::Value;
use std::fmt::Write as _;

fn one(s: &str) -> String {
    crate::sanitize::line(s, 300)
}

/// Multi-line text, indented under its label.
fn block(s: &str) -> String {
    crate::sanitize::text(s, 4000)
        .trim()
        .replace('\n', "\n      ")
}

fn val(v: &Value) -> String {
    match v {
        Value::String(s) => one(s),
        Value::Null => "-".into(),
        other => one(&other.to_string()),
    }
}

pub(super) fn render(m: &Manifest, mine: &[AuditRecord], key_id: Option<String>) -> String {
    let mut s = String::new();
    let details: Vec<Value> = mine
        .iter()
        .map(|r| serde_json::from_str(&r.detail).unwrap_or_default())
        .collect();
    let id = format!("REQ-{}", m.request);
    let _ = writeln!(s, "EVIDENCE FOR {id}");
    let _ = writeln!(
        s,
        "Written {} by {}. Format {}.\n",
        one(&m.written_at),
        one(&m.generator),
        one(&m.format)
    );

    request_section(&mut s, mine, &details);

    let _ = writeln!(
        s,
        "\nDECISIONS, ACCESS AND REVIEW (as the audit events record them)"
    );
    for (r, d) in mine.iter().zip(&details) {
        let who = one(&r.actor);
        let Some(line) = event_line(m, r, d) else {
            continue;
        };
        let _ = writeln!(s, "  #{} {line}", r.seq);
        if let Some(sig) = d.get("signature").filter(|v| v.is_object()) {
            let _ = writeln!(
                s,
                "      signed by {who} at {}: {} over {}",
                val(&sig["signed_at"]),
                signature_file(r.seq),
                statement_file(r.seq)
            );
        }
    }

    if !m.recordings_missing.is_empty() {
        let _ = writeln!(s, "\nRECORDINGS NOT INCLUDED");
        for (seq, why) in &m.recordings_missing {
            let _ = writeln!(s, "  event #{}: {}", one(seq), one(why));
        }
    }

    chain_section(&mut s, m, mine, &id, key_id);

    verify_section(&mut s, mine, &details);
    s
}

/// Who asked for what, from the request.created event.
fn request_section(s: &mut String, mine: &[AuditRecord], details: &[Value]) {
    let _ = writeln!(s, "REQUEST");
    if let (Some(r), Some(d)) = (mine.first(), details.first()) {
        let incident = serde_json::from_value::<crate::domain::IncidentRef>(d["incident"].clone())
            .map(|i| one(&i.label()))
            .unwrap_or_else(|_| val(&d["incident"]));
        let _ = writeln!(s, "  Requested by: {} at {}", one(&r.actor), one(&r.at));
        let _ = writeln!(s, "  Role:         {}", val(&d["role"]));
        let _ = writeln!(s, "  Incident:     {incident}");
        let _ = writeln!(s, "  Condition:    {}", val(&d["condition"]));
        let _ = writeln!(
            s,
            "  Reason:       {}",
            block(d["reason"].as_str().unwrap_or_default())
        );
        let _ = writeln!(s, "  TTL asked:    {}s", val(&d["ttl_seconds"]));
        let _ = writeln!(
            s,
            "  Approvals:    {} required",
            val(&d["approvals_required"])
        );
        if d["vendor"].is_object() {
            let _ = writeln!(
                s,
                "  Vendor:       {} ({})",
                val(&d["vendor"]["name"]),
                val(&d["vendor"]["company"])
            );
        }
    }
}

/// One event as a line of the story (None: the request itself, said above).
fn event_line(m: &Manifest, r: &AuditRecord, d: &Value) -> Option<String> {
    use AuditAction::*;
    let who = one(&r.actor);
    let at = one(&r.at);
    Some(match r.action.parse() {
        Ok(RequestCreated) => return None,
        Ok(RequestApproved) => {
            let c = d["comment"].as_str().map(block).unwrap_or_default();
            format!(
                "Approved by {who} at {at}{}",
                if c.is_empty() {
                    String::new()
                } else {
                    format!(": {c}")
                }
            )
        }
        Ok(RequestAutoApproved) => format!("Approved by policy ({who}) at {at}"),
        Ok(RequestDenied) => format!("Denied by {who} at {at}: {}", val(&d["reason"])),
        Ok(RequestCancelled) => format!("Cancelled by {who} at {at}"),
        Ok(RequestLapsed) => format!("Lapsed at {at} (not decided or activated in time)"),
        Ok(GrantIntent) => format!("Activation asked by {who} at {at}"),
        Ok(GrantActive) => format!(
            "ACCESS BEGAN at {at}: the target confirmed the grant (lease {}), to end by {}",
            val(&d["lease_id"]),
            val(&d["expires_at"])
        ),
        Ok(GrantFailed) => format!("Grant FAILED at {at}: {}", val(&d["error"])),
        Ok(GrantExtended) => format!("Extended by {who} at {at}: {}", one(&d.to_string())),
        Ok(RevokeStarted) => {
            format!("Revocation started by {who} at {at}: {}", val(&d["reason"]))
        }
        Ok(RevokeFailed) => format!("Revocation attempt failed at {at}: {}", val(&d["error"])),
        Ok(RevokeConfirmed) => format!(
            "ACCESS ENDED at {at}: the target confirmed the revocation ({})",
            val(&d["reason"])
        ),
        Ok(SessionRecorded) => {
            let file = if m.recordings_missing.contains_key(&r.seq.to_string()) {
                "NOT INCLUDED (see below)".to_string()
            } else {
                recording_file(r.seq)
            };
            format!(
                "Session recorded at {at}: {file}, SHA-256 {} ({} bytes), audited in event #{}",
                val(&d["sha256"]),
                val(&d["bytes"]),
                r.seq
            )
        }
        Ok(SessionReplayed) => format!("Recording replayed by {who} at {at}"),
        Ok(ReviewSubmitted) => {
            let rv = &d["review"];
            let mut t = format!("Review submitted by {who} at {at}:");
            for (k, label) in [
                ("actions_taken", "actions taken"),
                ("systems_touched", "systems touched"),
                ("access_necessary", "access necessary"),
                ("credentials_copied", "credentials copied"),
                ("credentials_copied_where", "copied where"),
                ("follow_ups", "follow-ups"),
            ] {
                let v = match &rv[k] {
                    Value::String(x) => block(x),
                    other => val(other),
                };
                let _ = write!(t, "\n      {label}: {v}");
            }
            t
        }
        Ok(ReviewCertified) => {
            let mut t = format!("REVIEW CERTIFIED by {who} at {at}: {}", val(&d["comment"]));
            if let Some(why) = d.get("invalidation_exception") {
                let _ = write!(
                    t,
                    "\n      WITHOUT INVALIDATING the copied credentials ({}): {}",
                    val(&d["credentials_copied_where"]),
                    val(why)
                );
            }
            t
        }
        Ok(CredentialsInvalidated) => format!(
            "Copied credentials ({}) {} at {at} by {who}: {}",
            val(&d["credentials_copied_where"]),
            val(&d["method"]),
            val(&d["confirmation"])
        ),
        Ok(CredentialsInvalidationFailed) => format!(
            "Invalidating copied credentials failed at {at} (attempt {}): {}",
            val(&d["attempt"]),
            val(&d["error"])
        ),
        Ok(ReviewRejected) => {
            format!("Review rejected by {who} at {at}: {}", val(&d["comment"]))
        }
        _ => format!("{} by {who} at {at}", one(&r.action)),
    })
}

/// What the events and the checkpoint prove, in words.
fn chain_section(
    s: &mut String,
    m: &Manifest,
    mine: &[AuditRecord],
    id: &str,
    key_id: Option<String>,
) {
    let _ = writeln!(s, "\nTHE CHAIN");
    let n = m.last_seq - m.first_seq + 1;
    let seqs: Vec<String> = mine.iter().map(|r| format!("#{}", r.seq)).collect();
    let _ = writeln!(
        s,
        "  {EVENTS} holds audit events #{} to #{} ({n} events) in the hashed export form.\n  \
         {id}'s own events are {} ({} of them); the others belong to other requests\n  \
         and are there because the hash chain runs through them.\n  \
         The first event's prev_hash links it to every event before it.",
        m.first_seq,
        m.last_seq,
        seqs.join(", "),
        mine.len()
    );
    match (&m.no_checkpoint, key_id) {
        (None, Some(k)) => {
            let _ = writeln!(
                s,
                "  {CHECKPOINT} is a signed checkpoint (key id {}, public key in {PUBLIC_KEY})\n  \
                 of the log's first {} events: its head is event #{}'s hash, so it commits\n  \
                 to every event here and before. Compare the public key with the one you trust.",
                one(&k),
                m.last_seq,
                m.last_seq
            );
        }
        (reason, _) => {
            let _ = writeln!(
                s,
                "  NOT COVERED BY A SIGNED CHECKPOINT: {}.\n  \
                 This bundle proves internal consistency only: the events link to each other,\n  \
                 but nothing signed shows they are the log's, or that none was cut off the end.",
                one(reason.as_deref().unwrap_or("none"))
            );
        }
    }
}

/// The commands that verify the bundle, one per signature.
fn verify_section(s: &mut String, mine: &[AuditRecord], details: &[Value]) {
    let _ = writeln!(s, "\nTO VERIFY (offline, in this directory)");
    let _ = writeln!(
        s,
        "  breakglass evidence verify . --public-key <the checkpoint key you trust>"
    );
    let _ = writeln!(
        s,
        "  python3 verify-audit.py --evidence . --public-key <hex>   (docs/verify-audit.py)"
    );
    for (r, d) in mine.iter().zip(details) {
        if let Some(sig) = d.get("signature").filter(|v| v.is_object()) {
            let t = sig["signed_at"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.format("%Y%m%d%H%M%SZ").to_string())
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "  ssh-keygen -Y verify -n breakglass -f {ALLOWED_SIGNERS} -I '{}' -s {} -O verify-time={t} < {}",
                one(&r.actor).replace('\'', "'\\''"),
                signature_file(r.seq),
                statement_file(r.seq)
            );
        }
    }
}
