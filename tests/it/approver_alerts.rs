//! Approvers learn at once: a new request pages its approvers (PagerDuty Events
//! v2, Slack, a webhook: only sinks chosen for `approval_request`), with all
//! they need to decide and the command that approves; each approval, the
//! decision, activation and the end update or resolve that notice. Against a
//! local stand-in for PagerDuty's documented API and real HTTP receivers.

use crate::support;

use breakglass::alert::sinks::{PagerDutySink, Routed, SlackSink, WebhookSink};
use breakglass::alert::{AlertKind, Format, Sink};
use breakglass::domain::State;
use breakglass::engine::{Decision, RequestInput};
use chrono::Duration;
use std::path::Path;
use std::sync::Arc;
use support::receivers::{Behaviour, HttpReceiver, PagerDutyReceiver};
use support::*;

/// Shaped like a PagerDuty integration key; it must never be written anywhere.
const KEY: &str = "R0UT1NGK3Yd0n0tl3akXXXXXXXXXXXX1";
const KEY_ENV: &str = "BG_TEST_PAGERDUTY_ROUTING_KEY";

/// The demo config with a PagerDuty sink for the DBA role's approvers.
fn demo_with_pagerduty(pd: &PagerDutyReceiver) -> (tempfile::TempDir, std::path::PathBuf) {
    let (tmp, cfg) = demo_dir();
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text = text.replacen(
        "[groups]",
        &format!(
            r#"[[alerts.sinks]]
kind = "pagerduty"
name = "dba-oncall"
url = "{}"
routing_key_env = "{KEY_ENV}"
roles = ["{DBA}"]
timeout = "5s"

[groups]"#,
            pd.url
        ),
        1,
    );
    std::fs::write(&cfg, text).unwrap();
    (tmp, cfg)
}

fn as_(cfg: &Path, who: &str, args: &[&str]) -> serde_json::Value {
    ok_json(bg_env(
        cfg,
        Some(who),
        &[&["--json"], args].concat(),
        &[(KEY_ENV, KEY)],
    ))
}

/// Every file under `dir`, read as bytes.
fn files_under(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else if let Ok(b) = std::fs::read(&p) {
            out.push((p, b));
        }
    }
    out
}

#[track_caller]
fn key_nowhere(dir: &Path, also: &[&str]) {
    for (p, bytes) in files_under(dir) {
        assert!(
            !bytes.windows(KEY.len()).any(|w| w == KEY.as_bytes()),
            "the routing key is in {}",
            p.display()
        );
    }
    for text in also {
        assert!(!text.contains(KEY), "the routing key is in: {text}");
    }
}

