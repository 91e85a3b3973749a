//! The console driven by keys and engine messages (no terminal), through the
//! whole walk, with a real engine, store and demo backend on a manual clock.

use crate::support;

use breakglass::domain::State;
use breakglass::engine::Decision;
use chrono::Duration;
use crossterm::event::KeyCode;
use support::tui::Driver;
use support::*;

/// alice's console on a fresh demo, loaded.
async fn console() -> Driver {
    let mut d = Driver::new(harness(), "alice");
    d.refresh().await;
    d
}

/// Incident list -> INC-1042 -> role at `role_index` -> the activation form.
async fn to_form(d: &mut Driver, role_index: usize) {
    d.assert_sees("Pick the incident");
    d.press(KeyCode::Down).await; // INC-1044 (SEV1, newest) comes first
    d.press(KeyCode::Enter).await;
    d.assert_sees("for INC-1042");
    for _ in 0..role_index {
        d.press(KeyCode::Down).await;
    }
    d.press(KeyCode::Enter).await;
    d.assert_sees("Activation form");
}

#[tokio::test]
async fn the_whole_walk_from_incident_to_certification() {
    let mut d = console().await;
    to_form(&mut d, 3).await; // prod-db-emergency-dba: 2 approvals
    d.press(KeyCode::Down).await; // condition: production outage
    d.press(KeyCode::Down).await; // condition: locked-out administrators
    d.press(KeyCode::Tab).await;
    d.typed("primary is read-only; failing over").await;
    d.ctrl('s').await;
    d.assert_sees("Type the role name");
    d.typed("prod-db-emergency").await;
    d.press(KeyCode::Enter).await;
    d.assert_sees("type the role name `prod-db-emergency-dba` to confirm");
    d.typed("-dba").await;
    d.press(KeyCode::Enter).await;
    d.assert_sees("0 of 2 approvals");
    let id = d.app.focus.unwrap();
    let req = d.engine.load(id).await.unwrap();
    assert_eq!(req.condition, "locked-out administrators");
    assert_eq!(req.ttl_seconds, 15 * 60);

    // Approvers act from other terminals; the watcher's refresh brings it in.
    d.h.engine
        .decide("bob", id, Decision::approve(None))
        .await
        .unwrap();
    d.refresh().await;
    d.assert_sees("1 of 2 approvals");
    d.assert_sees("✓ bob");
    d.h.engine
        .decide("carol", id, Decision::approve(None))
        .await
        .unwrap();
    d.refresh().await; // approved -> the console activates on its own
    assert_eq!(d.engine.load(id).await.unwrap().state, State::Active);
    d.assert_sees("left of 15m");
    d.assert_sees("••••••••••••");
    assert!(!d.sees("bg_req_1"), "masked until revealed");
    d.press(KeyCode::Char('r')).await;
    d.assert_sees("bg_req_1");
    d.press(KeyCode::Char('y')).await;
    assert!(
        d.copied[0].contains("username=bg_req_1 password="),
        "the whole credential is copied"
    );

    // The countdown follows the clock; warnings at 5 and 1 minutes.
    d.h.clock.advance(Duration::minutes(10));
    d.tick().await;
    d.assert_sees("00:05:00 left");
    d.assert_sees("Less than 5 minutes left");
    d.h.clock.advance(Duration::seconds(250));
    d.tick().await;
    d.assert_sees("LESS THAN 1 MINUTE LEFT");

    // Extend, then end now.
    d.press(KeyCode::Char('e')).await;
    d.press(KeyCode::Tab).await;
    d.typed("replica still catching up").await;
    d.press(KeyCode::Enter).await;
    assert_eq!(
        d.engine
            .load(id)
            .await
            .unwrap()
            .grant
            .unwrap()
            .extensions
            .len(),
        1
    );
    d.assert_sees("extended 1 time(s)");
    d.press(KeyCode::Char('x')).await;
    d.assert_sees("End REQ-1 now?");
    d.press(KeyCode::Char('y')).await;
    // Access ended: the review form is open with the prefilled summary.
    d.assert_sees("After-action review of REQ-1");
    d.assert_sees("approvers bob, carol");
    d.assert_sees("1 extension(s)");
    assert!(d.h.leases().is_empty());
    d.ctrl('s').await;
    d.assert_sees("answer both yes/no questions");
    d.typed("promoted the replica").await;
    d.press(KeyCode::Tab).await;
    d.typed("db-1, db-2").await;
    d.press(KeyCode::Tab).await;
    d.press(KeyCode::Char('y')).await;
    d.press(KeyCode::Tab).await;
    d.press(KeyCode::Char('n')).await;
    d.ctrl('s').await;
    assert_eq!(d.engine.load(id).await.unwrap().state, State::Reviewed);
    d.assert_sees("awaiting certification");

    // dave certifies from the same console (demo persona switch).
    d.press(KeyCode::Char('p')).await;
    d.press(KeyCode::End).await;
    d.press(KeyCode::Enter).await;
    assert_eq!(d.app.me, "dave");
    d.refresh().await;
    d.press(KeyCode::Char('4')).await;
    d.assert_sees("Reviews (1)");
    d.assert_sees("ready for you");
    d.press(KeyCode::Char('c')).await;
    d.typed("fine").await;
    d.press(KeyCode::Enter).await;
    assert_eq!(d.engine.load(id).await.unwrap().state, State::Certified);
    d.press(KeyCode::Char('5')).await;
    d.assert_sees("chain verified: 10 event(s)");
}

#[tokio::test]
async fn form_problems_show_next_to_their_fields() {
    let mut d = console().await;
    to_form(&mut d, 1).await; // k8s-cluster-admin: max 20m
    d.press(KeyCode::Tab).await;
    d.press(KeyCode::Tab).await; // TTL
                                 // Nothing typed: the TTL says what it will be.
    d.ctrl('u').await;
    d.assert_sees("empty: the default, 10m");
    d.ctrl('u').await;
    d.typed("2h").await;
    d.ctrl('s').await;
    d.assert_sees("! pick the condition that applies");
    d.assert_sees("! a reason is required");
    d.assert_sees("! TTL 2h is longer than role k8s-cluster-admin allows; ask for at most 20m");
    assert_eq!(d.app.tab, breakglass::tui::app::Tab::Incidents);
    // Focus jumped to the first problem; fixing it clears its message at once.
    d.press(KeyCode::Down).await;
    assert!(!d.sees("pick the condition"));
    d.press(KeyCode::Tab).await;
    d.typed("x").await;
    assert!(!d.sees("a reason is required"));
    d.assert_sees("longer than role");
    d.press(KeyCode::Tab).await;
    d.ctrl('u').await;
    d.typed("nonsense").await;
    d.assert_sees("`nonsense` is not a duration");
    // Zero is too short, not too long.
    d.ctrl('u').await;
    d.typed("0").await;
    d.assert_sees("! `0` is too short");
    assert!(!d.sees("ask for at most"), "{}", d.screen(100, 30));
}

#[tokio::test]
async fn the_ttl_offers_the_roles_presets_and_refuses_less_than_min_ttl() {
    let mut d = console().await;
    to_form(&mut d, 3).await; // prod-db-emergency-dba: default 15m, max 30m, min 1m
    d.press(KeyCode::Down).await; // a condition
    d.press(KeyCode::Tab).await;
    d.typed("replica lag, promote the standby").await;
    d.press(KeyCode::Tab).await; // TTL, empty: the default
    d.assert_sees("1m to 30m");
    d.assert_sees("[15m]");
    d.press(KeyCode::Down).await;
    d.assert_sees("[30m]");
    d.press(KeyCode::Down).await; // nothing longer than the ceiling
    d.assert_sees("[30m]");
    d.press(KeyCode::Up).await;
    d.assert_sees("[15m]");
    let breakglass::tui::app::Walk::Form(form) = &d.app.walk else {
        panic!("still on the form")
    };
    assert_eq!(form.ttl.value, "15m");
    // Typed text still counts; under the role's floor is refused as too short.
    d.ctrl('u').await;
    d.typed("30s").await;
    d.ctrl('s').await;
    d.assert_sees("! TTL 30s is too short for role prod-db-emergency-dba; ask for at least 1m");
    assert!(
        matches!(d.app.walk, breakglass::tui::app::Walk::Form(_)),
        "not filed"
    );
}

