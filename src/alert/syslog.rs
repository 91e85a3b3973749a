//! The syslog sink: RFC 5424 messages over UDP (RFC 5426) or TCP with octet
//! counting (RFC 6587), the alert's fields as structured data and the alert as
//! JSON in MSG.
//!
//! A message never exceeds the sink's `max_message_bytes`: a receiver cuts a
//! longer one, and over TCP may read the rest as a message of its own, which
//! lets whoever wrote a long reason plant a forged record. So the serialised
//! message is never cut; instead the text people wrote (reason, names,
//! incident, details) is shortened before serialising, progressively, until the
//! whole message fits. Every MSG is therefore complete JSON.

use super::{Format, Sink, SinkError};
use serde_json::{Map, Value};

pub use crate::alert_vocab::syslog_size::{
    default_max_bytes, DEFAULT_TCP_MAX_BYTES, DEFAULT_UDP_MAX_BYTES, MIN_MAX_BYTES,
    TCP_LIMIT_BYTES, UDP_LIMIT_BYTES,
};

/// The private-enterprise number in SD-IDs; 32473 is reserved for documentation
/// (RFC 5612). Sites with their own PEN can map it in their collector.
pub const SD_ID: &str = "breakglass@32473";

/// Fields of an alert's `data` that breakglass itself wrote (ids, states,
/// instants); everything else there came from people or sources and is shortened.
const OWN_DATA_FIELDS: [&str; 4] = ["request_id", "state", "expires_at", "action"];

/// RFC 5424 syslog with the alert's fields as structured data.
pub struct SyslogSink {
    pub name: String,
    pub address: String,
    pub tcp: bool,
    pub format: Format,
    /// The largest message sent, in bytes (over TCP without the octet count).
    pub max_message_bytes: usize,
}

impl SyslogSink {
    /// A sink with the transport's default message limit.
    pub fn new(name: String, address: String, tcp: bool, format: Format) -> Self {
        SyslogSink {
            name,
            address,
            tcp,
            format,
            max_message_bytes: default_max_bytes(tcp),
        }
    }
}