#[test]
fn pagerduty_pages_the_approvers_then_resolves_with_the_decision() {
    let pd = PagerDutyReceiver::start(false);
    let (tmp, cfg) = demo_with_pagerduty(&pd);

    // alice files REQ-1 for a role needing two approvals: one trigger.
    as_(&cfg, "alice", REQUEST_DBA);
    let ev = pd.events();
    assert_eq!(ev.len(), 1, "{ev:#?}");
    let t = &ev[0];
    assert_eq!(t["routing_key"], KEY);
    assert_eq!(t["event_action"], "trigger");
    let dedup = t["dedup_key"].as_str().unwrap().to_string();
    assert!(dedup.starts_with("breakglass-REQ-1-"), "{dedup}");
    let summary = t["payload"]["summary"].as_str().unwrap();
    for needle in [
        "REQ-1",
        "alice",
        DBA,
        "INC-1042",
        "0 of 2 approvals",
        "lapses 20",
        "breakglass approve REQ-1",
    ] {
        assert!(summary.contains(needle), "`{needle}` not in {summary}");
    }
    let p = &t["payload"];
    assert_eq!(p["component"], DBA);
    assert_eq!(p["severity"], "error");
    let c = &p["custom_details"];
    assert_eq!(c["request_id"], "REQ-1");
    assert_eq!(c["requester"], "alice");
    assert_eq!(c["condition"], "production outage");
    assert_eq!(c["reason"], "primary is read-only");
    assert_eq!(c["who_may_approve"], "@sre-leads");
    assert_eq!(c["approvals"], "0 of 2 approvals");
    assert_eq!(c["approve_command"], "breakglass approve REQ-1");
    assert!(
        c["ttl_asked"].as_str().is_some_and(|t| !t.is_empty()),
        "{c}"
    );
    assert!(
        chrono::DateTime::parse_from_rfc3339(c["lapses_at"].as_str().unwrap()).is_ok(),
        "{c}"
    );
    assert!(c["incident"].as_str().unwrap().contains("INC-1042"), "{c}");

    // bob approves: the same alert, updated (a trigger with the same key).
    as_(&cfg, "bob", &["approve", "1"]);
    let ev = pd.events();
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[1]["event_action"], "trigger");
    assert_eq!(ev[1]["dedup_key"], dedup.as_str());
    assert!(ev[1]["payload"]["summary"]
        .as_str()
        .unwrap()
        .contains("1 of 2 approvals"));
    assert_eq!(
        ev[1]["payload"]["custom_details"]["approved_by"],
        serde_json::json!(["bob"])
    );

    // carol's approval is the last needed: resolved.
    as_(&cfg, "carol", &["approve", "1"]);
    let ev = pd.events();
    assert_eq!(ev.len(), 3);
    assert_eq!(ev[2]["event_action"], "resolve");
    assert_eq!(ev[2]["dedup_key"], dedup.as_str());
    assert_eq!(ev[2]["routing_key"], KEY);

    // Another role's request is not this sink's (`roles`).
    as_(&cfg, "alice", REQUEST_K8S);
    assert_eq!(pd.events().len(), 3);

    // A denied request: its own alert, triggered then resolved.
    as_(&cfg, "alice", REQUEST_DBA);
    as_(&cfg, "bob", &["deny", "3", "--reason", "use the runbook"]);
    let ev = pd.events();
    assert_eq!(ev.len(), 5, "{ev:#?}");
    assert_eq!(ev[3]["event_action"], "trigger");
    assert_eq!(ev[4]["event_action"], "resolve");
    assert_eq!(ev[3]["dedup_key"], ev[4]["dedup_key"]);
    assert_ne!(ev[3]["dedup_key"], dedup.as_str());

    // Activation and the end resolve REQ-1's again (PagerDuty ignores a resolve
    // of a resolved alert); no new alert is opened.
    as_(&cfg, "alice", &["activate", "1"]);
    as_(&cfg, "alice", &["revoke", "1", "--reason", "done"]);
    let ev = pd.events();
    assert_eq!(ev.len(), 7, "{ev:#?}");
    assert!(ev[5..]
        .iter()
        .all(|e| e["event_action"] == "resolve" && e["dedup_key"] == dedup.as_str()));
    assert!(pd.refused.lock().unwrap().is_empty());

    // The key went only to PagerDuty: not in the store, the audit log, the
    // outbox, the alerts file or what the commands print.
    let status = bg_env(&cfg, Some("alice"), &["status"], &[(KEY_ENV, KEY)]);
    let export = bg_env(&cfg, Some("dave"), &["audit", "export"], &[(KEY_ENV, KEY)]);
    key_nowhere(
        tmp.path(),
        &[
            &stdout(&status),
            &stderr(&status),
            &stdout(&export),
            &stderr(&export),
        ],
    );
    assert!(stdout(&export).contains("request.denied"));
}