#[tokio::test]
async fn a_paste_is_one_clean_capped_edit_of_the_focused_field() {
    let mut d = console().await;
    // On a list a paste is not keys: no shortcut, no quit, no tab switch.
    d.paste("q2t").await;
    assert!(!d.app.quitting);
    assert_eq!(d.app.tab, breakglass::tui::app::Tab::Incidents);
    d.assert_sees("Pick the incident");
    to_form(&mut d, 3).await;
    d.press(KeyCode::Down).await;
    d.press(KeyCode::Tab).await; // reason
    let long = format!("\x1b]0;owned\x07line one\r\n{}", "x".repeat(5000));
    d.paste(&long).await;
    let breakglass::tui::app::Walk::Form(f) = &d.app.walk else {
        panic!("not on the form: {:?}", d.app.walk);
    };
    let reason = &f.reason.value;
    assert_eq!(reason.chars().count(), 4000, "capped at the field's limit");
    assert!(reason.starts_with("line one\nxxx"), "{:?}", &reason[..20]);
    assert!(!reason.contains('\x1b') && !reason.contains("owned"));
    d.ctrl('s').await;
    d.assert_sees("Type the role name");
}

#[tokio::test]
async fn an_extension_of_nothing_is_refused_in_the_dialog() {
    let mut d = console().await;
    let (r, _) = d.h.active(K8S).await;
    d.refresh().await;
    d.press(KeyCode::Char('2')).await;
    d.press(KeyCode::Enter).await;
    d.press(KeyCode::Char('e')).await;
    d.ctrl('u').await;
    d.typed("0s").await;
    d.press(KeyCode::Tab).await;
    d.typed("more").await;
    d.press(KeyCode::Enter).await;
    d.assert_sees("`0s` is not a duration");
    let req = d.engine.load(r.id).await.unwrap();
    assert!(req.grant.unwrap().extensions.is_empty());
}

#[tokio::test]
async fn the_extend_dialog_keeps_what_was_typed_and_says_what_is_wrong_inside() {
    use breakglass::tui::app::Dialog;
    let mut d = console().await;
    let (r, _) = d.h.active(K8S).await; // 10m of max 20m, 2 extensions, 40m in all
    d.refresh().await;
    d.press(KeyCode::Char('2')).await;
    d.press(KeyCode::Enter).await;
    d.press(KeyCode::Char('e')).await;
    d.assert_sees("up to 20m each · 2 of 2 extensions left · 40m in all, 30m more");
    d.ctrl('u').await;
    d.typed("25m").await;
    d.press(KeyCode::Tab).await;
    d.typed("replica still lagging").await;
    d.press(KeyCode::Enter).await;
    d.assert_sees("! at most 20m per extension");
    d.assert_sees("replica still lagging");
    assert!(matches!(d.app.dialog, Some(Dialog::Extend { .. })));
    // The focus is back on the field at fault. No reason: said next to the
    // reason field, in the console's words.
    d.ctrl('u').await;
    d.typed("15m").await;
    d.press(KeyCode::Tab).await;
    d.ctrl('u').await;
    d.press(KeyCode::Enter).await;
    d.assert_sees("! say why you need more time");
    assert!(!d.sees("--reason"));
    // The engine refuses (the grant ran out meanwhile): the dialog and the
    // typed reason stay, the refusal shows inside it.
    d.typed("replica still lagging").await;
    d.h.clock.advance(Duration::minutes(11));
    d.press(KeyCode::Enter).await;
    d.assert_sees("already expired");
    d.assert_sees("replica still lagging");
    assert!(matches!(d.app.dialog, Some(Dialog::Extend { .. })));
    let req = d.engine.load(r.id).await.unwrap();
    assert!(req.grant.unwrap().extensions.is_empty());
}

fn form_reason(d: &Driver) -> String {
    match &d.app.walk {
        breakglass::tui::app::Walk::Form(f) => f.reason.value.clone(),
        other => panic!("not on the form: {other:?}"),
    }
}

#[tokio::test]
async fn stepping_back_from_the_form_keeps_what_was_typed() {
    let mut d = console().await;
    to_form(&mut d, 3).await;
    d.press(KeyCode::Down).await;
    d.press(KeyCode::Tab).await;
    d.typed("primary is read-only").await;
    d.press(KeyCode::Esc).await;
    d.assert_sees("what you typed for prod-db-emergency-dba is kept");
    d.press(KeyCode::Enter).await; // the same role again
    d.assert_sees("Activation form");
    assert_eq!(form_reason(&d), "primary is read-only");
}

#[tokio::test]
async fn a_bad_manual_ticket_is_refused_when_entered_and_never_lost() {
    let mut d = console().await;
    d.press(KeyCode::Char('t')).await;
    d.typed("see slack").await;
    d.press(KeyCode::Enter).await;
    d.assert_sees("`see slack` is not a ticket any role takes");
    d.assert_sees("k8s-cluster-admin: ^(INC|CHG)-[0-9]+$");
    assert!(matches!(
        d.app.walk,
        breakglass::tui::app::Walk::Ticket { .. }
    ));
    d.ctrl('u').await;
    d.typed("INC-77").await;
    d.press(KeyCode::Enter).await;
    // A role that takes no manual ticket, or one whose pattern does not
    // match, is refused on the roles list, before any typing.
    d.press(KeyCode::Down).await; // k8s-cluster-admin
    d.press(KeyCode::Enter).await;
    d.assert_sees("Activation form");
    d.press(KeyCode::Down).await;
    d.press(KeyCode::Tab).await;
    d.typed("kubelet certificates expired").await;
    // Back to the roles, back to the ticket: both still there.
    d.press(KeyCode::Esc).await;
    d.press(KeyCode::Esc).await;
    match &d.app.walk {
        breakglass::tui::app::Walk::Ticket { input } => assert_eq!(input.value, "INC-77"),
        other => panic!("not on the ticket: {other:?}"),
    }
    d.press(KeyCode::Enter).await;
    d.press(KeyCode::Down).await;
    d.press(KeyCode::Enter).await;
    assert_eq!(form_reason(&d), "kubelet certificates expired");
}

#[tokio::test]
async fn a_review_sent_back_shows_the_certifiers_comment_and_keeps_the_answers() {
    let mut d = console().await;
    let (r, _) = d.h.active(DBA).await;
    d.h.engine.revoke("alice", r.id, "fixed").await.unwrap();
    d.h.engine.review("alice", r.id, answers()).await.unwrap();
    d.h.engine
        .decide(
            "dave",
            r.id,
            Decision::reject("say which tables you changed"),
        )
        .await
        .unwrap();
    d.refresh().await;
    d.press(KeyCode::Char('2')).await;
    d.press(KeyCode::Enter).await;
    d.assert_sees("After-action review of REQ-1");
    d.assert_sees("Sent back by dave at");
    d.assert_sees("say which tables you changed");
    // The form starts from what was submitted, not blank.
    d.assert_sees("promoted the replica");
    let f = d.app.review.as_ref().expect("the review form");
    assert_eq!((f.necessary, f.copied), (Some(true), Some(false)));
    // My access says it too, with the form closed.
    d.press(KeyCode::Esc).await;
    assert!(d.app.review.is_none());
    d.assert_sees("Sent back by dave at");
    d.assert_sees("say which tables you changed");
}

