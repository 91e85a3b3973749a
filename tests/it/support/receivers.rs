//! Real receivers on 127.0.0.1 for alert delivery tests: an HTTP server with a
//! chosen behaviour, and syslog listeners over UDP and TCP.
#![allow(dead_code)]

use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Clone, Copy, Debug)]
pub enum Behaviour {
    Ok,
    /// Answer 500 to the first n requests, then 200.
    FailFirst(usize),
    /// Accept and never answer.
    Hang,
    Always500,
}

#[derive(Debug, Clone)]
pub struct Received {
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

pub struct HttpReceiver {
    pub url: String,
    pub got: Arc<Mutex<Vec<Received>>>,
    pub hits: Arc<AtomicUsize>,
}

impl HttpReceiver {
    pub fn start(behaviour: Behaviour) -> Self {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let url = format!("http://{}/hook", server.server_addr().to_ip().unwrap());
        let got = Arc::new(Mutex::new(vec![]));
        let hits = Arc::new(AtomicUsize::new(0));
        let (g, h) = (got.clone(), hits.clone());
        std::thread::spawn(move || {
            for mut req in server.incoming_requests() {
                let n = h.fetch_add(1, Ordering::SeqCst);
                let mut body = String::new();
                let _ = req.as_reader().read_to_string(&mut body);
                let headers = req
                    .headers()
                    .iter()
                    .map(|x| (x.field.to_string(), x.value.to_string()))
                    .collect();
                let ok = match behaviour {
                    Behaviour::Ok => true,
                    Behaviour::FailFirst(k) => n >= k,
                    Behaviour::Always500 => false,
                    Behaviour::Hang => {
                        // Keep the connection open without answering.
                        std::thread::spawn(move || {
                            std::thread::sleep(std::time::Duration::from_secs(120));
                            drop(req);
                        });
                        continue;
                    }
                };
                if ok {
                    g.lock().unwrap().push(Received { headers, body });
                    let _ = req.respond(tiny_http::Response::from_string("ok"));
                } else {
                    let _ = req.respond(
                        tiny_http::Response::from_string("{\"error\":\"siem overloaded\"}")
                            .with_status_code(500),
                    );
                }
            }
        });
        HttpReceiver { url, got, hits }
    }

    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

/// Collects syslog messages; over TCP it splits RFC 6587 octet-counted frames.
pub struct SyslogReceiver {
    pub address: String,
    pub got: Arc<Mutex<Vec<String>>>,
}

impl SyslogReceiver {
    pub fn udp() -> Self {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let address = sock.local_addr().unwrap().to_string();
        let got = Arc::new(Mutex::new(vec![]));
        let g = got.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = sock.recv(&mut buf) {
                g.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        });
        SyslogReceiver { address, got }
    }

    pub fn tcp() -> Self {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = l.local_addr().unwrap().to_string();
        let got = Arc::new(Mutex::new(vec![]));
        let g = got.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let mut data = vec![];
                let _ = s.read_to_end(&mut data);
                let text = String::from_utf8_lossy(&data).into_owned();
                let mut rest = text.as_str();
                while let Some((len, tail)) = rest.split_once(' ') {
                    let Ok(len) = len.parse::<usize>() else {
                        g.lock().unwrap().push(format!("BAD FRAME: {rest}"));
                        break;
                    };
                    g.lock()
                        .unwrap()
                        .push(tail[..len.min(tail.len())].to_string());
                    rest = &tail[len.min(tail.len())..];
                }
            }
        });
        SyslogReceiver { address, got }
    }

    pub fn messages(&self) -> Vec<String> {
        self.got.lock().unwrap().clone()
    }
}

/// A TCP server on 127.0.0.1 that accepts connections and never answers:
/// the shape of a hung target. Returns its `http://` base URL.
pub fn silent_http_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().flatten() {
            held.push(s);
        }
    });
    format!("http://127.0.0.1:{port}")
}

/// A real HTTP server on 127.0.0.1:<random port>, one thread per request, each
/// handled by `handle` with the shared state. Returns its base URL and the server.
pub fn serve<S: Send + 'static>(
    state: Arc<Mutex<S>>,
    handle: fn(&Mutex<S>, tiny_http::Request),
) -> (String, Arc<tiny_http::Server>) {
    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
    let port = server.server_addr().to_ip().unwrap().port();
    let srv = server.clone();
    std::thread::spawn(move || {
        for req in srv.incoming_requests() {
            let st = state.clone();
            std::thread::spawn(move || handle(&st, req));
        }
    });
    (format!("http://127.0.0.1:{port}"), server)
}