#[test]
fn a_refusing_pagerduty_never_sees_its_key_written_and_the_notice_waits() {
    let pd = PagerDutyReceiver::start(true);
    let (tmp, cfg) = demo_with_pagerduty(&pd);
    let o = bg_env(
        &cfg,
        Some("alice"),
        &[&["--json"], REQUEST_DBA].concat(),
        &[(KEY_ENV, KEY)],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // The receiver quoted the key back in its error...
    let refused = pd.refused.lock().unwrap().clone();
    assert!(!refused.is_empty() && refused[0].contains(KEY));
    // ...which is stored as the delivery error with the key cut out.
    let db = rusqlite::Connection::open(tmp.path().join("breakglass.sqlite")).unwrap();
    let err: String = db
        .query_row(
            "SELECT last_error FROM outbox WHERE delivered_at IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(err.contains("dba-oncall: HTTP 400"), "{err}");
    assert!(err.contains("[routing key]"), "{err}");
    let status = bg_env(&cfg, Some("alice"), &["status"], &[(KEY_ENV, KEY)]);
    assert!(
        stdout(&status).contains("not yet delivered"),
        "{}",
        stdout(&status)
    );
    key_nowhere(
        tmp.path(),
        &[&stdout(&o), &stderr(&o), &stdout(&status), &stderr(&status)],
    );

    // Without the variable the sink says which one is missing, and keeps the notice.
    let o = bg(&cfg, Some("bob"), &["--json", "approve", "1"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err: String = db
        .query_row(
            "SELECT last_error FROM outbox WHERE delivered_at IS NULL ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(err.contains(&format!("{KEY_ENV} is not set")), "{err}");
}

#[test]
fn pagerduty_sinks_are_validated() {
    let (_tmp, cfg) = demo_dir();
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text = text.replacen(
        "[groups]",
        r#"[[alerts.sinks]]
kind = "pagerduty"
name = "inline"
routing_key = "R0UT1NGK3Y"

[[alerts.sinks]]
kind = "pagerduty"
name = "nothing"

[[alerts.sinks]]
kind = "pagerduty"
name = "soc-too"
routing_key_env = "PD"
kinds = ["approval_request", "activation"]

[[alerts.sinks]]
kind = "slack"
url_env = "SLACK"
kinds = ["approval_request", "gossip"]
roles = ["no-such-role"]

[[alerts.sinks]]
kind = "pagerduty"
name = "ftp"
url = "ftp://events.pagerduty.com/v2/enqueue"
routing_key_env = "PD"

[groups]"#,
        1,
    );
    std::fs::write(&cfg, &text).unwrap();
    let line = |needle: &str| {
        text.lines()
            .position(|l| l.contains(needle))
            .map(|i| i + 1)
            .unwrap()
    };
    let o = bg(&cfg, None, &["config", "check"]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    for (at, needle) in [
        (
            line("routing_key = \"R0UT"),
            "a PagerDuty routing key is a secret and never goes in the config file; write routing_key_env",
        ),
        (line("name = \"nothing\"") - 2, "a pagerduty alert sink needs routing_key_env"),
        (
            line("kinds = [\"approval_request\", \"activation\"]"),
            "it takes kinds = [\"approval_request\"] only",
        ),
        (line("\"gossip\"]"), "alert kind \"gossip\" is not known"),
        (
            line("no-such-role"),
            "roles names \"no-such-role\", which is no role of the policy",
        ),
        (line("ftp://"), "must start with https://"),
    ] {
        assert!(
            e.lines()
                .any(|l| l.contains(&format!(":{at}: ")) && l.contains(needle)),
            "missing line {at} `{needle}` in:\n{e}"
        );
    }
    assert!(
        !e.contains("R0UT1NGK3Y"),
        "the inline key is not repeated:\n{e}"
    );
}

fn routed(sink: Arc<dyn Sink>) -> Arc<dyn Sink> {
    Arc::new(Routed::new(
        sink,
        Some([AlertKind::ApprovalRequest].into()),
        None,
    ))
}

/// A reason crafted to page everyone, hijack the terminal and flood the page.
fn hostile_reason() -> String {
    format!(
        "<!channel> \x1b]8;;https://evil.example\x07click\x1b]8;;\x07 \u{202e}gnp.exe {} *bold* &amp; {}",
        "\x1b[2J",
        "x".repeat(3800)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn slack_and_webhook_approvers_get_the_notice_with_every_field_and_no_soc_sink_does() {
    let slack_rx = HttpReceiver::start(Behaviour::Ok);
    let hook_rx = HttpReceiver::start(Behaviour::Ok);
    let soc_rx = HttpReceiver::start(Behaviour::Ok);
    let slack: Arc<dyn Sink> = Arc::new(SlackSink::new(
        "approvers-slack".into(),
        secrecy::SecretString::from(slack_rx.url.clone()),
        std::time::Duration::from_secs(5),
    ));
    let hook: Arc<dyn Sink> = Arc::new(WebhookSink::new(
        "approvers-hook".into(),
        hook_rx.url.clone(),
        None,
        Format::Native,
        std::time::Duration::from_secs(5),
    ));
    let soc: Arc<dyn Sink> = Arc::new(WebhookSink::new(
        "soc".into(),
        soc_rx.url.clone(),
        None,
        Format::Native,
        std::time::Duration::from_secs(5),
    ));
    let h = harness_with(move |p| p.sinks = vec![routed(slack), routed(hook), soc]);
    let e = &h.engine;
    let r = e
        .request(
            "alice",
            RequestInput {
                reason: hostile_reason(),
                ..input(DBA, inc("INC-1042"))
            },
        )
        .await
        .unwrap();
    e.deliver_alerts().await.unwrap();

    // The webhook: the native alert with the approval block.
    let got = hook_rx.received();
    assert_eq!(got.len(), 1, "{got:?}");
    let body = got[0].json();
    assert_eq!(body["kind"], "approval_request");
    assert_eq!(body["severity"], "high");
    let d = &body["data"];
    assert_eq!(d["request_id"], r.id.to_string());
    assert_eq!(d["role"], DBA);
    assert_eq!(d["requester"], "alice");
    assert_eq!(d["condition"], "production outage");
    assert!(d["incident"].as_str().unwrap().contains("INC-1042"));
    let a = &d["approval"];
    assert_eq!(a["status"], "waiting");
    assert_eq!(a["open"], true);
    assert_eq!(a["approvals"], 0);
    assert_eq!(a["approvals_required"], 2);
    assert_eq!(a["may_approve"], "@sre-leads");
    assert_eq!(a["ttl_seconds"], r.ttl_seconds);
    assert_eq!(a["ttl"], "15m");
    assert_eq!(
        a["decide_by"],
        breakglass::domain::time::ts(r.decide_by).as_str()
    );
    assert_eq!(a["command"], format!("breakglass approve {}", r.id));
    let key = a["key"].as_str().unwrap().to_string();
    assert!(key.starts_with(&format!("breakglass-{}-", r.id)), "{key}");
    // The reason arrives cleaned and capped: no escape, no override, no BEL.
    let reason = d["reason"].as_str().unwrap();
    assert!(
        !reason.chars().any(|c| c.is_control() || c == '\u{202e}'),
        "{reason:?}"
    );
    assert!(reason.chars().count() <= 4001, "{}", reason.chars().count());

    // Slack: readable, everything an approver needs, nothing that pings or hijacks.
    let text = slack_rx.received()[0].json()["text"]
        .as_str()
        .unwrap()
        .to_string();
    for needle in [
        "Break-glass approval needed",
        &r.id.to_string(),
        DBA,
        "INC-1042",
        "alice",
        "0 of 2 approvals",
        "production outage",
        "*TTL asked:* 15m",
        "*Lapses:* 20",
        " UTC",
        "*Who may approve:* @sre-leads",
        &format!("Approve with `breakglass approve {}`", r.id),
        "&lt;!channel&gt;",
        "&amp;amp;",
    ] {
        assert!(text.contains(needle), "`{needle}` missing from {text}");
    }
    assert!(!text.contains("<!channel>"), "{text}");
    assert!(
        !text
            .chars()
            .any(|c| (c.is_control() && c != '\n') || c == '\u{202e}'),
        "{text:?}"
    );
    assert!(
        text.chars().count() < 2000,
        "the reason is capped: {}",
        text.chars().count()
    );

    // A SOC sink that names no kinds is not sent approval notices.
    assert!(soc_rx.received().is_empty());

    // bob approves (1 of 2), then carol denies: updates under the same key.
    e.decide("bob", r.id, Decision::approve(None))
        .await
        .unwrap();
    e.decide("carol", r.id, Decision::deny("use the runbook"))
        .await
        .unwrap();
    e.deliver_alerts().await.unwrap();
    let got = hook_rx.received();
    assert_eq!(got.len(), 3);
    let (partial, denied) = (got[1].json(), got[2].json());
    assert_eq!(partial["data"]["approval"]["status"], "partially_approved");
    assert_eq!(partial["data"]["approval"]["open"], true);
    assert_eq!(partial["data"]["approval"]["approvals"], 1);
    assert_eq!(denied["data"]["approval"]["status"], "denied");
    assert_eq!(denied["data"]["approval"]["open"], false);
    assert!(denied["data"]["approval"]["command"].is_null());
    for b in [&partial, &denied] {
        assert_eq!(b["data"]["approval"]["key"], key.as_str());
    }
    let texts: Vec<String> = slack_rx
        .received()
        .iter()
        .map(|r| r.json()["text"].as_str().unwrap().to_string())
        .collect();
    assert!(
        texts[1].contains("1 of 2 approvals (approved by bob)"),
        "{}",
        texts[1]
    );
    assert!(
        texts[2].contains(":no_entry: *Denied*") && texts[2].contains("by carol"),
        "{}",
        texts[2]
    );
    // The SOC got the denial, as before, and nothing else.
    let soc: Vec<String> = soc_rx
        .received()
        .iter()
        .map(|r| r.json()["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(soc, ["denial"]);

    // A request nobody decides on lapses: the notice closes.
    let r2 = e
        .request("alice", input(K8S, inc("INC-1042")))
        .await
        .unwrap();
    h.clock.advance(Duration::hours(2));
    e.recover().await.unwrap();
    assert_eq!(h.state(r2.id), State::Lapsed);
    e.deliver_alerts().await.unwrap();
    let last = hook_rx.received().last().unwrap().json();
    assert_eq!(last["data"]["request_id"], r2.id.to_string());
    assert_eq!(last["data"]["approval"]["status"], "lapsed");
    assert!(slack_rx.received().last().unwrap().json()["text"]
        .as_str()
        .unwrap()
        .contains(":hourglass: *Lapsed*"));
}

/// A pager that cannot be reached never holds back access on a fail-closed
/// role: that role waits for its SOC alert, not for the approvers' notices.
#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_pager_does_not_block_a_fail_closed_activation() {
    let pd = PagerDutyReceiver::start(true);
    let file = tempfile::NamedTempFile::new().unwrap();
    let pager: Arc<dyn Sink> = Arc::new(PagerDutySink::new(
        "pager".into(),
        pd.url.clone(),
        secrecy::SecretString::from(KEY),
        std::time::Duration::from_secs(5),
    ));
    let soc: Arc<dyn Sink> = Arc::new(breakglass::alert::sinks::FileSink {
        name: "soc".into(),
        path: file.path().into(),
        format: Format::Native,
    });
    let h = harness_with(move |p| {
        p.sinks = vec![pager, soc];
        p.policy.roles.get_mut(DBA).unwrap().require_alert_delivery = true;
    });
    let (r, _) = h.active(DBA).await;
    assert_eq!(h.state(r.id), State::Active);
    assert!(
        h.store.outbox_undelivered().unwrap() > 0,
        "the notices wait"
    );
    let lines = std::fs::read_to_string(file.path()).unwrap();
    assert!(lines.contains("\"kind\":\"activation\""), "{lines}");
    assert!(!lines.contains("approval_request"), "{lines}");
}

/// Requests policy approves by itself never page anyone; nor does any request
/// when no sink takes approval notices (nothing is queued for no one).
#[tokio::test(flavor = "multi_thread")]
async fn auto_approved_requests_page_nobody() {
    use breakglass::domain::policy::{Automation, Principals};
    let file = tempfile::NamedTempFile::new().unwrap();
    let approvers: Arc<dyn Sink> = routed(Arc::new(breakglass::alert::sinks::FileSink {
        name: "approvers".into(),
        path: file.path().into(),
        format: Format::Native,
    }));
    let h = harness_with(|p| {
        p.sinks.push(approvers);
        p.policy.roles.get_mut(K8S).unwrap().automation = Automation {
            identities: Principals {
                users: ["svc-failover".to_string()].into(),
                anyone: false,
                written: vec!["svc-failover".into()],
            },
            conditions: vec!["failed automation path".into()],
            rate_count: 3,
            rate_window: 3600,
            max_ttl: 15 * 60,
            certify_within: 24 * 3600,
        };
    });
    let r = h
        .engine
        .request(
            "svc-failover",
            RequestInput {
                condition: "failed automation path".into(),
                ..input(K8S, inc("INC-1042"))
            },
        )
        .await
        .unwrap();
    assert_eq!(r.state, State::Approved);
    h.engine.activate("svc-failover", r.id).await.unwrap();
    assert_eq!(h.alerts_of_kind("approval_request"), 0);
    // A person's request does.
    h.requested(DBA).await;
    assert_eq!(h.alerts_of_kind("approval_request"), 1);

    let h = harness();
    h.approved(DBA).await;
    assert_eq!(h.alerts_of_kind("approval_request"), 0);
    assert_eq!(h.store.outbox_undelivered().unwrap(), 0);
}
