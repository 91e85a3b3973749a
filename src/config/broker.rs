//! `[broker]`: where the broker listens and who may connect. In the broker's own
//! config it sits beside the policy, store and backends; a person's config that
//! holds only `[broker]` (and `[ui]`) names no secret at all: their commands go
//! to the broker, which alone reads the store and the backend secrets.

use super::Config;
use std::path::PathBuf;

/// Where the broker listens when `[broker]` leaves `socket` out (systemd's
/// `RuntimeDirectory=breakglass`, see dist/systemd/breakglass-broker.service).
pub const DEFAULT_SOCKET: &str = "/run/breakglass/broker.sock";

/// Longest socket path a `sockaddr_un` holds (108 bytes with the final NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// `[broker]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    /// An absolute path (default [`DEFAULT_SOCKET`]).
    pub socket: PathBuf,
    /// The group whose members may connect: the socket is owned by the broker's
    /// account, this group, mode 0660. A valid group name; it may not exist yet
    /// where the config is checked (`config check` warns).
    pub group: Option<String>,
}

/// A person's config: only `[broker]` (and `[ui]`).
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub path: PathBuf,
    pub broker: BrokerConfig,
    /// `[ui] theme`.
    pub ui_theme: Option<String>,
    /// `[ui] approval_bell` (default true).
    pub ui_approval_bell: bool,
}

/// What [`load_any`](super::load_any) read: a whole config (the engine runs in
/// this process, or this is the broker's), or a person's client config.
#[derive(Debug, Clone)]
pub enum Loaded {
    Full(Box<Config>),
    Client(ClientConfig),
}