#[tokio::test]
async fn an_approval_can_carry_a_comment() {
    let mut d = Driver::new(harness(), "bob");
    d.refresh().await;
    let r = d.h.requested(DBA).await;
    d.refresh().await;
    d.press(KeyCode::Char('3')).await;
    d.press(KeyCode::Enter).await;
    d.assert_sees("c add a comment");
    d.press(KeyCode::Char('c')).await;
    // Letters are the comment now, not shortcuts (y, n, q).
    d.typed("checked the runbook, go ahead").await;
    d.assert_sees("comment (optional): checked the runbook, go ahead");
    d.press(KeyCode::Enter).await;
    let req = d.engine.load(r.id).await.unwrap();
    assert_eq!(req.approvals.len(), 1);
    assert_eq!(
        req.approvals[0].comment.as_deref(),
        Some("checked the runbook, go ahead")
    );
}

#[tokio::test]
async fn locked_roles_are_greyed_with_the_reason_and_cannot_be_picked() {
    let mut d = console().await;
    let (r, _) = d.h.active(K8S).await;
    d.refresh().await;
    d.press(KeyCode::Enter).await; // INC-1044
    d.assert_sees(&format!("locked: {} holds active access", r.id));
    d.press(KeyCode::Down).await;
    d.press(KeyCode::Enter).await;
    d.assert_sees("k8s-cluster-admin is locked");
    assert!(matches!(
        d.app.walk,
        breakglass::tui::app::Walk::Roles { .. }
    ));
}

#[tokio::test]
async fn own_requests_are_not_approvable_and_say_why() {
    let mut d = console().await;
    let r = d.h.requested(DBA).await;
    d.refresh().await;
    d.press(KeyCode::Char('3')).await;
    d.assert_sees("Approvals (0)");
    d.assert_sees("alice requested REQ-1 and cannot approve it");
    d.press(KeyCode::Enter).await;
    assert!(d.app.dialog.is_none());
    assert_eq!(d.engine.load(r.id).await.unwrap().approvals.len(), 0);
    // bob can; a denial needs a reason.
    d.press(KeyCode::Char('p')).await;
    d.press(KeyCode::Down).await;
    d.press(KeyCode::Enter).await;
    d.refresh().await;
    d.assert_sees("Approvals (1)");
    d.press(KeyCode::Char('d')).await;
    d.press(KeyCode::Enter).await;
    d.assert_sees("a denial needs a reason");
    d.typed("use the runbook").await;
    d.press(KeyCode::Enter).await;
    assert_eq!(d.engine.load(r.id).await.unwrap().state, State::Denied);
}

#[tokio::test]
async fn quitting_with_a_review_owed_opens_the_form_first() {
    let mut d = console().await;
    let (r, _) = d.h.active(K8S).await;
    d.h.engine.revoke("alice", r.id, "done").await.unwrap();
    d.refresh().await;
    d.press(KeyCode::Char('q')).await;
    assert!(!d.app.quitting);
    d.assert_sees("After-action review of REQ-1");
    d.assert_sees("owes its after-action review");
    d.typed("half written").await;
    d.press(KeyCode::Esc).await;
    assert_eq!(d.app.drafts[&r.id].actions_taken, "half written");
    d.press(KeyCode::Char('q')).await;
    assert!(d.app.quitting);
}

#[tokio::test]
async fn only_a_submitted_review_clears_its_form_and_draft() {
    use breakglass::tui::app::{Msg, Verb};
    let mut d = console().await;
    let (r, _) = d.h.active(K8S).await;
    d.h.engine.revoke("alice", r.id, "done").await.unwrap();
    d.refresh().await;
    d.press(KeyCode::Char('q')).await;
    d.typed("half written").await;
    d.press(KeyCode::Esc).await;
    d.press(KeyCode::Enter).await;
    assert!(d.app.review.is_some(), "Enter reopens the draft");
    let req = d.engine.load(r.id).await.unwrap();

    // Another outcome for the same request leaves the form and draft alone.
    let cmds = d.app.update(Msg::Acted(Verb::Certified, Ok(req.clone())));
    d.run(cmds).await;
    assert!(d.app.review.is_some());
    assert!(d.app.drafts.contains_key(&r.id));

    let cmds = d.app.update(Msg::Acted(Verb::Reviewed, Ok(req)));
    d.run(cmds).await;
    assert!(d.app.review.is_none());
    assert!(!d.app.drafts.contains_key(&r.id));
    d.assert_sees("REQ-1 reviewed");
}

#[tokio::test]
async fn a_revocation_that_keeps_failing_is_shown_loudly() {
    let mut d = console().await;
    let (r, _) = d.h.active(K8S).await;
    // Simulate the backend failing: the store says Revoking with an error.
    let mut req = d.engine.load(r.id).await.unwrap();
    let now = d.h.clock_now();
    let owner = breakglass::domain::Owner {
        host: "h".into(),
        pid: 1,
    };
    let ev =
        breakglass::domain::lifecycle::begin_revoke(&mut req, "alice", "done", now, now, owner)
            .unwrap();
    let req = d.h.store.commit(&req, &ev, &[], now).unwrap();
    let mut req2 = req.clone();
    let ev = breakglass::domain::lifecycle::revoke_failed(
        &mut req2,
        "alice",
        "target \u{1b}[31munreachable",
        now,
    )
    .unwrap();
    d.h.store.commit(&req2, &ev, &[], now).unwrap();
    d.refresh().await;
    d.press(KeyCode::Char('2')).await;
    d.press(KeyCode::Enter).await;
    d.assert_sees("REVOCATION NOT CONFIRMED");
    d.assert_sees("last error: target unreachable");
}

#[tokio::test]
async fn hostile_text_never_reaches_the_screen_buffer() {
    let h = harness();
    std::fs::write(
        h.dir().join("incidents.toml"),
        "[[incidents]]\nid = \"INC-1\"\ntitle = \"DB \\u001b]0;pwned\\u0007\\u001b[2J\\u001b[31mdown\\u009b31m \\u202eevil\"\nseverity = \"SEV1\"\n",
    )
    .unwrap();
    let mut d = Driver::new(h, "alice");
    d.refresh().await;
    d.assert_sees("DB down evil");
    let b = d.buffer(100, 30);
    for c in b.content() {
        assert!(
            !c.symbol()
                .chars()
                .any(|ch| ch.is_control() || ch == '\u{202e}'),
            "control char {:?} in the buffer",
            c.symbol()
        );
    }
}

#[tokio::test]
async fn small_terminals_get_a_notice_and_80x24_fits() {
    let mut d = console().await;
    assert!(d.screen(79, 24).contains("Terminal too small: 79x24"));
    assert!(d.screen(80, 23).contains("needs at least 80x24"));
    let s = d.screen(80, 24);
    assert!(s.contains("INC-1042") && s.contains("alice"), "{s}");
    // Every screen renders at the minimum size and at odd sizes without panicking.
    let (r, _) = d.h.active(DBA).await;
    d.refresh().await;
    for key in ['1', '2', '3', '4', '5', '?'] {
        d.press(KeyCode::Char(key)).await;
        for (w, h) in [(80, 24), (81, 25), (200, 60), (20, 5), (1, 1)] {
            d.buffer(w, h);
        }
        d.press(KeyCode::Esc).await;
    }
    d.app.focus = Some(r.id);
    d.app.tab = breakglass::tui::app::Tab::MyAccess;
    let s = d.screen(80, 24);
    assert!(s.contains("left of"), "{s}");
}

#[tokio::test]
async fn the_help_overlay_lists_the_keys_of_the_screen() {
    let mut d = console().await;
    d.press(KeyCode::Char('?')).await;
    d.assert_sees("/                   filter as you type");
    d.assert_sees("switch demo persona");
    d.press(KeyCode::Char('x')).await;
    assert!(!d.app.help);
}

#[tokio::test]
async fn the_incident_filter_narrows_as_you_type() {
    let mut d = console().await;
    d.press(KeyCode::Char('/')).await;
    d.typed("replica").await;
    d.assert_sees("INC-1043");
    assert!(!d.sees("INC-1042"));
    d.press(KeyCode::Enter).await;
    d.press(KeyCode::Enter).await;
    d.assert_sees("for INC-1043");
}

