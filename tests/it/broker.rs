//! The broker's socket from a client's side, in one process: identity comes from
//! the kernel, a message cannot name another person, frames are bounded and
//! versioned, a broker that is down is said plainly, and the whole walk gives
//! the same answers as the engine in process.

use crate::support::*;
use breakglass::domain::State;
use breakglass::engine::{Decision, Engine};
use breakglass::service::protocol::{self, Reply};
use breakglass::service::{ErrorKind, Service};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

struct Broker {
    _tmp: tempfile::TempDir,
    socket: PathBuf,
    engine: Arc<Engine>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Broker {
    /// A broker on the demo config as changed by `edit`.
    async fn start(edit: impl FnOnce(&mut String)) -> Broker {
        let tmp = tempfile::tempdir().unwrap();
        let path = crate::support::prepare_demo(tmp.path());
        let mut text = std::fs::read_to_string(&path).unwrap();
        edit(&mut text);
        std::fs::write(&path, text).unwrap();
        let cfg = breakglass::config::load(&path).unwrap();
        let engine = Arc::new(Engine::from_config(&cfg).unwrap());
        let socket = tmp.path().join("broker.sock");
        let listener = breakglass::broker::bind(&socket, None).await.unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(breakglass::broker::serve(engine.clone(), listener, async {
            let _ = stopped.await;
        }));
        Broker {
            _tmp: tmp,
            socket,
            engine,
            stop: Some(stop),
        }
    }
    fn client(&self, persona: Option<&str>) -> Service {
        Service::broker(self.socket.clone()).as_persona(persona.map(str::to_string))
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

fn without_personas(text: &mut String) {
    *text = text.replace(
        "[demo]\npersonas = [\"alice\", \"bob\", \"carol\", \"dave\"]\n",
        "",
    );
    assert!(!text.contains("[demo]"));
}

/// Sends `body` as one frame and reads the one reply.
async fn raw(socket: &Path, body: &[u8]) -> Reply {
    let mut s = tokio::net::UnixStream::connect(socket).await.unwrap();
    protocol::write_frame(&mut s, body).await.unwrap();
    let frame = protocol::read_frame(&mut s, protocol::MAX_REPLY_BYTES)
        .await
        .unwrap()
        .expect("a reply");
    serde_json::from_slice(&frame).unwrap()
}

fn error_of(r: Reply) -> protocol::WireError {
    match r {
        Reply::Error(e) => e,
        other => panic!("expected an error, got {other:?}"),
    }
}

fn os_account() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .unwrap()
        .unwrap()
        .name
}

#[tokio::test]
async fn the_kernel_names_the_caller_and_no_message_can_name_another() {
    let b = Broker::start(without_personas).await;
    let hello = b.client(None).hello().await.unwrap();
    assert_eq!(hello.who, Ok(os_account()));
    assert_eq!(hello.v, "breakglass.broker/v1");
    assert_eq!(hello.personas, None);

    // A persona outside a demo is refused, as `--as` is in process.
    let e = b.client(Some("bob")).whoami().await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Identity);
    assert_eq!(e.code, breakglass::exit::USAGE);
    assert!(e.message.contains("only accepted in demo mode"), "{e:?}");
    let e = b
        .client(Some("bob"))
        .decide(breakglass::domain::RequestId(1), Decision::approve(None))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Identity, "{e:?}");

    // The protocol has no field for who is asking: a message that adds one is
    // refused whole, not half-read.
    for forged in [
        r#"{"v":"breakglass.broker/v1","who":"bob","call":{"op":"hello"}}"#,
        r#"{"v":"breakglass.broker/v1","call":{"op":"hello","who":"bob"}}"#,
        r#"{"v":"breakglass.broker/v1","call":{"op":"approvals","as":"bob"}}"#,
    ] {
        let e = error_of(raw(&b.socket, forged.as_bytes()).await);
        assert_eq!(e.kind, ErrorKind::Protocol, "{forged}: {e:?}");
        assert!(e.message.contains("unknown field"), "{forged}: {e:?}");
    }
    // Nothing was recorded for anyone.
    assert_eq!(b.engine.audit_head().await.unwrap().0, 0);
}

