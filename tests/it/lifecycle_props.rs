//! Property tests: random command sequences from random personas against the
//! engine (demo policy, SQLite store, demo backend, manual clock). Whatever the
//! sequence, the invariants of the lifecycle hold.

use crate::support;

use breakglass::domain::State;
use breakglass::engine::Decision;
use breakglass::store::Query;
use chrono::Duration;
use proptest::prelude::*;
use support::*;

const PEOPLE: [&str; 4] = ["alice", "bob", "carol", "dave"];
const ROLES: [&str; 4] = [DBA, K8S, PLUGIN_ROLE, IAM];

#[derive(Debug, Clone)]
enum Cmd {
    Request {
        who: usize,
        role: usize,
        ttl_min: Option<i64>,
    },
    Approve {
        who: usize,
        req: usize,
    },
    Deny {
        who: usize,
        req: usize,
    },
    Cancel {
        who: Option<usize>,
        req: usize,
    },
    Activate {
        who: Option<usize>,
        req: usize,
    },
    Revoke {
        who: usize,
        req: usize,
    },
    Extend {
        who: Option<usize>,
        req: usize,
        min: i64,
    },
    Review {
        who: Option<usize>,
        req: usize,
    },
    Certify {
        who: usize,
        req: usize,
        reject: bool,
    },
    Advance {
        secs: i64,
    },
    Sweep,
}

fn cmd() -> impl Strategy<Value = Cmd> {
    // Mostly the right person (None = the request's own requester), sometimes anyone:
    // sequences must reach deep states often enough to be worth generating.
    let who = 0..PEOPLE.len();
    let own = prop_oneof![4 => Just(None), 1 => (0..PEOPLE.len()).prop_map(Some)];
    let req = 0..4usize;
    prop_oneof![
        2 => (0..2usize, 0..ROLES.len(), proptest::option::of(1i64..50)).prop_map(|(who, role, ttl_min)| Cmd::Request { who, role, ttl_min }),
        6 => (1..PEOPLE.len(), req.clone()).prop_map(|(who, req)| Cmd::Approve { who, req }),
        1 => (who.clone(), req.clone()).prop_map(|(who, req)| Cmd::Deny { who, req }),
        1 => (own.clone(), req.clone()).prop_map(|(who, req)| Cmd::Cancel { who, req }),
        4 => (own.clone(), req.clone()).prop_map(|(who, req)| Cmd::Activate { who, req }),
        2 => (who.clone(), req.clone()).prop_map(|(who, req)| Cmd::Revoke { who, req }),
        1 => (own.clone(), req.clone(), 1i64..40).prop_map(|(who, req, min)| Cmd::Extend { who, req, min }),
        3 => (own.clone(), req.clone()).prop_map(|(who, req)| Cmd::Review { who, req }),
        3 => (prop_oneof![3 => Just(3usize), 1 => 0..PEOPLE.len()], req.clone(), proptest::bool::weighted(0.25)).prop_map(|(who, req, reject)| Cmd::Certify { who, req, reject }),
        2 => (1i64..1200).prop_map(|secs| Cmd::Advance { secs }),
        2 => Just(Cmd::Sweep),
    ]
}

fn check_invariants(h: &H, after_sweep: bool) {
    check_invariants_with(h, after_sweep, false)
}