/// The filter's matches are computed once per change of the filter text or of
/// the incidents (typing with 10,000 incidents was 93% of the console's CPU
/// when every key and every frame filtered them again).
#[tokio::test]
async fn the_incident_filter_is_computed_once_per_change_not_per_frame() {
    use breakglass::tui::app::Msg;
    let mut d = console().await;
    let computed = |d: &Driver| d.app.incident_filter.computed;
    let start = computed(&d);
    d.press(KeyCode::Char('/')).await;
    assert_eq!(computed(&d), start, "starting to filter changes no text");
    d.typed("rep").await;
    assert_eq!(computed(&d), start + 3, "one computation per character");
    for _ in 0..5 {
        d.assert_sees("INC-1043");
    }
    assert!(!d.sees("INC-1042"));
    assert_eq!(computed(&d), start + 3, "drawing does not filter");
    d.tick().await;
    assert_eq!(computed(&d), start + 3, "a tick does not filter");

    // The watcher's reload brings the same incidents: nothing is recomputed.
    let snap = breakglass::tui::snapshot(&d.service("alice"), "alice").await;
    d.app.update(Msg::Loaded(Box::new(snap.clone())));
    assert_eq!(computed(&d), start + 3, "same incidents, same matches");

    // New incidents: matched again, once, and shown.
    let mut changed = snap;
    let mut extra = changed.incidents[0].clone();
    extra.id = "INC-7777".into();
    extra.title = "Replica promotion stuck".into();
    changed.incidents.push(extra);
    d.app.update(Msg::Loaded(Box::new(changed)));
    assert_eq!(computed(&d), start + 4);
    d.assert_sees("INC-7777");
    d.assert_sees("INC-1043");

    // Backspace widens the filter again; Esc clears it.
    d.press(KeyCode::Backspace).await;
    d.press(KeyCode::Backspace).await;
    d.press(KeyCode::Backspace).await;
    assert_eq!(computed(&d), start + 7);
    d.assert_sees("INC-1042");
    d.typed("7777").await;
    d.assert_sees("INC-7777");
    assert!(!d.sees("INC-1043"));
    d.press(KeyCode::Esc).await;
    d.assert_sees("INC-1042");
    d.assert_sees("INC-1043");
}

/// The watcher keeps the Audit tab's events and fetches only those after the
/// newest it holds; what it shows is what a full load shows.
#[tokio::test]
async fn the_watcher_fetches_only_the_audit_events_it_does_not_hold() {
    use breakglass::tui::{snapshot, snapshot_with, AuditRows};
    let d = console().await;
    let svc = d.service("alice");
    let r = d.h.approved(K8S).await;
    let mut rows = AuditRows::default();
    let first = snapshot_with(&svc, "alice", &mut rows).await;
    assert!(first.audit.len() >= 2, "{:?}", first.audit);
    assert_eq!(rows.fetched(), first.audit.len(), "the first load is whole");

    let unchanged = snapshot_with(&svc, "alice", &mut rows).await;
    assert_eq!(rows.fetched(), 0);
    assert_eq!(unchanged.audit, first.audit);

    d.h.engine.activate("alice", r.id).await.unwrap();
    let next = snapshot_with(&svc, "alice", &mut rows).await;
    let whole = snapshot(&svc, "alice").await;
    assert!(next.audit.len() > first.audit.len());
    assert_eq!(rows.fetched(), next.audit.len() - first.audit.len());
    assert_eq!(next.audit, whole.audit, "the same events as a full load");
    assert_eq!(next.audit_head, whole.audit_head);

    // Another store (a broker restarted on another file, say) whose log is
    // shorter, then longer, than the events held: the whole tail again.
    let other = Driver::new(harness(), "alice");
    let other_svc = other.service("alice");
    let mine = snapshot_with(&other_svc, "alice", &mut rows).await;
    assert_eq!(mine.audit, snapshot(&other_svc, "alice").await.audit);
    assert_eq!(rows.fetched(), mine.audit.len());
    for _ in 0..3 {
        let r = other.h.approved(K8S).await;
        other.h.engine.cancel("alice", r.id).await.unwrap();
    }
    let longer = snapshot(&svc, "alice").await;
    let mut rows = AuditRows::default();
    snapshot_with(&svc, "alice", &mut rows).await;
    let now_other = snapshot_with(&other_svc, "alice", &mut rows).await;
    assert!(now_other.audit.len() > longer.audit.len());
    assert_eq!(rows.fetched(), now_other.audit.len());
    assert_eq!(now_other.audit, snapshot(&other_svc, "alice").await.audit);
}

#[tokio::test]
async fn a_backend_call_in_flight_shows_a_spinner_then_its_error() {
    use breakglass::tui::app::{Cmd, Msg};
    let mut d = console().await;
    let r = d.h.approved(K8S).await;
    d.app.tab = breakglass::tui::app::Tab::MyAccess;
    d.app.focus = Some(r.id);
    // The refresh arrives; the app asks for activation and shows it is busy.
    let snap = breakglass::tui::snapshot(&d.service("alice"), "alice").await;
    let cmds = d.app.update(Msg::Loaded(Box::new(snap)));
    assert!(cmds
        .iter()
        .any(|c| matches!(c, Cmd::Activate(id) if *id == r.id)));
    d.assert_sees("| REQ-1 approved: granting access...");
    // Ticks keep coming while the call runs: the spinner turns.
    d.app.update(Msg::Tick(d.h.clock_now()));
    d.assert_sees("/ REQ-1 approved: granting access...");
    // A second refresh while in flight does not start a second grant.
    let snap = breakglass::tui::snapshot(&d.service("alice"), "alice").await;
    assert!(!d
        .app
        .update(Msg::Loaded(Box::new(snap)))
        .iter()
        .any(|c| matches!(c, Cmd::Activate(_))));
    // The backend fails: a clear error, no spinner.
    d.app.update(Msg::Activated(
        r.id,
        Err("backend demo: target \u{1b}[2Jrefused".into()),
    ));
    d.assert_sees("backend demo: target refused");
    assert!(d.app.busy.is_none());
}

#[tokio::test]
async fn a_load_for_the_previous_persona_is_not_shown_as_the_new_ones() {
    use breakglass::tui::app::Msg;
    let mut d = console().await;
    d.h.requested(K8S).await;
    let stale = breakglass::tui::snapshot(&d.service("alice"), "alice").await;
    d.press(KeyCode::Char('p')).await;
    d.press(KeyCode::Down).await;
    d.press(KeyCode::Enter).await; // now bob; his own load already ran
    assert_eq!(d.app.me, "bob");
    assert!(d.app.data.mine.is_empty());
    // alice's load, started before the switch, arrives late: dropped.
    d.app.update(Msg::Loaded(Box::new(stale)));
    assert!(
        d.app.data.mine.is_empty(),
        "bob must not see alice's requests as his"
    );
}

fn vendor_key(d: &mut Driver, c: char) -> Vec<breakglass::tui::app::Cmd> {
    d.app.update(breakglass::tui::app::Msg::Key(
        crossterm::event::KeyEvent::from(KeyCode::Char(c)),
    ))
}