#[tokio::test]
async fn frames_are_versioned_and_bounded() {
    let b = Broker::start(|_| {}).await;
    let e = error_of(
        raw(
            &b.socket,
            br#"{"v":"breakglass.broker/v2","call":{"op":"hello"}}"#,
        )
        .await,
    );
    assert!(e.message.contains("speaks breakglass.broker/v1"), "{e:?}");
    assert!(e.message.contains("v2"), "{e:?}");
    let e = error_of(raw(&b.socket, b"not json").await);
    assert_eq!(e.kind, ErrorKind::Protocol);

    // A frame announced over the limit is refused before it is read.
    let mut s = tokio::net::UnixStream::connect(&b.socket).await.unwrap();
    let len = (protocol::MAX_CALL_BYTES as u32 + 1).to_be_bytes();
    s.write_all(&len).await.unwrap();
    let frame = protocol::read_frame(&mut s, protocol::MAX_REPLY_BYTES)
        .await
        .unwrap()
        .unwrap();
    let e = error_of(serde_json::from_slice(&frame).unwrap());
    assert!(e.message.contains("over the limit"), "{e:?}");
    // ... and the connection is closed after it.
    assert!(protocol::read_frame(&mut s, 1024).await.unwrap().is_none());

    // Hostile text in a refusal comes back cleaned.
    let e = error_of(
        raw(
            &b.socket,
            "{\"v\":\"\u{1b}[2J\u{1b}]0;owned\u{7}\",\"call\":{\"op\":\"hello\"}}".as_bytes(),
        )
        .await,
    );
    assert!(!e.message.contains('\u{1b}'), "{e:?}");
}

#[tokio::test]
async fn a_broker_that_is_down_is_named_with_how_to_start_it() {
    let tmp = tempfile::tempdir().unwrap();
    let socket = tmp.path().join("nobody-home.sock");
    let e = Service::broker(socket.clone()).hello().await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable);
    assert_eq!(e.code, breakglass::exit::FAILURE);
    assert!(e.message.contains(&socket.display().to_string()), "{e:?}");
    let f = breakglass::cli::Failure::from(e);
    assert!(
        f.render().contains("is the broker running?"),
        "{}",
        f.render()
    );

    // A stale socket file left by a dead broker is taken over; a live one is not.
    let b = Broker::start(|_| {}).await;
    let again = breakglass::broker::bind(&b.socket, None).await.unwrap_err();
    assert!(again.to_string().contains("already answers"), "{again}");
    drop(b);
    std::os::unix::net::UnixListener::bind(&socket).unwrap();
    drop(breakglass::broker::bind(&socket, None).await.unwrap());
}

/// The walk through the broker: what a person sees and what the log keeps.
#[tokio::test]
async fn the_whole_walk_goes_through_the_socket() {
    let b = Broker::start(|_| {}).await;
    let (alice, bob, dave) = (
        b.client(Some("alice")),
        b.client(Some("bob")),
        b.client(Some("dave")),
    );
    let r = alice
        .request(input(K8S, inc("INC-1042")), None)
        .await
        .unwrap();
    assert_eq!(r.state, State::Pending);
    // The requester cannot approve their own request, through the socket too.
    let e = alice
        .decide(r.id, Decision::approve(None))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Refused, "{e:?}");
    assert_eq!(e.code, breakglass::exit::REFUSED);
    assert_eq!(
        e.reason,
        Some(breakglass::domain::lifecycle::Reason::OwnRequest)
    );
    assert_eq!(bob.approvals().await.unwrap().len(), 1);

    // A decision from another terminal wakes a waiting client at once.
    let head = alice.audit_head().await.unwrap().0;
    let waiter = {
        let alice = alice.clone();
        tokio::spawn(async move {
            let t = std::time::Instant::now();
            let changed = alice
                .wait_for_change(head, std::time::Duration::from_secs(20))
                .await;
            (changed, t.elapsed())
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    bob.decide(r.id, Decision::approve(None)).await.unwrap();
    let (changed, waited) = waiter.await.unwrap();
    assert!(changed);
    assert!(waited < std::time::Duration::from_secs(5), "{waited:?}");

    let (active, cred) = alice.activate(r.id).await.unwrap();
    assert_eq!(active.state, State::Active);
    assert!(cred.reveal().count() > 0);
    let r = alice.revoke(r.id, "done").await.unwrap();
    assert_eq!(r.state, State::Ended);
    alice.review(r.id, answers()).await.unwrap();
    let e = alice
        .decide(r.id, Decision::certify("mine"))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Refused);
    let r = dave.decide(r.id, Decision::certify("ok")).await.unwrap();
    assert_eq!(r.state, State::Certified);

    let (count, broken) = dave.verify_audit().await.unwrap();
    assert!(broken.is_none());
    assert!(count > 5);
    let actors: Vec<(String, String)> = dave
        .audit_tail(100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.action, r.actor))
        .collect();
    for want in [
        ("request.created", "alice"),
        ("request.approved", "bob"),
        ("review.certified", "dave"),
    ] {
        assert!(
            actors.iter().any(|(a, w)| a == want.0 && w == want.1),
            "{want:?} in {actors:?}"
        );
    }
}