/// `allow_granting`: a crashed grant may have left a lease behind until a sweep.
fn check_invariants_with(h: &H, after_sweep: bool, allow_granting: bool) {
    let all = h.store.list(&Query::default()).unwrap();
    let now = h.engine.now();
    for r in &all {
        let reached_grant = r.grant.is_some();
        if reached_grant {
            let mut who: Vec<&str> = r.approvers();
            who.sort();
            who.dedup();
            assert_eq!(
                who.len(),
                r.approvals.len(),
                "{} counted an approver twice",
                r.id
            );
            assert!(
                who.len() as u32 >= r.approvals_required,
                "{} granted without enough approvals",
                r.id
            );
            assert!(
                !who.contains(&r.requester.as_str()),
                "{} approved by its requester",
                r.id
            );
        }
        if let Some(c) = &r.certification {
            assert_ne!(c.by, r.requester, "{} certified by its requester", r.id);
        }
        if after_sweep && r.state == State::Active {
            assert!(
                r.expires_at().unwrap() > now,
                "{} still active past expiry after a sweep",
                r.id
            );
        }
    }
    for role in ROLES {
        let holders = all
            .iter()
            .filter(|r| r.role == role && r.state.locks_role())
            .count();
        assert!(
            holders <= 1,
            "role {role} held by {holders} requests at once"
        );
    }
    // The target holds a lease only for requests whose access is live.
    for (lease, req_id) in h.leases() {
        let r = all
            .iter()
            .find(|r| r.id.to_string() == req_id)
            .expect("lease of a known request");
        let live = matches!(r.state, State::Active | State::Revoking)
            || (allow_granting && r.state == State::Granting);
        assert!(live, "lease {lease} of {} in state {}", r.id, r.state);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn lifecycle_invariants_hold_for_any_command_sequence(cmds in proptest::collection::vec(cmd(), 1..100)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let h = harness();
            let id = |i: usize| breakglass::domain::RequestId(i as i64 + 1);
            let actor = |who: Option<usize>, req: usize| match who {
                Some(w) => PEOPLE[w].to_string(),
                None => h.store.get(id(req)).ok().flatten().map_or_else(|| "alice".into(), |r| r.requester),
            };
            for c in &cmds {
                let mut swept = false;
                // Refusals are expected; only the invariants matter.
                let _ = match c.clone() {
                    Cmd::Request { who, role, ttl_min } => {
                        let mut i = input(ROLES[role], inc("INC-1044"));
                        if ROLES[role] == IAM { i.condition = "locked-out administrators".into(); }
                        i.ttl_seconds = ttl_min.map(|m| m * 60);
                        h.engine.request(PEOPLE[who], i).await.map(|_| ())
                    }
                    Cmd::Approve { who, req } => h.engine.decide(PEOPLE[who], id(req), Decision::approve(None)).await.map(|_| ()),
                    Cmd::Deny { who, req } => h.engine.decide(PEOPLE[who], id(req), Decision::deny("no")).await.map(|_| ()),
                    Cmd::Cancel { who, req } => h.engine.cancel(&actor(who, req), id(req)).await.map(|_| ()),
                    Cmd::Activate { who, req } => h.engine.activate(&actor(who, req), id(req)).await.map(|_| ()),
                    Cmd::Revoke { who, req } => h.engine.revoke(PEOPLE[who], id(req), "done").await.map(|_| ()),
                    Cmd::Extend { who, req, min } => h.engine.extend(&actor(who, req), id(req), min * 60, "more").await.map(|_| ()),
                    Cmd::Review { who, req } => h.engine.review(&actor(who, req), id(req), answers()).await.map(|_| ()),
                    Cmd::Certify { who, req, reject } => if reject {
                        h.engine.decide(PEOPLE[who], id(req), Decision::reject("incomplete")).await.map(|_| ())
                    } else {
                        h.engine.decide(PEOPLE[who], id(req), Decision::certify("")).await.map(|_| ())
                    },
                    Cmd::Advance { secs } => { h.clock.advance(Duration::seconds(secs)); Ok(()) }
                    Cmd::Sweep => { swept = true; h.engine.recover().await.map(|_| ()) }
                };
                check_invariants(&h, swept);
            }
            // However the sequence ended, a sweep after the longest possible access ends everything.
            h.clock.advance(Duration::hours(3));
            h.engine.recover().await.unwrap();
            check_invariants(&h, true);
            assert!(h.leases().is_empty(), "access left granted: {:?}", h.leases());
            let (n, broken) = h.engine.verify_audit().await.unwrap();
            assert!(broken.is_none(), "{broken:?}");
            assert_eq!(n as i64, h.audit_len());
        });
    }
}