/// `v` with every string cut to `cap` characters and every array to `cap`
/// items (plus a `…` item); keys are left as they are.
fn bound_value(v: &Value, cap: usize) -> Value {
    match v {
        // Already cleaned where it was stored; this only caps it.
        Value::String(s) => Value::String(crate::sanitize::text(s, cap)),
        Value::Array(a) => {
            let mut out: Vec<Value> = a.iter().take(cap).map(|x| bound_value(x, cap)).collect();
            if a.len() > cap {
                out.push(Value::String("…".into()));
            }
            Value::Array(out)
        }
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (k.clone(), bound_value(x, cap)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The alert with the text people wrote bounded by `cap` (`None`: as it is).
fn bound_alert(payload: &Value, cap: Option<usize>) -> Value {
    let Some(cap) = cap else {
        return payload.clone();
    };
    let mut out = payload.clone();
    if let Some(Value::Object(data)) = out.get_mut("data") {
        for (k, v) in data.iter_mut() {
            if !OWN_DATA_FIELDS.contains(&k.as_str()) {
                *v = bound_value(v, cap);
            }
        }
    }
    out
}

/// The longest string or array in the alert's people-written data: no cap at
/// or above it changes anything.
fn longest(v: &Value) -> usize {
    match v {
        Value::String(s) => s.chars().count(),
        Value::Array(a) => a.iter().map(longest).max().unwrap_or(0).max(a.len()),
        Value::Object(o) => o.values().map(longest).max().unwrap_or(0),
        _ => 0,
    }
}

/// JSON on one line that no receiver can split or misread: compact, with what
/// serde_json leaves raw inside strings escaped (`sanitize::json_for_terminal`).
fn one_line_json(v: &Value) -> String {
    crate::sanitize::json_for_terminal(&v.to_string())
}

/// A header field: printable US-ASCII only (RFC 5424 §6.2), at most `max`
/// characters, `-` when nothing is left.
fn header_field(s: &str, max: usize) -> String {
    let f: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if f.is_empty() {
        "-".into()
    } else {
        f
    }
}

/// A PARAM-VALUE: one clean line, with `"`, `\` and `]` escaped (RFC 5424 §6.3.3).
fn sd_escape(s: &str) -> String {
    crate::sanitize::line(s, 500)
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace(']', "\\]")
}

fn structured_data(payload: &Value) -> String {
    let d = &payload["data"];
    let mut sd = format!("[{SD_ID}");
    let mut param = |k: &str, v: &Value| {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Null => return,
            Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str())
                .collect::<Vec<_>>()
                .join(","),
            other => other.to_string(),
        };
        sd.push_str(&format!(" {k}=\"{}\"", sd_escape(&text)));
    };
    param("event_id", &payload["event_id"]);
    param("request_id", &d["request_id"]);
    param("role", &d["role"]);
    param("requester", &d["requester"]);
    param("approvers", &d["approvers"]);
    param("incident", &d["incident"]);
    param("expires_at", &d["expires_at"]);
    param("audit_seq", &payload["audit_seq"]);
    param("audit_hash", &payload["audit_hash"]);
    sd.push(']');
    sd
}

/// MSG: the alert (native) or its OCSF event, flagged when text was shortened.
fn body(payload: &Value, format: Format, shortened: bool) -> String {
    let mut v = format.render(payload);
    if shortened {
        let at = match format {
            Format::Native => Some(&mut v),
            Format::Ocsf => v.get_mut("unmapped"),
        };
        if let Some(Value::Object(o)) = at {
            o.insert("truncated".into(), Value::Bool(true));
        }
    }
    one_line_json(&v)
}

/// `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID`: facility authpriv (10),
/// severity from the alert.
fn header(payload: &Value) -> String {
    let sev = match payload["severity"].as_str() {
        Some("critical") => 2,
        Some("high") => 3,
        Some("medium") => 4,
        Some("low") => 5,
        _ => 6,
    };
    format!(
        "<{}>1 {} {} breakglass {} {}",
        10 * 8 + sev,
        header_field(payload["at"].as_str().unwrap_or("-"), 32),
        header_field(&crate::identity::this_host(), 255),
        std::process::id(),
        header_field(payload["kind"].as_str().unwrap_or("-"), 32),
    )
}

/// One RFC 5424 message of at most `max_bytes` bytes (when `max_bytes` is at
/// least `MIN_MAX_BYTES`): the alert whole when it fits, else with the text
/// people wrote shortened as little as needed, else a minimal record.
pub fn rfc5424(payload: &Value, format: Format, max_bytes: usize) -> String {
    let header = header(payload);
    let message = |cap: Option<usize>| {
        let p = bound_alert(payload, cap);
        format!(
            "{header} {} {}",
            structured_data(&p),
            body(&p, format, cap.is_some())
        )
    };
    let whole = message(None);
    if whole.len() <= max_bytes {
        return whole;
    }
    // The largest cap that fits, by bisection: a smaller cap never makes the
    // message longer by more than a marker, and the result is checked anyway.
    let (mut lo, mut hi) = (0usize, longest(&payload["data"]));
    let mut best = None;
    while lo <= hi {
        let mid = lo + (hi - lo) / 2;
        let m = message(Some(mid));
        if m.len() <= max_bytes {
            best = Some(m);
            lo = mid + 1;
        } else if mid == 0 {
            break;
        } else {
            hi = mid - 1;
        }
    }
    if let Some(m) = best {
        return m;
    }
    // Even the skeleton does not fit (a small limit and an OCSF event with a
    // checkpoint): what is left says which alert it was, where to find it in
    // the audit log, and that it was cut.
    let minimal = |with_hash: bool| {
        let mut o = Map::new();
        for k in ["event_id", "kind", "audit_seq"] {
            o.insert(k.into(), payload[k].clone());
        }
        if with_hash {
            o.insert("audit_hash".into(), payload["audit_hash"].clone());
        }
        o.insert("truncated".into(), Value::Bool(true));
        format!("{header} - {}", one_line_json(&Value::Object(o)))
    };
    let m = minimal(true);
    if m.len() <= max_bytes {
        m
    } else {
        minimal(false)
    }
}

#[async_trait::async_trait]
impl Sink for SyslogSink {
    fn name(&self) -> &str {
        &self.name
    }
    async fn send(&self, _event_id: &str, payload: &Value) -> Result<(), SinkError> {
        let line = rfc5424(payload, self.format, self.max_message_bytes);
        if line.len() > self.max_message_bytes {
            return Err(SinkError::TooLarge {
                len: line.len(),
                max: self.max_message_bytes,
            });
        }
        if self.tcp {
            use tokio::io::AsyncWriteExt;
            let mut s = tokio::net::TcpStream::connect(&self.address)
                .await
                .map_err(SinkError::io(format!("syslog tcp {}", self.address)))?;
            // RFC 6587 octet counting: "<length> <message>".
            let framed = format!("{} {line}", line.len());
            s.write_all(framed.as_bytes())
                .await
                .map_err(SinkError::io("syslog tcp"))?;
            s.shutdown().await.map_err(SinkError::io("syslog tcp"))
        } else {
            let sock = tokio::net::UdpSocket::bind("0.0.0.0:0")
                .await
                .map_err(SinkError::io("syslog udp"))?;
            sock.send_to(line.as_bytes(), &self.address)
                .await
                .map(|_| ())
                .map_err(SinkError::io(format!("syslog udp {}", self.address)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The reason from the report that planted a forged record at rsyslog.
    fn hostile_reason() -> String {
        format!(
            "{}{}<86>1 2026-11-25T23:59:59Z forged-host breakglass 4242 early_end - FORGED LINE",
            "\\".repeat(3000),
            "p".repeat(742)
        )
    }

    fn alert(reason: &str) -> Value {
        json!({
            "schema": crate::alert::SCHEMA,
            "event_id": "REQ-7-12-0",
            "kind": "activation",
            "severity": "high",
            "audit_seq": 12,
            "audit_hash": "ab".repeat(32),
            "at": "2026-11-25T23:00:00.123456Z",
            "checkpoint": {"size": 12, "head": "cd".repeat(32), "at": "2026-11-25T23:00:00.123456Z", "signature": "ef".repeat(64)},
            "data": {
                "request_id": "REQ-7",
                "role": "k8s-cluster-admin",
                "incident": "INC-1042 (pagerduty): Checkout API returning 503",
                "condition": "production outage",
                "reason": reason,
                "requester": "alice",
                "approvers": ["bob", "carol"],
                "state": "active",
                "expires_at": "2026-11-26T00:00:00.000000Z",
                "actor": "alice",
                "action": "grant.active",
                "detail": {"note": reason, "steps": [reason, "x"]},
            }
        })
    }

    struct Parsed {
        fields: Vec<String>,
        sd: Vec<(String, String)>,
        msg: String,
    }

    /// A strict RFC 5424 reader: six header fields, SD elements with their
    /// escapes undone (or `-`), then MSG.
    fn parse(m: &str) -> Parsed {
        let mut rest = m;
        let mut fields = vec![];
        for _ in 0..6 {
            let (f, r) = rest.split_once(' ').expect("six header fields");
            assert!(
                !f.is_empty() && f.chars().all(|c| c.is_ascii_graphic()),
                "{f:?}"
            );
            fields.push(f.to_string());
            rest = r;
        }
        let mut sd = vec![];
        if let Some(r) = rest.strip_prefix("- ") {
            rest = r;
        } else {
            let mut chars = rest.char_indices();
            assert_eq!(chars.next(), Some((0, '[')), "SD in {m}");
            let (mut key, mut val, mut in_val, mut in_key, mut end) =
                (String::new(), String::new(), false, false, None);
            while let Some((i, c)) = chars.next() {
                if in_val {
                    match c {
                        '\\' => val.push(chars.next().expect("escaped char").1),
                        '"' => {
                            in_val = false;
                            sd.push((std::mem::take(&mut key), std::mem::take(&mut val)));
                        }
                        ']' => panic!("unescaped ] in a value: {m}"),
                        c => val.push(c),
                    }
                } else if c == ' ' {
                    in_key = true;
                } else if c == '=' {
                    assert_eq!(chars.next().map(|x| x.1), Some('"'));
                    in_val = true;
                    in_key = false;
                } else if c == ']' {
                    end = Some(i);
                    break;
                } else if in_key {
                    key.push(c);
                }
            }
            let end = end.expect("SD closed");
            rest = rest[end + 1..].strip_prefix(' ').expect("space before MSG");
        }
        Parsed {
            fields,
            sd,
            msg: rest.to_string(),
        }
    }

    fn check(m: &str, max: usize) -> (Parsed, Value) {
        assert!(m.len() <= max, "{} bytes over {max}", m.len());
        assert!(
            !m.contains(['\n', '\r', '\0', '\u{85}', '\u{2028}', '\u{2029}']),
            "{m:?}"
        );
        let p = parse(m);
        let v: Value = serde_json::from_str(&p.msg)
            .unwrap_or_else(|e| panic!("MSG is not JSON ({e}): {}", p.msg));
        (p, v)
    }

    #[test]
    fn a_hostile_reason_is_shortened_to_fit_and_the_json_stays_whole() {
        let reason = hostile_reason();
        for (tcp, format) in [
            (false, Format::Native),
            (false, Format::Ocsf),
            (true, Format::Native),
            (true, Format::Ocsf),
        ] {
            let max = default_max_bytes(tcp);
            let m = rfc5424(&alert(&reason), format, max);
            let (p, v) = check(&m, max);
            assert_eq!(p.fields[0], "<83>1");
            assert_eq!(p.fields[3], "breakglass");
            assert_eq!(p.fields[5], "activation");
            let (shown, flag) = match format {
                Format::Native => (&v["data"]["reason"], &v["truncated"]),
                Format::Ocsf => (&v["unmapped"]["reason"], &v["unmapped"]["truncated"]),
            };
            let shown = shown.as_str().unwrap();
            let kept = shown.strip_suffix('…').expect("marked as shortened");
            assert!(reason.starts_with(kept) && kept.len() > 100, "{shown}");
            assert_eq!(flag, &json!(true));
            // Close to the limit: bisection keeps as much as fits.
            assert!(m.len() > max * 3 / 4, "{} of {max}", m.len());
            // What breakglass wrote is kept whole.
            let audit_hash = "ab".repeat(32);
            assert!(p.sd.contains(&("audit_hash".into(), audit_hash)));
            assert!(p.sd.contains(&("event_id".into(), "REQ-7-12-0".into())));
        }
    }

    #[test]
    fn an_alert_that_fits_is_sent_whole_and_unflagged() {
        let a = alert("checkout is down; need to fail over the primary");
        let m = rfc5424(&a, Format::Native, DEFAULT_UDP_MAX_BYTES);
        let (p, v) = check(&m, DEFAULT_UDP_MAX_BYTES);
        assert_eq!(v, a, "the native alert, exactly");
        assert_eq!(
            p.sd,
            [
                ("event_id", "REQ-7-12-0"),
                ("request_id", "REQ-7"),
                ("role", "k8s-cluster-admin"),
                ("requester", "alice"),
                ("approvers", "bob,carol"),
                (
                    "incident",
                    "INC-1042 (pagerduty): Checkout API returning 503"
                ),
                ("expires_at", "2026-11-26T00:00:00.000000Z"),
                ("audit_seq", "12"),
                ("audit_hash", &"ab".repeat(32)),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        let m = rfc5424(&a, Format::Ocsf, DEFAULT_UDP_MAX_BYTES);
        let (_, v) = check(&m, DEFAULT_UDP_MAX_BYTES);
        assert_eq!(v, crate::alert::ocsf::from_alert(&a));
    }

    #[test]
    fn structured_data_escapes_quote_backslash_and_bracket() {
        let mut a = alert("r");
        a["data"]["incident"] = json!("a\"b\\c]d [e] \"\\\\\"");
        let m = rfc5424(&a, Format::Native, DEFAULT_UDP_MAX_BYTES);
        let (p, _) = check(&m, DEFAULT_UDP_MAX_BYTES);
        let incident = p.sd.iter().find(|(k, _)| k == "incident").unwrap();
        assert_eq!(incident.1, "a\"b\\c]d [e] \"\\\\\"");
    }

    #[test]
    fn controls_separators_and_bidi_marks_are_escaped_inside_the_json() {
        let reason = "a\nb\r\u{85}c\u{2028}d\u{2029}e\u{202e}f\u{1b}[2Jg\u{7f}";
        let a = alert(reason);
        for format in [Format::Native, Format::Ocsf] {
            let m = rfc5424(&a, format, DEFAULT_TCP_MAX_BYTES);
            let (p, v) = check(&m, DEFAULT_TCP_MAX_BYTES);
            assert!(
                !p.msg.chars().any(|c| c.is_control()
                    || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')),
                "{m}"
            );
            let back = match format {
                Format::Native => &v["data"]["reason"],
                Format::Ocsf => &v["unmapped"]["reason"],
            };
            assert_eq!(back, reason, "the same text once parsed");
        }
    }

    #[test]
    fn every_limit_from_the_minimum_up_is_kept_with_huge_people_written_text() {
        let mut a = alert(&"ü\"\\]".repeat(1500));
        a["data"]["approvers"] = json!(vec!["x".repeat(300); 200]);
        a["data"]["requester"] = json!("r".repeat(4000));
        a["data"]["incident"] = json!("]".repeat(4000));
        for max in (MIN_MAX_BYTES..=3000).step_by(37).chain([8096, 20_000]) {
            for format in [Format::Native, Format::Ocsf] {
                let m = rfc5424(&a, format, max);
                check(&m, max);
            }
        }
    }

    #[test]
    fn at_the_minimum_an_ocsf_event_falls_back_to_a_minimal_record() {
        let mut a = alert("r");
        a["at"] = json!("2026-11-25T23:00:00.123456+00:00");
        let m = rfc5424(&a, Format::Ocsf, MIN_MAX_BYTES);
        let (p, v) = check(&m, MIN_MAX_BYTES);
        assert!(p.sd.is_empty(), "no structured data: {m}");
        assert_eq!(v["event_id"], "REQ-7-12-0");
        assert_eq!(v["kind"], "activation");
        assert_eq!(v["audit_seq"], 12);
        assert_eq!(v["truncated"], true);
    }

    #[test]
    fn header_fields_are_printable_ascii_only() {
        let mut a = alert("r");
        a["kind"] = json!("early end\n<86>1 x");
        a["at"] = json!("2026-11-25 23:00\u{0}");
        let m = rfc5424(&a, Format::Native, DEFAULT_UDP_MAX_BYTES);
        let (p, _) = check(&m, DEFAULT_UDP_MAX_BYTES);
        assert_eq!(p.fields[5], "earlyend<86>1x");
        assert_eq!(p.fields[1], "2026-11-2523:00");
    }

    #[test]
    fn shorten_marks_cuts_and_keeps_char_boundaries() {
        assert_eq!(crate::sanitize::text("abc", 3), "abc");
        assert_eq!(crate::sanitize::text("äbcd", 2), "äb…");
        assert_eq!(crate::sanitize::text("abc", 0), "…");
        assert_eq!(
            bound_value(&json!(["aaaa", "b", "c"]), 2),
            json!(["aa…", "b", "…"])
        );
    }
}