/// Copied credentials through the socket: the review's reply carries the
/// invalidation, and a certification's `invalidation_exception` reaches the
/// engine (refused here, as nothing is pending).
#[tokio::test]
async fn copied_credentials_and_their_exception_go_through_the_socket() {
    let b = Broker::start(|_| {}).await;
    let (alice, bob, dave) = (
        b.client(Some("alice")),
        b.client(Some("bob")),
        b.client(Some("dave")),
    );
    let r = alice
        .request(input(K8S, inc("INC-1042")), None)
        .await
        .unwrap();
    bob.decide(r.id, Decision::approve(None)).await.unwrap();
    alice.activate(r.id).await.unwrap();
    alice.revoke(r.id, "done").await.unwrap();
    let mut a = answers();
    a.credentials_copied = true;
    a.credentials_copied_where = "my laptop".into();
    let r = alice.review(r.id, a).await.unwrap();
    let inv = r.invalidation.as_ref().expect("in the reply");
    assert_eq!(inv.copied_where, "my laptop");
    assert!(inv.done.is_some(), "{inv:?}");
    let e = dave
        .decide(r.id, Decision::certify_with_exception("ok", "why"))
        .await
        .unwrap_err();
    assert_eq!(e.code, breakglass::exit::USAGE, "{e:?}");
    assert!(e.message.contains("no invalidation pending"), "{e:?}");
    let r = dave.decide(r.id, Decision::certify("ok")).await.unwrap();
    assert_eq!(r.state, State::Certified);
}

/// A vendor session through the socket: the recording is kept by the broker,
/// written only by the requester until closed, hashed into the log, and
/// replayed (checked against that hash) before certification.
#[tokio::test]
async fn a_vendor_session_is_recorded_by_the_broker_and_replayed_through_it() {
    let b = Broker::start(|t| t.push_str(&vendor_role(""))).await;
    let (alice, bob, dave) = (
        b.client(Some("alice")),
        b.client(Some("bob")),
        b.client(Some("dave")),
    );
    dave.recertify_role(VENDOR, "reviewed", None).await.unwrap();
    let vendor = breakglass::domain::vendor::VendorInfo {
        name: "Vera Vendor".into(),
        company: "DB Corp".into(),
    };
    let r = alice
        .request(input(VENDOR, inc("INC-1042")), Some(vendor))
        .await
        .unwrap();
    bob.decide(r.id, Decision::approve(None)).await.unwrap();
    // Not through `activate`: vendor access is only given in a recorded session.
    assert_eq!(
        alice.activate(r.id).await.unwrap_err().kind,
        ErrorKind::Refused
    );
    let s = alice.open_shell(r.id).await.unwrap();
    assert_eq!(s.request.state, State::Active);
    assert!(s.credential.reveal().count() > 0);
    assert!(s.recording.starts_with(b._tmp.path()), "{:?}", s.recording);
    // Nobody but the requester writes into it.
    let e = bob.append_recording(r.id, b"forged\n").await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Refused, "{e:?}");
    let cast = b"{\"version\":2,\"width\":80,\"height\":24}\n[0.1,\"o\",\"hello\"]\n";
    alice.append_recording(r.id, &cast[..20]).await.unwrap();
    alice.append_recording(r.id, &cast[20..]).await.unwrap();
    assert_eq!(
        alice.session_end_reason(r.id).await.unwrap(),
        None,
        "still active"
    );
    alice.revoke(r.id, "session closed").await.unwrap();
    let rec = alice.close_recording(r.id).await.unwrap();
    assert_eq!(std::fs::read(&rec.path).unwrap(), cast);
    // Closed is closed: no more pieces, no second close.
    assert!(alice.append_recording(r.id, b"more").await.is_err());
    assert!(alice.close_recording(r.id).await.is_err());
    alice.review(r.id, answers()).await.unwrap();
    let e = dave
        .decide(r.id, Decision::certify("ok"))
        .await
        .unwrap_err();
    assert!(e.message.contains("must watch its recording"), "{e:?}");
    let (seen, bytes) = dave.read_recording(r.id).await.unwrap();
    assert_eq!(bytes.as_deref(), Some(&cast[..]));
    assert_eq!(seen.sha256, rec.sha256);
    dave.replayed(r.id, 0.0).await.unwrap();
    dave.decide(r.id, Decision::certify("ok")).await.unwrap();
    // A recording changed on disk is not replayed as if it were the audited one.
    std::fs::write(&rec.path, b"tampered").unwrap();
    let (_, bytes) = dave.read_recording(r.id).await.unwrap();
    assert_eq!(bytes, None);
}