/// A pid that belonged to a process which has exited: a "crashed" owner.
fn dead_pid() -> u32 {
    let mut c = std::process::Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Two engines on one store (two processes' worth of connections), commands
    /// interleaved at random between them, and crashes mid-grant (the intent
    /// stored, maybe the backend already granted, then the process gone).
    #[test]
    fn invariants_hold_across_two_processes_and_crashes(
        cmds in proptest::collection::vec(
            (cmd(), any::<bool>(), proptest::option::weighted(0.2, any::<bool>())),
            1..80,
        ),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let h = harness();
            let mut parts = breakglass::engine::Parts::from_config(&h.cfg).unwrap();
            parts.clock = h.clock.clone();
            let other = breakglass::engine::Engine::new(parts);
            let dead = dead_pid();
            let id = |i: usize| breakglass::domain::RequestId(i as i64 + 1);
            for (c, on_other, crash) in cmds.iter() {
                let e = if *on_other { &other } else { &h.engine };
                let actor = |who: Option<usize>, req: usize| match who {
                    Some(w) => PEOPLE[w].to_string(),
                    None => h.store.get(id(req)).ok().flatten().map_or_else(|| "alice".into(), |r| r.requester),
                };
                // Before this command, maybe a crash: the first approved request's
                // grant intent is stored by a process that then dies, perhaps after
                // the backend granted.
                if let Some(backend_granted) = crash {
                    let approved = h.engine.requests(&Query { states: Some(vec![State::Approved]), ..Default::default() }).await.unwrap();
                    if let Some(mut r) = approved.into_iter().last() {
                        let owner = breakglass::domain::Owner { host: breakglass::engine::this_host(), pid: dead };
                        let now = h.clock_now();
                        let who = r.requester.clone();
                        if let Ok(ev) = breakglass::domain::lifecycle::begin_grant(&mut r, &who, owner, now) {
                            // Only the demo backend's target is simulated here (not the plugin's).
                            let on_demo = r.role != PLUGIN_ROLE;
                            if h.store.commit(&r, &ev, &[], now).is_ok() && *backend_granted && on_demo {
                                let spec = breakglass::backend::GrantSpec {
                                    request_id: r.id.to_string(), role: r.role.clone(), scope: serde_json::json!({}),
                                    requester: who, ttl_seconds: r.ttl_seconds, expires_at: now + Duration::seconds(r.ttl_seconds),
                                    incident: String::new(),
                                };
                                use breakglass::backend::Backend;
                                let _ = h.demo_target().grant(&spec).await;
                            }
                        }
                    }
                }
                let mut swept = false;
                let _ = match c.clone() {
                    Cmd::Request { who, role, ttl_min } => {
                        let mut i = input(ROLES[role], inc("INC-1044"));
                        if ROLES[role] == IAM { i.condition = "locked-out administrators".into(); }
                        i.ttl_seconds = ttl_min.map(|m| m * 60);
                        e.request(PEOPLE[who], i).await.map(|_| ())
                    }
                    Cmd::Approve { who, req } => e.decide(PEOPLE[who], id(req), Decision::approve(None)).await.map(|_| ()),
                    Cmd::Deny { who, req } => e.decide(PEOPLE[who], id(req), Decision::deny("no")).await.map(|_| ()),
                    Cmd::Cancel { who, req } => e.cancel(&actor(who, req), id(req)).await.map(|_| ()),
                    Cmd::Activate { who, req } => e.activate(&actor(who, req), id(req)).await.map(|_| ()),
                    Cmd::Revoke { who, req } => e.revoke(PEOPLE[who], id(req), "done").await.map(|_| ()),
                    Cmd::Extend { who, req, min } => e.extend(&actor(who, req), id(req), min * 60, "more").await.map(|_| ()),
                    Cmd::Review { who, req } => e.review(&actor(who, req), id(req), answers()).await.map(|_| ()),
                    Cmd::Certify { who, req, reject } => if reject {
                        e.decide(PEOPLE[who], id(req), Decision::reject("incomplete")).await.map(|_| ())
                    } else {
                        e.decide(PEOPLE[who], id(req), Decision::certify("")).await.map(|_| ())
                    },
                    Cmd::Advance { secs } => { h.clock.advance(Duration::seconds(secs)); Ok(()) }
                    Cmd::Sweep => { swept = true; e.recover().await.map(|_| ()) }
                };
                check_invariants_with(&h, swept, true);
                if swept {
                    // A sweep fails every grant whose process is gone, leaving nothing behind.
                    let granting = h.engine.requests(&Query { states: Some(vec![State::Granting]), ..Default::default() }).await.unwrap();
                    prop_assert!(granting.is_empty(), "a crashed grant survived a sweep: {:?}", granting.iter().map(|r| r.id).collect::<Vec<_>>());
                }
            }
            h.clock.advance(Duration::hours(3));
            other.recover().await.unwrap();
            check_invariants(&h, true);
            prop_assert!(h.leases().is_empty(), "access left granted: {:?}", h.leases());
            let (n, broken) = h.engine.verify_audit().await.unwrap();
            prop_assert!(broken.is_none(), "{:?}", broken);
            prop_assert_eq!(n as i64, h.audit_len());
            Ok(())
        })?;
    }
}
