//! Command-line definitions.

use crate::domain::RequestId;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// The heading the options every command takes are listed under.
pub const GLOBAL: &str = "Global options";

/// What `--config` says: the file a command reads without it, so nobody takes
/// the option for one they must always give.
fn config_help() -> String {
    let file = |p: &std::path::Path| crate::sanitize::line(&p.display().to_string(), 300);
    match std::env::var_os("BREAKGLASS_CONFIG").filter(|v| !v.is_empty()) {
        Some(v) => format!(
            "Config file [default: {}, from $BREAKGLASS_CONFIG]",
            file(std::path::Path::new(&v))
        ),
        None => format!(
            "Config file [default: {}; $BREAKGLASS_CONFIG overrides it]",
            crate::config::default_path()
                .map(|p| file(&p))
                .unwrap_or_else(|| "none on this system".into())
        ),
    }
}

/// What `--version` says: the release and the commit it was built from
/// (`+dirty` with uncommitted changes, `unknown` outside a git checkout; build.rs).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("BREAKGLASS_COMMIT"),
    ")"
);

#[derive(Parser, Debug)]
#[command(
    name = "breakglass",
    version = VERSION,
    about = "Governed emergency (break-glass) access: incident-bound requests, dual approval, \
             short-lived credentials, automatic revocation, audit and certification.",
    after_help = crate::exit::HELP
)]
pub struct Cli {
    #[arg(
        long,
        global = true,
        env = "BREAKGLASS_CONFIG",
        hide_env = true,
        value_name = "FILE",
        help = config_help(),
        help_heading = GLOBAL
    )]
    pub config: Option<PathBuf>,

    /// Act as a demo persona. Refused outside demo mode: identity is the OS account.
    #[arg(long = "as", global = true, value_name = "PERSONA", help_heading = GLOBAL)]
    pub as_persona: Option<String>,

    /// Machine-readable output (one JSON document on stdout)
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub json: bool,

    /// Console theme: default, light, high-contrast, colorblind, or a user theme
    #[arg(long, global = true, value_name = "NAME", help_heading = GLOBAL)]
    pub theme: Option<String>,

    /// Without a command, opens the interactive console.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Open the console on the embedded demo (throwaway config, SQLite store, demo backend)
    Demo {
        /// Keep the demo in this directory across runs (created if needed)
        /// [default: this user's one demo dir, emptied on each run]
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Only prepare the demo and print the CLI walk; do not open the console
        #[arg(long)]
        no_console: bool,
    },
    /// Open the interactive console (the default without a command)
    Console,
    /// Write a commented starter config
    Init {
        /// Overwrite an existing file
        #[arg(long)]
        force: bool,
    },
    /// Validate config and policy
    #[command(subcommand)]
    Config(ConfigCmd),
    /// List open incidents from every configured source
    Incidents,
    /// List roles with their lock state (and, for vendor roles, their certification)
    Roles {
        /// Without one, list the roles
        #[command(subcommand)]
        action: Option<RolesCmd>,
    },
    /// Request emergency access
    Request(RequestArgs),
    /// Activate an approved request: grant access and print the credential once
    Activate {
        /// The approved request (REQ-n, or its number)
        id: RequestId,
        /// SSH credentials: write the private key and certificate as new 0600
        /// files in DIR (breakglass-REQ-n, breakglass-REQ-n-cert.pub) instead of
        /// printing them; not deleted by breakglass (the certificate dies at expiry)
        #[arg(long, value_name = "DIR")]
        key_dir: Option<std::path::PathBuf>,
    },
    /// Vendor roles: activate an approved request into a recorded shell session
    /// (the credential only in the shell's environment); it ends with the grant
    Shell {
        /// The approved vendor request (REQ-n, or its number)
        id: RequestId,
        /// Run this instead of the role's shell_command or $SHELL
        #[arg(long, value_name = "CMD")]
        command: Option<String>,
    },
    /// Play a recorded vendor session back in the terminal (audited)
    Replay {
        /// The request whose session to play (REQ-n, or its number)
        id: RequestId,
        /// Playback speed factor; 0 prints at once
        #[arg(long, default_value = "1")]
        speed: f64,
    },
    /// Approve someone else's request
    Approve {
        /// The request to approve (REQ-n, or its number)
        id: RequestId,
        /// Why you approve, kept with your approval in the audit trail
        #[arg(long, value_name = "TEXT")]
        comment: Option<String>,
        #[command(flatten)]
        sign: SignArgs,
    },
    /// Deny a request
    Deny {
        /// The request to deny (REQ-n, or its number)
        id: RequestId,
        /// Why, shown to the requester and kept in the audit trail
        #[arg(long, value_name = "TEXT")]
        reason: String,
        #[command(flatten)]
        sign: SignArgs,
    },
    /// Drill a role: grant, prove, revoke and prove gone, with its shortest TTL
    ///
    /// The first run files a drill request (condition "drill", no incident) for
    /// the role's drill approvers; once approved, run it again to walk the path
    /// against the real backend. The credential is used by the backend's probe
    /// only and never shown. Exit 0 passed, 5 waiting for approval, 4 failed.
    Drill {
        /// The role to drill
        role: String,
    },
    /// Withdraw your own pending or approved request
    Cancel {
        /// Your pending or approved request (REQ-n, or its number)
        id: RequestId,
    },
    /// Show one request (with live TTL), or your open ones
    Status {
        /// One request (REQ-n, or its number) [default: your open ones]
        id: Option<RequestId>,
        /// Every request, not only open ones
        #[arg(long)]
        all: bool,
    },
    /// End active access now
    Revoke {
        /// The active request (REQ-n, or its number)
        id: RequestId,
        /// Why it ends now, kept in the audit trail
        #[arg(long, default_value = "ended early", value_name = "TEXT")]
        reason: String,
    },
    /// Extend active access
    Extend {
        /// The active request (REQ-n, or its number)
        id: RequestId,
        /// How much longer, e.g. 10m
        #[arg(long, value_name = "DURATION")]
        by: String,
        /// Why more time is needed, kept in the audit trail
        #[arg(long, value_name = "TEXT")]
        reason: String,
        /// SSH credentials: write the private key and certificate as new 0600
        /// files in DIR (breakglass-REQ-n, breakglass-REQ-n-cert.pub) instead of
        /// printing them; not deleted by breakglass (the certificate dies at expiry)
        #[arg(long, value_name = "DIR")]
        key_dir: Option<std::path::PathBuf>,
    },
    /// Submit the after-action review (flags, or a TOML/JSON file)
    Review(ReviewArgs),
    /// Reviews waiting for certification that you certify or filed, with what
    /// blocks each (copied credentials not yet invalidated, ...)
    Reviews,
    /// Certify (or reject) an after-action review; unlocks the role
    Certify {
        /// The reviewed request (REQ-n, or its number)
        id: RequestId,
        /// Reject the review instead: it reopens for the requester, who sees --comment
        #[arg(long)]
        reject: bool,
        /// What you checked, or (with --reject) what the review must answer
        #[arg(long, default_value = "", value_name = "TEXT")]
        comment: String,
        /// Certify although the credentials the review says were copied are not
        /// confirmed invalidated, and say why (audited; alerts the SOC)
        #[arg(long, value_name = "WHY", conflicts_with = "reject")]
        invalidation_exception: Option<String>,
        #[command(flatten)]
        sign: SignArgs,
    },
    /// One recovery and expiry pass, then deliver due alerts
    Sweep,
    /// Serve people's consoles and commands on the broker's socket, and sweep
    ///
    /// Run it as the broker's own account (see docs/src/broker-setup.md): it alone
    /// reads the backend secrets, the checkpoint key and the store.
    Broker {
        /// The socket to listen on (default: [broker] socket in the config)
        #[arg(long, value_name = "PATH")]
        socket: Option<std::path::PathBuf>,
    },
    /// Sweep in a loop: whenever something is due (an expiry, a retry, an alert)
    Daemon {
        /// The longest sleep between passes: a pass runs when the next deadline
        /// comes or the store changes, and at least this often
        #[arg(long, default_value = "30s", value_name = "DURATION")]
        interval: String,
    },
    /// Verify or export the audit chain
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Store tools: move to a shared PostgreSQL store (team mode)
    #[command(subcommand)]
    Store(StoreCmd),
    /// One request's evidence for an auditor: `evidence REQ-n --output DIR`
    /// writes a self-contained bundle; `evidence verify DIR` checks one offline
    Evidence(EvidenceArgs),
    /// Print a shell completion script: bash, zsh or fish
    ///
    /// bash: `breakglass completions bash > ~/.local/share/bash-completion/completions/breakglass`;
    /// zsh: write `_breakglass` into a directory on $fpath; fish:
    /// `~/.config/fish/completions/breakglass.fish`. The Debian package installs all three.
    Completions {
        /// The shell to complete for
        #[arg(value_enum)]
        shell: CompletionShell,
    },
    /// Write the man pages (breakglass.1, and breakglass-COMMAND.1 for every
    /// command) into a directory
    Man {
        /// Where to write them (created if needed), e.g. ~/.local/share/man/man1
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct EvidenceArgs {
    #[command(subcommand)]
    pub verify: Option<EvidenceCmd>,
    /// The request (REQ-n)
    #[arg(required = true)]
    pub id: Option<RequestId>,
    /// A new (or empty) directory to write the bundle into (mode 0700)
    #[arg(long, value_name = "DIR", required = true)]
    pub output: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum EvidenceCmd {
    /// Check a bundle offline (no store or config needed): every file against
    /// the manifest, the events as a chain, the checkpoint, signatures, recordings
    Verify {
        /// The bundle's directory (as `evidence REQ-n --output DIR` wrote it)
        dir: PathBuf,
        /// The checkpoint key you trust (hex, from `audit keygen`) [default: the
        /// bundle's own, which proves consistency, not origin]
        #[arg(long, value_name = "HEX")]
        public_key: Option<String>,
    },
}

/// Signing a decision when the policy sets `approval_signing = "ssh"`.
#[derive(Args, Debug, Clone, Default)]
pub struct SignArgs {
    /// With approval_signing = "ssh": sign with this SSH key: a private key (ssh-keygen asks for its passphrase),
    /// or a .pub whose key is in ssh-agent [default: $BREAKGLASS_SSH_KEY, else
    /// ~/.ssh/id_ed25519 or ~/.ssh/id_ecdsa]
    #[arg(long, env = "BREAKGLASS_SSH_KEY", value_name = "FILE")]
    pub ssh_key: Option<PathBuf>,
    /// Print the statement to sign and exit (to sign on another machine with
    /// `ssh-keygen -Y sign -n breakglass -f KEY FILE` within 5 minutes)
    #[arg(long)]
    pub print_statement: bool,
    /// A statement signed elsewhere (from --print-statement)
    #[arg(long, value_name = "FILE", requires = "signature")]
    pub statement: Option<PathBuf>,
    /// Its signature (the FILE.sig that `ssh-keygen -Y sign` wrote)
    #[arg(long, value_name = "FILE", requires = "statement")]
    pub signature: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum StoreCmd {
    /// Copy the configured SQLite store (requests, audit chain with its hashes,
    /// outbox) into an empty PostgreSQL store, then verify the copy
    Migrate(MigrateArgs),
}

#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("target_url").required(true).args(["url_env", "url_file"]))]
pub struct MigrateArgs {
    /// The kind of store to copy into
    #[arg(long, value_enum)]
    pub to: MigrateTarget,
    /// Environment variable holding the target's connection string
    #[arg(long, value_name = "VAR")]
    pub url_env: Option<String>,
    /// File holding the target's connection string
    #[arg(long, value_name = "FILE")]
    pub url_file: Option<PathBuf>,
    /// TLS to the target [default: none for a socket or loopback, else verify-full]
    #[arg(long, value_enum)]
    pub tls: Option<TlsArg>,
    /// Trust anchors (PEM) for --tls verify-full
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum MigrateTarget {
    /// A PostgreSQL database (team mode)
    Postgres,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsArg {
    /// No TLS
    Disable,
    /// TLS without checking the server's certificate
    Require,
    /// TLS, the certificate chain and host name checked (against --ca-file, else the web PKI roots)
    VerifyFull,
}

#[derive(Subcommand, Debug)]
pub enum ConfigCmd {
    /// Print every problem with file and line; exit 2 if any
    Check,
}

#[derive(Subcommand, Debug)]
pub enum AuditCmd {
    /// Check the hash chain; names the first broken link
    Verify {
        /// Also prove the log extends this signed checkpoint (JSON, as carried in alerts)
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
        /// The checkpoint signer's public key (hex) [default: from the configured key]
        #[arg(long, value_name = "HEX")]
        public_key: Option<String>,
    },
    /// Print a signed checkpoint of the current log (needs [audit] checkpoint_key_file)
    Checkpoint,
    /// Create a checkpoint signing key (mode 0600) and print its public key
    Keygen {
        /// Where to write the private key (a new file, mode 0600)
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Write the audit events
    Export {
        /// How to write them
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
        /// Write here instead of stdout
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum ExportFormat {
    /// The stored events with their hashes, one JSON object per line, in the
    /// hashed form (docs/src/audit.md)
    Jsonl,
    /// OCSF 1.1 User Access Management events, one per line, for SIEMs
    Ocsf,
}

#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("incident_ref").required(true).args(["incident", "ticket"]))]
pub struct RequestArgs {
    /// Incident id from a configured source
    #[arg(long)]
    pub incident: Option<String>,
    /// Manual ticket reference (roles with a ticket_pattern)
    #[arg(long)]
    pub ticket: Option<String>,
    /// The emergency role (`breakglass roles` lists them)
    #[arg(long, value_name = "ROLE")]
    pub role: String,
    /// One of the role's conditions
    #[arg(long)]
    pub condition: String,
    /// Why you need it: what you will do, shown to approvers and certifiers
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    /// Access duration within the role's bounds, e.g. 15m [default: the role's]
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
    /// Vendor roles: the vendor's name
    #[arg(long, value_name = "NAME")]
    pub vendor_name: Option<String>,
    /// Vendor roles: the vendor's company
    #[arg(long, value_name = "COMPANY")]
    pub vendor_company: Option<String>,
    /// Wait for approval, then activate and print the credential
    #[arg(long)]
    pub wait: bool,
    /// Give up waiting after this long (exit 5)
    #[arg(long, default_value = "30m", value_name = "DURATION")]
    pub wait_timeout: String,
    /// For automation: never prompt; with --json print exactly one document
    /// (also for a refusal); exit 0 when approved (and, with --wait, activated),
    /// 5 when still pending, 3 when refused
    #[arg(long)]
    pub non_interactive: bool,
}

#[derive(Args, Debug)]
pub struct ReviewArgs {
    /// Your ended request (REQ-n, or its number)
    pub id: RequestId,
    /// Answers from a TOML or JSON file (keys as the flags, with underscores)
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// What you did with the access
    #[arg(long, value_name = "TEXT")]
    pub actions_taken: Option<String>,
    /// Which systems you touched
    #[arg(long, value_name = "TEXT")]
    pub systems_touched: Option<String>,
    /// Was emergency access necessary? yes|no
    #[arg(long, value_name = "YES|NO")]
    pub access_necessary: Option<String>,
    /// Were credentials copied anywhere? yes|no
    #[arg(long, value_name = "YES|NO")]
    pub credentials_copied: Option<String>,
    /// Where credentials were copied (with --credentials-copied yes)
    #[arg(long, value_name = "TEXT")]
    pub credentials_copied_where: Option<String>,
    /// What should change so this is not needed next time
    #[arg(long, value_name = "TEXT")]
    pub follow_ups: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum RolesCmd {
    /// Certifiers: re-approve a vendor role for another `recertify_every` (audited)
    Recertify {
        /// The vendor role
        role: String,
        /// What you reviewed: who may use it, its scope, its recent sessions
        #[arg(long)]
        comment: String,
        #[command(flatten)]
        sign: SignArgs,
    },
}