/// A local stand-in for PagerDuty's Events API v2 (`POST /v2/enqueue`), keeping
/// to what its documentation says: it checks each event as PagerDuty does
/// (a routing key, `event_action` trigger, acknowledge or resolve, a
/// `dedup_key` of at most 255 characters, and for a trigger a `payload` with
/// `summary` of at most 1024 characters, `source`, and a known `severity`),
/// answers 202 `{"status":"success","message":"Event processed","dedup_key":...}`
/// or 400 `{"status":"invalid event","message":"Event object is invalid","errors":[...]}`,
/// and keeps the events it accepted. With `echo`, every event is refused with
/// the body it sent quoted back, as a careless proxy might.
pub struct PagerDutyReceiver {
    pub url: String,
    pub events: Arc<Mutex<Vec<serde_json::Value>>>,
    pub refused: Arc<Mutex<Vec<String>>>,
}

impl PagerDutyReceiver {
    pub fn start(echo: bool) -> Self {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let url = format!(
            "http://{}/v2/enqueue",
            server.server_addr().to_ip().unwrap()
        );
        let events = Arc::new(Mutex::new(vec![]));
        let refused = Arc::new(Mutex::new(vec![]));
        let (ev, rf) = (events.clone(), refused.clone());
        std::thread::spawn(move || {
            for mut req in server.incoming_requests() {
                let mut body = String::new();
                let _ = req.as_reader().read_to_string(&mut body);
                let json_type = req.headers().iter().any(|h| {
                    h.field.equiv("Content-Type")
                        && h.value.as_str().starts_with("application/json")
                });
                let errors =
                    if req.url() != "/v2/enqueue" || *req.method() != tiny_http::Method::Post {
                        vec![format!("no such endpoint: {} {}", req.method(), req.url())]
                    } else if !json_type {
                        vec!["Content-Type must be application/json".to_string()]
                    } else {
                        match serde_json::from_str::<serde_json::Value>(&body) {
                            Ok(e) => pagerduty_errors(&e),
                            Err(e) => vec![format!("not JSON: {e}")],
                        }
                    };
                let (code, answer) = if echo {
                    let sent: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                    let why = format!(
                        "routing_key {} is not an integration key",
                        sent["routing_key"]
                    );
                    (
                        400,
                        serde_json::json!({"status": "invalid event", "message": "Event object is invalid", "errors": [why]}),
                    )
                } else if errors.is_empty() {
                    let e: serde_json::Value = serde_json::from_str(&body).unwrap();
                    let key = e["dedup_key"].clone();
                    ev.lock().unwrap().push(e);
                    (
                        202,
                        serde_json::json!({"status": "success", "message": "Event processed", "dedup_key": key}),
                    )
                } else {
                    (
                        400,
                        serde_json::json!({"status": "invalid event", "message": "Event object is invalid", "errors": errors}),
                    )
                };
                if code != 202 {
                    rf.lock().unwrap().push(body);
                }
                let _ = req.respond(
                    tiny_http::Response::from_string(answer.to_string())
                        .with_status_code(code)
                        .with_header(
                            "Content-Type: application/json"
                                .parse::<tiny_http::Header>()
                                .unwrap(),
                        ),
                );
            }
        });
        PagerDutyReceiver {
            url,
            events,
            refused,
        }
    }

    pub fn events(&self) -> Vec<serde_json::Value> {
        self.events.lock().unwrap().clone()
    }
}

/// What PagerDuty's Events API v2 documentation says makes an event invalid.
fn pagerduty_errors(e: &serde_json::Value) -> Vec<String> {
    let mut errors = vec![];
    if e["routing_key"].as_str().is_none_or(|k| k.is_empty()) {
        errors.push("routing_key is required".to_string());
    }
    let action = e["event_action"].as_str().unwrap_or_default();
    if !["trigger", "acknowledge", "resolve"].contains(&action) {
        errors.push(format!("event_action '{action}' is invalid"));
    }
    match e["dedup_key"].as_str() {
        Some(k) if k.chars().count() <= 255 => {}
        Some(_) => errors.push("dedup_key is longer than 255 characters".into()),
        // A trigger without one gets a key made up; the others need one.
        None if action == "trigger" => {}
        None => errors.push("dedup_key is required to acknowledge or resolve".into()),
    }
    if action == "trigger" {
        let p = &e["payload"];
        match p["summary"].as_str() {
            Some(s) if !s.is_empty() && s.chars().count() <= 1024 => {}
            _ => errors.push("payload.summary is required, at most 1024 characters".into()),
        }
        if p["source"].as_str().is_none_or(|s| s.is_empty()) {
            errors.push("payload.source is required".into());
        }
        let sev = p["severity"].as_str().unwrap_or_default();
        if !["critical", "error", "warning", "info"].contains(&sev) {
            errors.push(format!("payload.severity '{sev}' is invalid"));
        }
        if let Some(t) = p.get("timestamp").and_then(|t| t.as_str()) {
            if chrono::DateTime::parse_from_rfc3339(t).is_err() {
                errors.push("payload.timestamp is not ISO 8601".into());
            }
        }
        if p.get("custom_details").is_some_and(|c| !c.is_object()) {
            errors.push("payload.custom_details must be an object".into());
        }
    }
    errors
}
