//! Filing and following requests: `request` (with `--wait`), `status`, and the
//! after-action review's answers from flags or a file.

use super::*;
use crate::cli::stdio::errln;

pub(super) async fn request(cli: &Cli, svc: &Service, a: &RequestArgs) -> CliResult {
    let json = cli.json;
    let printed = std::cell::Cell::new(false);
    let r = request_inner(cli, svc, a, &printed).await;
    if a.non_interactive && json {
        // One document on stdout whatever happens: a refusal before any output
        // gets an error document.
        if let Err(f) = &r {
            if !printed.get() {
                output::print_json(&serde_json::json!({
                    "error": {
                        "exit_code": f.code,
                        "reason": f.reason,
                        "message": crate::sanitize::text(&f.message, MAX_MESSAGE),
                        "causes": f.causes.iter().map(|c| crate::sanitize::text(c, MAX_MESSAGE)).collect::<Vec<_>>(),
                        "hints": f.hints,
                    }
                }));
            }
        }
    }
    r
}

pub(super) async fn request_inner(
    cli: &Cli,
    svc: &Service,
    a: &RequestArgs,
    printed: &std::cell::Cell<bool>,
) -> CliResult {
    let json = cli.json;
    if a.wait {
        // --wait activates once approved: refuse now rather than lose the credential.
        credential_can_be_shown(json)?;
    }
    let ttl = a
        .ttl
        .as_deref()
        .map(|t| parse_duration(t, "--ttl"))
        .transpose()?;
    let incident = match (&a.incident, &a.ticket) {
        (Some(i), _) => IncidentChoice::Id(i.clone()),
        (None, Some(t)) => IncidentChoice::Ticket(t.clone()),
        (None, None) => {
            return Err(Failure::new(
                exit::USAGE,
                "name the incident: --incident ID or --ticket REF",
            ))
        }
    };
    let req = svc
        .request(
            RequestInput {
                incident,
                role: a.role.clone(),
                condition: a.condition.clone(),
                reason: a.reason.clone(),
                ttl_seconds: ttl,
            },
            session::vendor_info(a),
        )
        .await?;
    if !a.wait {
        output::request_result(svc, &req, json);
        printed.set(true);
        if a.non_interactive && req.state == State::Pending {
            return Err(Failure::new(
                exit::PENDING,
                format!(
                    "{} is pending human approval{}",
                    req.id,
                    req.auto_approval_declined
                        .as_deref()
                        .map(|w| format!(" (not auto-approved: {w})"))
                        .unwrap_or_default()
                ),
            ));
        }
        return Ok(exit::OK);
    }
    if !json {
        output::request_result(svc, &req, false);
        errln!("waiting for approvals (Ctrl-C stops waiting; the request stays pending)...");
    }
    let deadline = std::time::Instant::now()
        + std::time::Duration::from_secs(parse_duration(&a.wait_timeout, "--wait-timeout")? as u64);
    let mut seen = req.approvals.len();
    loop {
        // The head first: a decision landing after it wakes the wait below.
        let head = svc.audit_head().await.map(|h| h.0).unwrap_or(-1);
        let cur = svc.load(req.id).await?;
        if cur.approvals.len() != seen && !json {
            seen = cur.approvals.len();
            errln!(
                "{} of {} approvals ({})",
                seen,
                cur.approvals_required,
                cur.approvers().join(", ")
            );
        }
        match cur.state {
            State::Approved => {
                let (r, cred) = svc.activate(req.id).await?;
                show_credential(cli, svc, r, cred, None);
                printed.set(true);
                return Ok(exit::OK);
            }
            State::Pending if svc.now() >= cur.decide_by => {
                svc.recover().await?;
            }
            State::Pending => {}
            other => {
                output::request_result(svc, &cur, json);
                printed.set(true);
                return Err(Failure::new(
                    exit::REFUSED,
                    format!("{} was {other}", req.id),
                ));
            }
        }
        if std::time::Instant::now() >= deadline {
            output::request_result(svc, &cur, json);
            printed.set(true);
            return Err(Failure::new(
                exit::PENDING,
                format!(
                    "{} is still pending; `breakglass activate {}` once approved",
                    req.id, req.id
                ),
            ));
        }
        // Woken by any commit (NOTIFY on PostgreSQL, a cheap head poll on
        // SQLite); at least once a second for the lapse check.
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let wait = left.min(std::time::Duration::from_secs(1));
        svc.wait_for_change(head, wait).await;
    }
}

