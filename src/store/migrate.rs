//! `store migrate`: copies a SQLite store into an empty PostgreSQL store (team
//! mode) and verifies the copy on its own.

use super::postgres::CopyReport;
use super::{PostgresStore, SqliteStore, Store, StoreError};
use crate::audit::{Broken, Verifier};
use crate::net::pg::PgTls;
use secrecy::SecretString;
use std::path::Path;
use std::sync::Arc;

/// What a migration did and whether the copy holds.
#[derive(Debug)]
pub struct Migration {
    pub copied: CopyReport,
    /// "postgres host/db" of the target.
    pub target: String,
    pub verified_events: u64,
    /// The copy's first broken link, if any.
    pub broken: Option<Broken>,
    pub source_head: (i64, String),
    pub target_head: (i64, String),
}

impl Migration {
    /// The copy verifies, ends where the source ends, and the source was whole.
    pub fn ok(&self) -> bool {
        self.broken.is_none() && self.copied.source_broken.is_none() && self.same_head()
    }
    pub fn same_head(&self) -> bool {
        self.source_head == self.target_head
    }
}

pub fn sqlite_to_postgres(
    sqlite: &Path,
    url: &SecretString,
    tls: Option<PgTls>,
    ca_file: Option<&Path>,
) -> Result<Migration, StoreError> {
    let src = Arc::new(SqliteStore::open(sqlite)?);
    let source_head = src.audit_head()?;
    let dst = PostgresStore::open_with(url, tls, ca_file)?;
    let copied = dst.copy_from_sqlite(src)?;
    // The copy must verify on its own and end where the source ends.
    let mut v = Verifier::default();
    let mut from = 1;
    let mut broken = None;
    'pages: loop {
        let page = dst.audit_range(from, 10_000)?;
        let Some(last) = page.last() else { break };
        from = last.seq + 1;
        for r in &page {
            if let Err(b) = v.push(r) {
                broken = Some(b);
                break 'pages;
            }
        }
    }
    Ok(Migration {
        copied,
        target: dst.describe(),
        verified_events: v.count,
        broken,
        source_head,
        target_head: dst.audit_head()?,
    })
}