#[tokio::test]
async fn vendor_access_is_opened_by_the_person_and_certified_only_after_watching() {
    use breakglass::tui::app::Cmd;
    let h = harness_edited(|t| t.push_str(&vendor_role("")), |_| {});
    let r = h.vendor_request().await;
    // bob sees who the outside party is before deciding.
    let mut d = Driver::new(h, "bob");
    d.refresh().await;
    d.press(KeyCode::Char('3')).await;
    d.assert_sees("vendor        Vera Vendor (DB Corp)");
    d.h.engine
        .decide("bob", r.id, Decision::approve(None))
        .await
        .unwrap();
    d.app.me = "alice".into();
    d.app.tab = breakglass::tui::app::Tab::MyAccess;
    d.app.focus = Some(r.id);
    d.refresh().await;
    // Not activated behind the person's back: the session is theirs to open.
    assert_eq!(d.h.state(r.id), State::Approved);
    assert!(
        !matches!(d.app.flash, Some((breakglass::tui::app::Level::Error, _))),
        "{:?}",
        d.app.flash
    );
    d.assert_sees("press s to open it");
    let cmds = vendor_key(&mut d, 's');
    assert!(matches!(cmds.as_slice(), [Cmd::Shell(id)] if *id == r.id));

    // What `breakglass shell` does, then alice reviews.
    d.h.engine.activate_for_shell("alice", r.id).await.unwrap();
    // Seen from this console while the session runs elsewhere.
    d.refresh().await;
    d.assert_sees("only inside the recorded vendor session");
    assert!(vendor_key(&mut d, 's').is_empty());
    d.assert_sees("open in another terminal");
    d.h.vendor_session_ended(r.id).await;

    d.app.me = "dave".into();
    d.refresh().await;
    d.press(KeyCode::Char('4')).await;
    d.assert_sees("watch it before certifying (w)");
    assert!(vendor_key(&mut d, 'c').is_empty());
    assert!(d.app.dialog.is_none(), "certify opened before watching");
    d.assert_sees("watch its recording first");
    let cmds = vendor_key(&mut d, 'w');
    assert!(matches!(cmds.as_slice(), [Cmd::Replay(id)] if *id == r.id));

    // What `breakglass replay` records; now certify opens.
    d.h.engine
        .audit_note(
            r.id,
            breakglass::domain::AuditAction::SessionReplayed,
            "dave",
            serde_json::json!({}),
        )
        .await
        .unwrap();
    d.refresh().await;
    d.assert_sees("you watched it");
    d.press(KeyCode::Char('c')).await;
    assert!(matches!(
        d.app.dialog,
        Some(breakglass::tui::app::Dialog::Certify { .. })
    ));
}

/// The Approvals tab's label cell on the top row, and whether it is drawn reversed.
fn approvals_tab_reversed(d: &Driver) -> bool {
    let b = d.buffer(100, 30);
    let row: String = (0..100).map(|x| b[(x, 0)].symbol().to_string()).collect();
    let x = row.find("Approvals (").expect("the Approvals tab") as u16;
    b[(x, 0)]
        .modifier
        .contains(ratatui::style::Modifier::REVERSED)
}

/// An open console rings the terminal bell once when a request arrives that
/// this person may approve, and flashes the Approvals tab; not for what was
/// already waiting when it opened, not again on later loads, never for the
/// person's own request, and not at all with `[ui] approval_bell = false`.
#[tokio::test]
async fn a_new_request_to_approve_rings_once_and_flashes_the_approvals_tab() {
    let h = harness();
    let waiting = h.requested(K8S).await;
    let mut bob = Driver::new(h, "bob");
    bob.refresh().await;
    assert_eq!(bob.bells, 0, "{} was waiting before: no news", waiting.id);
    assert!(!approvals_tab_reversed(&bob));

    let r = bob.h.requested(DBA).await;
    bob.refresh().await;
    assert_eq!(bob.bells, 1, "one bell for {}", r.id);
    bob.assert_sees(&format!(
        "{} waiting for your approval: Approvals (3)",
        r.id
    ));
    assert!(approvals_tab_reversed(&bob), "the tab flashes");
    for _ in 0..3 {
        bob.refresh().await;
    }
    assert_eq!(bob.bells, 1, "once per request");
    // carol approving it changes nothing for bob's bell.
    bob.h
        .engine
        .decide("carol", r.id, Decision::approve(None))
        .await
        .unwrap();
    bob.refresh().await;
    assert_eq!(bob.bells, 1);
    bob.h.clock.advance(Duration::seconds(11));
    bob.tick().await;
    assert!(!approvals_tab_reversed(&bob), "the flash ends");

    // bob's own request: on his Approvals tab (blocked), no bell.
    let own = bob
        .h
        .engine
        .request("bob", input(K8S, inc("INC-1042")))
        .await
        .unwrap();
    bob.refresh().await;
    assert!(bob
        .app
        .data
        .approvals
        .iter()
        .any(|q| q.request.id == own.id));
    assert_eq!(bob.bells, 1, "never for one's own request");
    assert!(!approvals_tab_reversed(&bob));

    // With the bell off the tab still flashes, silently.
    bob.app.approval_bell = false;
    let quiet = bob.h.requested(PLUGIN_ROLE).await;
    bob.refresh().await;
    assert_eq!(bob.bells, 1, "{}: no bell when it is off", quiet.id);
    assert!(approvals_tab_reversed(&bob));
}

/// The waiting screen names who approves (the policy's groups and their
/// people) and who already did; an approver's flash after one approval of two
/// says how far it got, not "approved".
#[tokio::test]
async fn waiting_names_who_approves_and_the_flash_counts_approvals() {
    let h = harness();
    let r = h.requested(DBA).await;
    let mut bob = Driver::new(h, "bob");
    bob.refresh().await;
    bob.press(KeyCode::Char('3')).await;
    bob.assert_sees(&r.id.to_string());
    bob.press(KeyCode::Char('a')).await;
    bob.press(KeyCode::Char('y')).await;
    assert_eq!(bob.engine.load(r.id).await.unwrap().approvals.len(), 1);
    bob.assert_sees(&format!("{}: 1 of 2 approvals", r.id));
    assert!(!bob.sees(&format!("{} approved", r.id)));

    let mut alice = Driver::new(bob.h, "alice");
    alice.refresh().await;
    alice.press(KeyCode::Char('2')).await;
    alice.press(KeyCode::Enter).await;
    alice.assert_sees("1 of 2 approvals");
    alice.assert_sees("who approves");
    alice.assert_sees("@sre-leads (bob, carol, dave)");
    alice.assert_sees("approved by   bob");
}

/// A locked role says who can clear it; the Reviews tab tells someone who
/// certifies nothing that it is not theirs, and whose it is.
#[tokio::test]
async fn locks_and_reviews_say_who_acts_next() {
    let h = harness();
    let (r, _) = h.active(DBA).await;
    h.engine.revoke("alice", r.id, "fixed").await.unwrap();
    h.engine.review("alice", r.id, answers()).await.unwrap();
    let mut bob = Driver::new(h, "bob");
    bob.refresh().await;
    bob.press(KeyCode::Enter).await; // the first incident
    for _ in 0..3 {
        bob.press(KeyCode::Down).await; // prod-db-emergency-dba
    }
    // The row says it as far as it fits, the detail in full.
    bob.assert_sees("locked: awaiting certification of…");
    bob.assert_sees(&format!("awaiting certification of {} by @security", r.id));
    bob.press(KeyCode::Char('4')).await;
    bob.assert_sees("bob certifies no role: reviews are certified by @security (dave).");

    let mut dave = Driver::new(bob.h, "dave");
    dave.refresh().await;
    dave.press(KeyCode::Char('4')).await;
    assert!(!dave.sees("certifies no role"));
    dave.assert_sees("ready for you");
}

/// A console opened (or restarted) while this person holds live access opens
/// on it, and every tab's status bar carries its countdown.
#[tokio::test]
async fn live_access_opens_the_console_and_stays_in_the_status_bar() {
    let h = harness();
    let (r, _) = h.active(DBA).await;
    let mut alice = Driver::new(h, "alice");
    alice.refresh().await;
    assert_eq!(alice.app.focus, Some(r.id), "opens on the live access");
    alice.assert_sees("left of 15m");
    let badge = format!("● {} live 00:15:00", r.id);
    let status = |d: &Driver| d.screen(100, 30).lines().last().unwrap().to_string();
    assert!(status(&alice).contains(&badge), "{}", status(&alice));
    for tab in ['1', '3', '4', '5'] {
        alice.press(KeyCode::Char(tab)).await;
        alice.h.clock.advance(Duration::seconds(60));
        alice.tick().await;
        assert!(
            status(&alice).contains(&format!("● {} live", r.id)),
            "{}",
            status(&alice)
        );
    }
    assert!(
        status(&alice).contains("00:11:00"),
        "counts down: {}",
        status(&alice)
    );
    alice.h.engine.revoke("alice", r.id, "done").await.unwrap();
    alice.refresh().await;
    assert!(!status(&alice).contains("●"), "{}", status(&alice));
}