/// A vendor session whose `shell` was killed before it closed its recording:
/// once access has ended, the certifier's queue offers the recording, replaying
/// it audits it (marked interrupted), and the request can be certified; the
/// role is not left locked behind a recording nobody can watch.
#[tokio::test]
async fn an_interrupted_vendor_recording_is_closed_at_replay_and_certifiable() {
    let b = Broker::start(|t| t.push_str(&vendor_role(""))).await;
    let (alice, bob, dave) = (
        b.client(Some("alice")),
        b.client(Some("bob")),
        b.client(Some("dave")),
    );
    dave.recertify_role(VENDOR, "reviewed", None).await.unwrap();
    let vendor = breakglass::domain::vendor::VendorInfo {
        name: "Vera Vendor".into(),
        company: "DB Corp".into(),
    };
    let r = alice
        .request(input(VENDOR, inc("INC-1042")), Some(vendor))
        .await
        .unwrap();
    bob.decide(r.id, Decision::approve(None)).await.unwrap();
    alice.open_shell(r.id).await.unwrap();
    let cast = b"{\"version\":2,\"width\":80,\"height\":24}\n[0.1,\"o\",\"rm -rf /tmp/x\"]\n";
    alice.append_recording(r.id, cast).await.unwrap();
    // The shell dies here: no close. Access ends all the same.
    alice.revoke(r.id, "vendor shell killed").await.unwrap();
    alice.review(r.id, answers()).await.unwrap();
    let queue = dave.reviews().await.unwrap();
    let item = queue.iter().find(|q| q.request.id == r.id).unwrap();
    assert_eq!(item.recording_replayed, Some(false), "offered to watch");
    let (rec, bytes) = dave.read_recording(r.id).await.unwrap();
    assert_eq!(bytes.as_deref(), Some(&cast[..]));
    assert_eq!(rec.bytes, cast.len() as u64);
    dave.replayed(r.id, 0.0).await.unwrap();
    let done = dave
        .decide(r.id, Decision::certify("watched"))
        .await
        .unwrap();
    assert_eq!(done.state, State::Certified);
    // The audit trail says the session did not close it itself.
    let tail = dave.audit_tail(50).await.unwrap();
    let recorded = tail
        .iter()
        .find(|e| e.request_id == Some(r.id.0) && e.action == "session.recorded")
        .expect("session.recorded audited");
    assert!(
        recorded.detail.contains("interrupted"),
        "{}",
        recorded.detail
    );
    // Closed is closed: the dead session's client cannot add to it now.
    assert!(alice.append_recording(r.id, b"more").await.is_err());
}

/// `drill` through the socket: filed by alice, approved by bob, run by the
/// broker; the reply is the request with its outcome, never a credential, and
/// a drill of someone's own cannot be approved by them.
#[tokio::test]
async fn a_drill_goes_through_the_socket_and_no_credential_comes_back() {
    let b = Broker::start(|t| {
        *t = t.replacen(
            "min_ttl = \"1s\"\nmax_ttl = \"20m\"",
            "min_ttl = \"1m\"\nmax_ttl = \"20m\"",
            1,
        );
    })
    .await;
    let (alice, bob) = (b.client(Some("alice")), b.client(Some("bob")));
    let filed = alice.drill(K8S).await.unwrap();
    assert_eq!(filed.state, State::Pending);
    let e = alice
        .decide(filed.id, Decision::approve(None))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Refused);
    bob.decide(filed.id, Decision::approve(None)).await.unwrap();
    // The raw reply: a request, and no credential anywhere in it.
    let body = serde_json::to_vec(&serde_json::json!({
        "v": protocol::VERSION,
        "as_persona": "alice",
        "call": {"op": "drill", "role": K8S},
    }))
    .unwrap();
    match raw(&b.socket, &body).await {
        Reply::Request { request } => {
            assert_eq!(request.id, filed.id);
            assert_eq!(request.state, State::Certified);
            assert!(request.drill.unwrap().outcome.unwrap().passed());
        }
        other => panic!("expected a request, got {other:?}"),
    }
    let e = alice.activate(filed.id).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Refused, "{e:?}");
}
