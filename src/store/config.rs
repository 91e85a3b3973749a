//! What the config says about the store (parsed and checked by `config`).

use crate::net::pg::{PgTls, PgUrlSource};
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub enum StoreConfig {
    Sqlite {
        path: PathBuf,
    },
    /// A shared PostgreSQL store (team mode).
    Postgres(PgStoreConfig),
}

/// `[store] kind = "postgres"`.
#[derive(Debug, Clone)]
pub struct PgStoreConfig {
    /// Where the connection string is read from (never inline: it may carry a password).
    pub url: PgUrlSource,
    /// `None`: no TLS for a Unix socket or a loopback host, verify-full otherwise.
    pub tls: Option<PgTls>,
    pub ca_file: Option<PathBuf>,
    /// Local files (console drafts, the demo backend's target): `data_dir`, else
    /// the platform data dir.
    pub data_dir: PathBuf,
}

/// Who is acting: the operating-system account, or the store's database login
/// (`SELECT session_user`, PostgreSQL only), so the store vouches for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreIdentity {
    #[default]
    Os,
    Database,
}