/// Access activated in this console then expired: the "is active" flash does
/// not outlive it in the bottom bar.
#[tokio::test]
async fn an_expired_grant_leaves_no_stale_active_message() {
    let h = harness();
    let r = h.requested(K8S).await;
    let mut alice = Driver::new(h, "alice");
    alice.refresh().await;
    alice.press(KeyCode::Char('2')).await;
    alice.press(KeyCode::Enter).await;
    assert_eq!(alice.app.focus, Some(r.id));
    alice
        .h
        .engine
        .decide("bob", r.id, Decision::approve(None))
        .await
        .unwrap();
    alice.refresh().await; // approved: the console activates it
    alice.assert_sees(&format!("{} is active", r.id));
    alice.h.clock.advance(Duration::hours(2));
    alice.h.engine.recover().await.unwrap();
    alice.refresh().await;
    assert_ne!(alice.engine.load(r.id).await.unwrap().state, State::Active);
    assert!(
        !alice.sees(&format!("{} is active", r.id)),
        "{}",
        alice.screen(100, 30)
    );
}

/// What the certifier decides on is on the Reviews tab: the reason, the time
/// window, extensions, the incident, and the answers that need attention
/// marked; the audit tab shows the selected event's detail; the demo persona
/// switcher says what each persona does.
#[tokio::test]
async fn the_certifier_sees_what_matters_and_the_audit_shows_details() {
    let h = harness();
    let (r, _) = h.active(DBA).await;
    h.engine
        .extend("alice", r.id, 300, "replica catching up")
        .await
        .unwrap();
    h.engine.revoke("alice", r.id, "fixed").await.unwrap();
    let mut a = answers();
    a.access_necessary = false;
    a.credentials_copied = true;
    a.credentials_copied_where = "my laptop".into();
    h.engine.review("alice", r.id, a).await.unwrap();
    let mut dave = Driver::new(h, "dave");
    dave.refresh().await;
    dave.press(KeyCode::Char('4')).await;
    dave.assert_sees("INC-1042");
    dave.assert_sees("window");
    dave.assert_sees("+5m (replica catching up)");
    dave.assert_sees(&format!("by alice for: {}", r.reason));
    dave.assert_sees("⚠ access necessary: no");
    dave.assert_sees("⚠ credentials copied: yes (my laptop)");
    let b = dave.buffer(100, 30);
    let screen = dave.screen(100, 30);
    let y = screen
        .lines()
        .position(|l| l.contains("⚠ access necessary"))
        .unwrap() as u16;
    let x = screen.lines().nth(y as usize).unwrap().find('⚠').unwrap();
    let x = screen.lines().nth(y as usize).unwrap()[..x].chars().count() as u16;
    assert!(
        b[(x, y)]
            .modifier
            .contains(ratatui::style::Modifier::REVERSED),
        "highlighted as needing attention"
    );

    dave.press(KeyCode::Char('5')).await;
    dave.press(KeyCode::End).await;
    dave.assert_sees("detail");
    let shown = dave.app.data.audit[dave.app.audit_scroll].clone();
    dave.assert_sees(&format!("event #{} detail", shown.seq));

    dave.press(KeyCode::Char('p')).await;
    dave.assert_sees("alice    requester");
    dave.assert_sees("bob      requester, approver");
    dave.assert_sees("dave     approver, certifier");
}

/// Copied credentials: the Reviews tab shows where they went and what the
/// backend did about it, marked while it is pending, and certifying says why
/// it waits.
#[tokio::test]
async fn the_certifier_sees_the_invalidation_of_copied_credentials() {
    let h = harness();
    let (r, _) = h.active(DBA).await;
    h.engine.revoke("alice", r.id, "fixed").await.unwrap();
    let mut a = answers();
    a.credentials_copied = true;
    a.credentials_copied_where = "my laptop scratch file".into();
    h.engine.review("alice", r.id, a).await.unwrap();
    let mut dave = Driver::new(h, "dave");
    dave.refresh().await;
    dave.press(KeyCode::Char('4')).await;
    dave.assert_sees("⚠ credentials copied: yes (my laptop scratch file)");
    dave.assert_sees("invalidation");
    dave.assert_sees("revoked again by request id");

    // A pending one is marked as needing attention, and blocks certifying.
    let h = harness();
    let (r, _) = h.active(DBA).await;
    h.engine.revoke("alice", r.id, "fixed").await.unwrap();
    // The console's engine has lost its backends: the attempt fails and is kept.
    let mut dave = Driver::new_with(h, "dave", |p| p.backends.clear());
    let mut a = answers();
    a.credentials_copied = true;
    a.credentials_copied_where = "a pastebin".into();
    let reviewed = dave.engine.review("alice", r.id, a).await.unwrap();
    assert!(reviewed.invalidation.as_ref().unwrap().pending());
    dave.refresh().await;
    dave.press(KeyCode::Char('4')).await;
    dave.assert_sees("PENDING");
    let screen = dave.screen(120, 40);
    let b = dave.buffer(120, 40);
    let y = screen.lines().position(|l| l.contains("PENDING")).unwrap();
    let line = screen.lines().nth(y).unwrap();
    let x = line[..line.find("PENDING").unwrap()].chars().count() as u16;
    assert!(
        b[(x, y as u16)]
            .modifier
            .contains(ratatui::style::Modifier::REVERSED),
        "highlighted as needing attention"
    );
    dave.assert_sees("breakglass sweep");
}

/// At 80x24: the tab bar keeps the product name, the hint bar keeps the
/// submit key (dropping movement first), long titles end with an ellipsis
/// at a word, and a long message wraps instead of running off the edge.
#[tokio::test]
async fn at_80x24_nothing_important_falls_off() {
    let mut d = console().await;
    let s = d.screen(80, 24);
    let top = s.lines().next().unwrap();
    assert!(
        top.starts_with("breakglass") && top.contains("DEMO"),
        "{top}"
    );
    // Rows cut at a word with an ellipsis: every cut title ends with "…"
    // right after a whole word of the incident's title.
    for i in &d.app.data.incidents {
        if let Some(row) = s.lines().find(|l| l.contains(&i.id)) {
            let shown = row
                .rsplit("  ")
                .next()
                .unwrap()
                .trim_end_matches('│')
                .trim();
            if let Some(cut) = shown.strip_suffix('…') {
                let title = breakglass::sanitize::line(&i.title, 500);
                assert!(title.starts_with(cut), "{shown} vs {title}");
                let next = title[cut.len()..].chars().next();
                assert!(
                    next.is_some_and(|c| !c.is_alphanumeric()),
                    "cut mid-word: {shown}"
                );
            }
        }
    }
    to_form(&mut d, 0).await;
    let s = d.screen(80, 24);
    let hint = s.lines().nth(22).unwrap();
    assert!(hint.contains("Ctrl-S continue to confirm"), "{hint}");
    assert!(hint.contains("? keys"), "{hint}");
    // The focused field's own key stays; moving between fields goes first.
    assert!(hint.contains("Up/Down choose the condition"), "{hint}");
    assert!(
        !hint.contains("Tab/Shift-Tab"),
        "movement goes first: {hint}"
    );

    d.app.flash = Some((
        breakglass::tui::app::Level::Warn,
        "REQ-7 owes its after-action review: My access (2), then Enter; the role stays locked until it is certified".into(),
    ));
    let s = d.screen(80, 24);
    assert!(s.contains("certified"), "the warning wraps:\n{s}");
}

