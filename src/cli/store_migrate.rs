//! `breakglass store migrate --to postgres`: copies the configured SQLite store
//! into an empty PostgreSQL store (team mode), then verifies the copy.

use super::args::{MigrateArgs, TlsArg};
use super::{CliResult, Failure};
use crate::cli::stdio::outln;
use crate::config::{Config, PgTls, PgUrlSource, StoreConfig};
use crate::exit;
use crate::store::{PostgresStore, SqliteStore, Store};
use std::sync::Arc;

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
    let src = Arc::new(SqliteStore::open(path).map_err(store_failure)?);
    let src_head = src.audit_head().map_err(store_failure)?;
    let dst = PostgresStore::open_with(&url, tls, a.ca_file.as_deref()).map_err(store_failure)?;
    let rep = dst.copy_from_sqlite(src.clone()).map_err(store_failure)?;

    // The copy must verify on its own and end where the source ends.
    let mut v = crate::audit::Verifier::default();
    let mut from = 1;
    let mut broken = None;
    'pages: loop {
        let page = dst.audit_range(from, 10_000).map_err(store_failure)?;
        let Some(last) = page.last() else { break };
        from = last.seq + 1;
        for r in &page {
            if let Err(b) = v.push(r) {
                broken = Some(b);
                break 'pages;
            }
        }
    }
    let dst_head = dst.audit_head().map_err(store_failure)?;
    let same_head = dst_head == src_head;
    let target = dst.describe();
    let env_hint = match &source {
        PgUrlSource::Env(v) => format!("url_env = \"{v}\""),
        PgUrlSource::File(f) => format!("url_file = \"{}\"", f.display()),
    };
    if json {
        outln!(
            "{}",
            serde_json::json!({
                "ok": broken.is_none() && rep.source_broken.is_none() && same_head,
                "target": target,
                "copied": rep,
                "verified_events": v.count,
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
        match (&broken, same_head) {
            (None, true) => outln!(
                "audit chain verified on the copy: {} event(s), head #{} {}",
                v.count, dst_head.0, dst_head.1
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
    Ok(
        if broken.is_some() || rep.source_broken.is_some() || !same_head {
            exit::AUDIT_BROKEN
        } else {
            exit::OK
        },
    )
}
