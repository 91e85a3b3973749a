//! `breakglass store migrate --to postgres`: copies the configured SQLite store
//! into an empty PostgreSQL store (team mode), then verifies the copy.

use super::args::{MigrateArgs, TlsArg};
use super::{CliResult, Failure};
use crate::cli::stdio::outln;
use crate::config::{Config, PgTls, PgUrlSource, StoreConfig};
use crate::exit;

fn store_failure(e: crate::store::StoreError) -> Failure {
    Failure::new(exit::FAILURE, e.to_string())
}

pub fn migrate(cfg: &Config, a: &MigrateArgs, json: bool) -> CliResult {
    let StoreConfig::Sqlite { path } = &cfg.store else {
        return Err(Failure::new(
            exit::USAGE,
            "store migrate copies the configured SQLite store, and this config's store is already postgres",
        ));
    };
    if !path.exists() {
        return Err(Failure::new(
            exit::USAGE,
            format!("there is no SQLite store at {} to migrate", path.display()),
        ));
    }
    let source = match (&a.url_env, &a.url_file) {
        (Some(v), _) => PgUrlSource::Env(v.clone()),
        (None, Some(f)) => PgUrlSource::File(f.clone()),
        (None, None) => {
            return Err(Failure::new(
                exit::USAGE,
                "name the target: --url-env VAR or --url-file FILE",
            ))
        }
    };
    let url = crate::store::postgres::url_from(&source)
        .map_err(|e| Failure::new(exit::USAGE, e.to_string()))?;
    let tls = a.tls.map(|t| match t {
        TlsArg::Disable => PgTls::Disable,
        TlsArg::Require => PgTls::Require,
        TlsArg::VerifyFull => PgTls::VerifyFull,
    });
    let m = crate::store::migrate::sqlite_to_postgres(path, &url, tls, a.ca_file.as_deref())
        .map_err(store_failure)?;
    let (rep, broken, target) = (&m.copied, &m.broken, &m.target);
    let (src_head, dst_head, same_head) = (&m.source_head, &m.target_head, m.same_head());
    let env_hint = match &source {
        PgUrlSource::Env(v) => format!("url_env = \"{v}\""),
        PgUrlSource::File(f) => format!("url_file = \"{}\"", f.display()),
    };
    if json {
        outln!(
            "{}",
            serde_json::json!({
                "ok": m.ok(),
                "target": target,
                "copied": rep,
                "verified_events": m.verified_events,
                "broken": broken,
                "same_head_as_source": same_head,
            })
        );
    } else {
        outln!(
            "copied {} request(s), {} audit event(s) and {} outbox row(s) from {} into {target}",
            rep.requests,
            rep.audit_events,
            rep.outbox_rows,
            path.display()
        );
        match (broken, same_head) {
            (None, true) => outln!(
                "audit chain verified on the copy: {} event(s), head #{} {}",
                m.verified_events, dst_head.0, dst_head.1
            ),
            (Some(b), _) => outln!("the copied chain does NOT verify at #{}: {}", b.seq, b.reason),
            (None, false) => outln!(
                "the copy's head #{} differs from the source's #{}: was the SQLite store written to during the copy?",
                dst_head.0, src_head.0
            ),
        }
        if let Some(b) = &rep.source_broken {
            outln!(
                "note: the source chain was already broken at #{} ({}); it was copied as it is",
                b.seq,
                b.reason
            );
        }
        outln!(
            "next: set [store] kind = \"postgres\" and {env_hint} in {}, and start every console and daemon on it",
            cfg.path.display()
        );
    }
    Ok(if m.ok() { exit::OK } else { exit::AUDIT_BROKEN })
}