/// The store says active a moment before the grant's answer (with the
/// credential) reaches the console: the screen says it is on its way, never
/// that it was shown elsewhere.
#[tokio::test]
async fn a_credential_on_its_way_is_not_called_shown_elsewhere() {
    use breakglass::tui::app::{Cmd, Msg};
    let mut d = console().await;
    let r = d.h.approved(K8S).await;
    d.app.tab = breakglass::tui::app::Tab::MyAccess;
    d.app.focus = Some(r.id);
    let snap = breakglass::tui::snapshot(&d.service("alice"), "alice").await;
    let cmds = d.app.update(Msg::Loaded(Box::new(snap)));
    assert!(cmds
        .iter()
        .any(|c| matches!(c, Cmd::Activate(id) if *id == r.id)));
    // The grant lands (another task's call) and a refresh shows it active first.
    let (_, cred) = d.h.engine.activate("alice", r.id).await.unwrap();
    let snap = breakglass::tui::snapshot(&d.service("alice"), "alice").await;
    d.app.update(Msg::Loaded(Box::new(snap)));
    d.assert_sees("the credential is on its way");
    assert!(!d.sees("not in this console"), "{}", d.screen(100, 30));
    let active = d.h.engine.load(r.id).await.unwrap();
    d.app.update(Msg::Activated(r.id, Ok((active, cred))));
    d.assert_sees("••••••••••••");
}

/// An extension that comes with a new credential (ssh-ca: a certificate with
/// the later expiry; the old one is revoked) replaces the one the console
/// holds, masked again; one without leaves the held one alone.
#[tokio::test]
async fn an_extensions_new_credential_replaces_the_one_shown() {
    use breakglass::backend::Credential;
    use breakglass::tui::app::Msg;
    use secrecy::{ExposeSecret, SecretString};
    let mut d = console().await;
    let (r, cred) = d.h.active(K8S).await;
    d.app.update(Msg::Activated(
        r.id,
        Ok((d.h.engine.load(r.id).await.unwrap(), cred)),
    ));
    d.app.revealed = true;
    let extended =
        d.h.engine
            .extend("alice", r.id, 300, "replica catching up")
            .await
            .unwrap();
    let new = Credential(vec![(
        "certificate".into(),
        SecretString::from("ssh-ed25519-cert-v01@openssh.com NEW".to_string()),
    )]);
    d.app
        .update(Msg::Extended(Ok((extended.clone(), Some(new)))));
    assert!(
        !d.app.revealed,
        "a new credential is masked until asked for"
    );
    let held = |d: &Driver| {
        let (id, c) = d.app.credential.as_ref().expect("a credential is held");
        assert_eq!(*id, r.id);
        c.0.iter()
            .map(|(k, v)| format!("{k}={}", v.expose_secret()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        held(&d),
        ["certificate=ssh-ed25519-cert-v01@openssh.com NEW"]
    );
    d.app.update(Msg::Extended(Ok((extended, None))));
    assert_eq!(
        held(&d),
        ["certificate=ssh-ed25519-cert-v01@openssh.com NEW"]
    );
}

/// Every key a screen lists does what the listing says: no binding is
/// shadowed by an earlier one that takes the same key, on every screen of
/// the walk and the queues. The handlers act only on these actions, so the
/// overlay and the hint bar cannot drift from them.
#[tokio::test]
async fn the_keys_shown_are_the_keys_handled() {
    use breakglass::tui::app::keymap::{self, Key};
    use crossterm::event::{KeyEvent, KeyModifiers};
    fn event(k: Key) -> KeyEvent {
        match k {
            Key::Code(c) => KeyEvent::new(c, KeyModifiers::NONE),
            Key::Char(c) => KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE),
            Key::Ctrl(c) => KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL),
        }
    }
    fn consistent(d: &Driver, screen: &str) {
        for list in [keymap::global(&d.app), keymap::bindings(&d.app)] {
            for b in &list {
                for &k in b.keys {
                    assert_eq!(
                        keymap::action_in(&list, &event(k)),
                        Some(b.action),
                        "{screen}: {k:?} is listed as `{} {}` but another binding takes it",
                        b.label,
                        b.what
                    );
                }
            }
        }
        // What the hint bar shows comes from the same bindings.
        let hint = keymap::hints(&d.app, 500);
        for b in keymap::shown(&keymap::bindings(&d.app)) {
            assert!(
                hint.contains(b.what),
                "{screen}: `{}` not in `{hint}`",
                b.what
            );
        }
    }
    let mut d = console().await;
    consistent(&d, "incidents");
    d.typed("/").await;
    consistent(&d, "filtering");
    d.press(KeyCode::Enter).await;
    to_form(&mut d, 3).await;
    consistent(&d, "form: condition");
    d.press(KeyCode::Tab).await;
    consistent(&d, "form: reason");
    d.press(KeyCode::Tab).await;
    consistent(&d, "form: TTL");
    assert!(keymap::hints(&d.app, 500).contains("Up/Down the role's TTL presets"));
    d.press(KeyCode::Tab).await;
    consistent(&d, "form: continue");
    for tab in ['2', '3', '4', '5'] {
        d.press(KeyCode::Esc).await;
        d.typed(&tab.to_string()).await;
        consistent(&d, &format!("tab {tab}"));
    }
}

/// Routine use in the console: the roles list says where a request would
/// stand, the confirmation and the waiting screen ask for (and count) the
/// extra approval, and the approvers' queue says it beside the request.
#[tokio::test]
async fn routine_use_shows_its_count_and_waits_for_the_extra_approval() {
    let h = crate::routine_use::k8s_with("max_activations = \"1/30d\"");
    let first = h
        .engine
        .request("alice", input(K8S, inc("INC-1042")))
        .await
        .unwrap();
    crate::routine_use::use_once(&h, first).await;
    let mut d = Driver::new(h, "alice");
    d.refresh().await;
    d.assert_sees("Pick the incident");
    d.press(KeyCode::Down).await;
    d.press(KeyCode::Enter).await;
    d.press(KeyCode::Down).await; // k8s-cluster-admin
    d.assert_sees("routine use");
    d.assert_sees("a request now would be the 2nd activation in 30 days");
    d.press(KeyCode::Enter).await;
    d.assert_sees("Activation form");
    d.press(KeyCode::Down).await; // condition: production outage
    d.press(KeyCode::Tab).await;
    d.typed("the cluster autoscaler is stuck again").await;
    d.ctrl('s').await;
    d.assert_sees("2 other person(s) must approve: one more than usual");
    d.typed(K8S).await;
    d.press(KeyCode::Enter).await;
    d.assert_sees("0 of 2 approvals");
    d.assert_sees("2nd activation in 30 days (more than 1: one extra approval)");
    let id = d.app.focus.unwrap();

    // bob's approvals queue says it beside the request; his approval is one of two.
    let mut bob = Driver::new(d.h, "bob");
    bob.refresh().await;
    bob.press(KeyCode::Char('3')).await;
    bob.assert_sees(&id.to_string());
    bob.assert_sees("0 of 2");
    bob.assert_sees("routine use");
    bob.assert_sees("2nd activation in 30 days (more than 1: one extra approval)");
    bob.press(KeyCode::Char('a')).await;
    bob.press(KeyCode::Char('y')).await;
    bob.assert_sees(&format!("{id}: 1 of 2 approvals"));
    assert_eq!(bob.engine.load(id).await.unwrap().state, State::Pending);
    bob.h
        .engine
        .decide("carol", id, Decision::approve(None))
        .await
        .unwrap();
    assert_eq!(bob.engine.load(id).await.unwrap().state, State::Approved);
}

