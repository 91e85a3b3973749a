//! Every screen rendered with ratatui's TestBackend and compared with insta
//! snapshots, in two themes and two sizes. Time is fixed so snapshots are stable.

use crate::support;

use breakglass::engine::Decision;
use chrono::{TimeZone, Utc};
use crossterm::event::KeyCode;
use ratatui::buffer::Buffer;
use support::tui::Driver;
use support::*;

const THEMES: [&str; 2] = ["default", "high-contrast"];
const SIZES: [(u16, u16); 2] = [(80, 24), (120, 40)];

/// alice's console at a fixed instant, incidents opened at fixed times before it.
async fn fixed() -> Driver {
    fixed_on(harness()).await
}

async fn fixed_on(h: H) -> Driver {
    let t0 = Utc.with_ymd_and_hms(2026, 11, 25, 3, 0, 0).unwrap();
    h.clock.set(t0);
    let at = |m: i64| breakglass::domain::time::ts(t0 - chrono::Duration::minutes(m));
    std::fs::write(
        h.dir().join("incidents.toml"),
        format!(
            "[[incidents]]\nid = \"INC-1042\"\ntitle = \"Checkout API returning 503 for EU customers\"\nseverity = \"SEV1\"\nopened_at = \"{}\"\n\n\
             [[incidents]]\nid = \"INC-1043\"\ntitle = \"Primary database replica lag above 10 minutes\"\nseverity = \"SEV2\"\nstatus = \"acknowledged\"\nopened_at = \"{}\"\n",
            at(12),
            at(47)
        ),
    )
    .unwrap();
    let mut d = Driver::new(h, "alice");
    d.app.now = t0;
    d.refresh().await;
    d
}

/// Text plus the style runs: a theme change or a layout change both show.
fn render(b: &Buffer) -> String {
    format!("{b:?}")
}

fn check(d: &mut Driver, screen: &str) {
    for theme in THEMES {
        d.theme = breakglass::tui::theme::Theme::builtin(theme).unwrap();
        for (w, h) in SIZES {
            insta::assert_snapshot!(
                format!("{screen}__{theme}__{w}x{h}"),
                render(&d.buffer(w, h))
            );
        }
    }
}

#[tokio::test]
async fn screens_of_the_walk() {
    let mut d = fixed().await;
    check(&mut d, "01_incidents");
    d.press(KeyCode::Enter).await;
    check(&mut d, "02_roles");
    for _ in 0..3 {
        d.press(KeyCode::Down).await;
    }
    d.press(KeyCode::Enter).await;
    d.ctrl('s').await; // no condition, empty reason: each problem by its field
    check(&mut d, "03_form_with_problem");
    d.press(KeyCode::Down).await; // the focus is on the condition: pick one
    d.press(KeyCode::Tab).await;
    d.typed("primary is read-only; failing over to the replica")
        .await;
    d.ctrl('s').await;
    d.typed("prod-db").await;
    check(&mut d, "04_confirm");
}

#[tokio::test]
async fn screens_of_my_access() {
    let mut d = fixed().await;
    let r = d.h.requested(DBA).await;
    d.h.engine
        .decide("bob", r.id, Decision::approve(None))
        .await
        .unwrap();
    d.refresh().await;
    d.app.tab = breakglass::tui::app::Tab::MyAccess;
    d.app.focus = Some(r.id);
    check(&mut d, "05_waiting");
    d.h.engine
        .decide("carol", r.id, Decision::approve(None))
        .await
        .unwrap();
    d.refresh().await; // activates
    d.h.clock.advance(chrono::Duration::seconds(11 * 60 + 30));
    d.tick().await;
    check(&mut d, "06_active_warning");
    d.press(KeyCode::Char('x')).await;
    d.press(KeyCode::Char('y')).await;
    d.typed("promoted the replica").await;
    check(&mut d, "07_review_form");
}

#[tokio::test]
async fn screens_of_the_queues_and_audit() {
    let mut d = fixed().await;
    let mine = d.h.requested(DBA).await;
    let theirs =
        d.h.engine
            .request("bob", input(K8S, inc("INC-1042")))
            .await
            .unwrap();
    let _ = (mine, theirs);
    d.refresh().await;
    d.press(KeyCode::Char('3')).await;
    check(&mut d, "08_approvals");
    // A review waiting for dave.
    let mut d2 = fixed().await;
    let (r, _) = d2.h.active(K8S).await;
    d2.h.engine.revoke("alice", r.id, "done").await.unwrap();
    d2.h.engine.review("alice", r.id, answers()).await.unwrap();
    d2.app.me = "dave".into();
    d2.refresh().await;
    d2.press(KeyCode::Char('4')).await;
    check(&mut d2, "09_reviews");
    d2.press(KeyCode::Char('5')).await;
    d2.run(vec![breakglass::tui::app::Cmd::VerifyAudit]).await;
    check(&mut d2, "10_audit");
    d2.press(KeyCode::Char('?')).await;
    check(&mut d2, "11_help");
}

#[tokio::test]
async fn too_small() {
    let d = fixed().await;
    insta::assert_snapshot!("12_too_small", render(&d.buffer(60, 20)));
}

#[tokio::test]
async fn screens_of_a_vendor_session() {
    let mut d = fixed_on(harness_edited(|t| t.push_str(&vendor_role("")), |_| {})).await;
    let r = d.h.vendor_request().await;
    d.h.engine
        .decide("bob", r.id, Decision::approve(None))
        .await
        .unwrap();
    d.refresh().await;
    d.app.tab = breakglass::tui::app::Tab::MyAccess;
    d.app.focus = Some(r.id);
    check(&mut d, "13_vendor_approved");
    // What `breakglass shell` leaves behind, then the review, seen by dave.
    d.h.vendor_session_reviewed(r.id).await;
    d.app.me = "dave".into();
    d.refresh().await;
    d.press(KeyCode::Char('4')).await;
    check(&mut d, "14_vendor_review");
}