pub(super) async fn status(
    svc: &Service,
    id: Option<RequestId>,
    all: bool,
    json: bool,
) -> CliResult {
    let undelivered = svc.undelivered_alerts().await?;
    match id {
        Some(id) => {
            let req = svc.load(id).await?;
            output::status_one(&svc.view(req), undelivered, svc.now(), json);
        }
        None => {
            let q = if all {
                crate::engine::Query::default()
            } else {
                crate::engine::Query {
                    states: Some(vec![
                        State::Pending,
                        State::Approved,
                        State::Granting,
                        State::Active,
                        State::Revoking,
                        State::Ended,
                        State::Reviewed,
                    ]),
                    ..Default::default()
                }
            };
            let list: Vec<_> = svc
                .requests(&q)
                .await?
                .into_iter()
                .map(|r| svc.view(r))
                .collect();
            output::status_list(&list, undelivered, json);
        }
    }
    Ok(exit::OK)
}

pub(super) fn yes_no(s: &str, flag: &str) -> Result<bool, Failure> {
    match s.trim().to_ascii_lowercase().as_str() {
        "yes" | "y" | "true" => Ok(true),
        "no" | "n" | "false" => Ok(false),
        _ => Err(Failure::new(
            exit::USAGE,
            format!("{flag} takes yes or no, not `{s}`"),
        )),
    }
}

pub(super) fn review_answers(a: &ReviewArgs) -> Result<ReviewAnswers, Failure> {
    #[derive(serde::Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct FileAnswers {
        actions_taken: Option<String>,
        systems_touched: Option<String>,
        access_necessary: Option<bool>,
        credentials_copied: Option<bool>,
        credentials_copied_where: Option<String>,
        follow_ups: Option<String>,
    }
    let f: FileAnswers = match &a.file {
        None => FileAnswers::default(),
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| {
                Failure::new(exit::USAGE, format!("cannot read {}: {e}", p.display()))
            })?;
            if p.extension().is_some_and(|e| e == "json") {
                serde_json::from_str(&text)
                    .map_err(|e| Failure::new(exit::USAGE, format!("{}: {e}", p.display())))?
            } else {
                toml::from_str(&text).map_err(|e| {
                    Failure::new(exit::USAGE, format!("{}: {}", p.display(), e.message()))
                })?
            }
        }
    };
    let access_necessary = match (&a.access_necessary, f.access_necessary) {
        (Some(s), _) => yes_no(s, "--access-necessary")?,
        (None, Some(b)) => b,
        (None, None) => {
            return Err(Failure::new(
                exit::USAGE,
                "say whether the access was necessary: --access-necessary yes|no",
            ))
        }
    };
    let credentials_copied = match (&a.credentials_copied, f.credentials_copied) {
        (Some(s), _) => yes_no(s, "--credentials-copied")?,
        (None, Some(b)) => b,
        (None, None) => {
            return Err(Failure::new(
                exit::USAGE,
                "say whether credentials were copied anywhere: --credentials-copied yes|no",
            ))
        }
    };
    let pick =
        |flag: &Option<String>, file: Option<String>| flag.clone().or(file).unwrap_or_default();
    Ok(ReviewAnswers {
        actions_taken: pick(&a.actions_taken, f.actions_taken),
        systems_touched: pick(&a.systems_touched, f.systems_touched),
        access_necessary,
        credentials_copied,
        credentials_copied_where: pick(&a.credentials_copied_where, f.credentials_copied_where),
        follow_ups: pick(&a.follow_ups, f.follow_ups),
    })
}