/// The demo persona switcher says a service account is automation, not a person.
#[tokio::test]
async fn the_persona_switcher_names_a_service_account_as_automation() {
    let h = harness_edited(
        |t| {
            *t = t
                .replace(
                    "personas = [\"alice\", \"bob\", \"carol\", \"dave\"]",
                    "personas = [\"alice\", \"bob\", \"carol\", \"dave\", \"svc-failover\"]",
                )
                .replace(
                    "certifiers = [\"@security\"]\n\n[[roles]]\nname = \"payments-api-operator\"",
                    "certifiers = [\"@security\"]\nautomation = [\"svc-failover\"]\nauto_approve_conditions = [\"failed automation path\"]\n\n[[roles]]\nname = \"payments-api-operator\"",
                );
            assert!(t.contains("automation = [\"svc-failover\"]"), "k8s moved");
        },
        |_| {},
    );
    let mut d = Driver::new(h, "alice");
    d.refresh().await;
    d.press(KeyCode::Char('p')).await;
    d.assert_sees("alice    requester");
    d.assert_sees("svc-failover automation (service account)");
}

/// A key file in a credential (ssh-ca's private key) is shown line by line
/// once revealed, cleaned of escapes, so it can be copied into a file as is.
#[tokio::test]
async fn a_multi_line_credential_keeps_its_lines_when_revealed() {
    use breakglass::backend::Credential;
    use breakglass::tui::app::Msg;
    use secrecy::SecretString;
    let mut d = console().await;
    let (r, _) = d.h.active(K8S).await;
    let key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\x1b[31mBBBB\n-----END OPENSSH PRIVATE KEY-----\n";
    let cred = Credential(vec![(
        "private_key".into(),
        SecretString::from(key.to_string()),
    )]);
    d.app.update(Msg::Activated(
        r.id,
        Ok((d.h.engine.load(r.id).await.unwrap(), cred)),
    ));
    d.press(KeyCode::Char('2')).await;
    d.press(KeyCode::Enter).await;
    assert!(!d.sees("BEGIN OPENSSH"), "masked until asked for");
    d.press(KeyCode::Char('r')).await;
    let s = d.screen(100, 30);
    let lines: Vec<&str> = s.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains("-----BEGIN OPENSSH PRIVATE KEY-----"))
        .expect("the key's first line");
    assert!(lines[at + 1].contains("b3BlbnNzaC1rZXktdjEAAAAA"), "{s}");
    assert!(
        lines[at + 2].contains("-----END OPENSSH PRIVATE KEY-----"),
        "{s}"
    );
    assert!(!s.contains('\x1b'), "escapes cleaned");
}

#[tokio::test]
async fn d_drills_the_selected_role_and_a_failed_drill_shows_red_in_the_roles() {
    let mut d = console().await;
    // The payments role's plugin grants, but its target refuses the credential.
    std::fs::write(
        d.h.dir().join("plugins/exec-plugin.sh"),
        "#!/bin/sh\nIFS= read -r line || true\ncase \"$line\" in\n*'\"op\":\"grant\"'*) printf '{\"ok\":true,\"lease_id\":\"l-1\",\"credential\":{\"password\":\"p\"}}\\n' ;;\n*'\"op\":\"probe\"'*) printf '{\"ok\":false,\"error\":\"login refused\"}\\n' ;;\n*) printf '{\"ok\":true}\\n' ;;\nesac\n",
    )
    .unwrap();
    d.press(KeyCode::Enter).await; // INC-1044
    d.assert_sees("D drill this role");
    d.press(KeyCode::Down).await; // k8s-cluster-admin
    d.press(KeyCode::Down).await; // payments-api-operator
    d.press(KeyCode::Char('D')).await;
    d.refresh().await;
    d.assert_sees("waits for 1 approval");
    let filed = d.engine.drill("alice", PLUGIN_ROLE).await.unwrap();
    d.engine
        .decide("bob", filed.id, Decision::approve(None))
        .await
        .unwrap();
    d.press(KeyCode::Char('D')).await;
    d.refresh().await;
    d.assert_sees("FAILED at probe");
    d.assert_sees("DRILL FAILED at probe");
    let r = d.engine.load(filed.id).await.unwrap();
    assert!(!r.drill.unwrap().outcome.unwrap().passed());
}

/// An approved drill opened from My access runs as a drill (its credential
/// goes to the probe), not as an activation, which drills refuse.
#[tokio::test]
async fn an_approved_drill_opened_from_my_access_runs_the_drill() {
    let mut d = console().await;
    let filed = d.engine.drill("alice", K8S).await.unwrap();
    d.engine
        .decide("bob", filed.id, Decision::approve(None))
        .await
        .unwrap();
    d.refresh().await;
    d.press(KeyCode::Char('2')).await;
    d.press(KeyCode::Enter).await;
    d.refresh().await;
    d.assert_sees("drill of k8s-cluster-admin passed");
    let r = d.engine.load(filed.id).await.unwrap();
    assert!(r.drill.unwrap().outcome.unwrap().passed());
    assert_eq!(r.state, breakglass::domain::State::Certified);
}

/// A certifier can record the exception from the console when only the
/// copied credentials' invalidation holds certifying up: the dialog asks why,
/// refuses an empty answer, and the decision carries it.
#[tokio::test]
async fn the_certify_dialog_records_an_invalidation_exception() {
    let h = harness();
    let (r, _) = h.active(DBA).await;
    h.engine.revoke("alice", r.id, "fixed").await.unwrap();
    // The console's engine has lost its backends: the invalidation stays pending.
    let mut dave = Driver::new_with(h, "dave", |p| p.backends.clear());
    let mut a = answers();
    a.credentials_copied = true;
    a.credentials_copied_where = "a pastebin".into();
    dave.engine.review("alice", r.id, a).await.unwrap();
    dave.refresh().await;
    dave.press(KeyCode::Char('4')).await;
    assert!(dave.app.data.reviews[0].exception_would_certify);
    dave.press(KeyCode::Char('c')).await;
    dave.assert_sees("are not invalidated yet");
    dave.assert_sees("certify anyway, because:");
    dave.press(KeyCode::Enter).await;
    dave.assert_sees("say why you certify without");
    assert_eq!(
        dave.engine.load(r.id).await.unwrap().state,
        breakglass::domain::State::Reviewed
    );
    dave.typed("the paste was deleted within a minute; rotated by hand")
        .await;
    dave.press(KeyCode::Enter).await;
    dave.refresh().await;
    let done = dave.engine.load(r.id).await.unwrap();
    assert_eq!(done.state, breakglass::domain::State::Certified);
    let inv = done.invalidation.expect("the invalidation record");
    assert!(!inv.pending(), "the exception settles it");
}

/// A snapshot read while the grant was still under way (the request
/// Approved) can arrive after the credential: it must not drop the
/// credential or its "is active" message (seen in the PTY walk under load).
#[tokio::test]
async fn a_stale_snapshot_does_not_drop_the_credential_just_received() {
    use breakglass::tui::app::Msg;
    let mut d = console().await;
    let r = d.h.approved(K8S).await;
    let stale = breakglass::tui::snapshot(&d.service("alice"), "alice").await;
    assert!(stale
        .mine
        .iter()
        .any(|m| m.id == r.id && m.state == breakglass::domain::State::Approved));
    let (req, cred) = d.engine.activate("alice", r.id).await.unwrap();
    d.app.update(Msg::Activated(r.id, Ok((req, cred))));
    d.app.update(Msg::Loaded(Box::new(stale)));
    assert!(
        d.app.credential.as_ref().is_some_and(|(id, _)| *id == r.id),
        "the credential survives a stale snapshot"
    );
    // A snapshot after the access ended drops it.
    d.engine.revoke("alice", r.id, "done").await.unwrap();
    let fresh = breakglass::tui::snapshot(&d.service("alice"), "alice").await;
    d.app.update(Msg::Loaded(Box::new(fresh)));
    assert!(d.app.credential.is_none(), "gone with the access");
}
