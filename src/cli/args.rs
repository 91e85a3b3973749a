//! Command-line definitions.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "breakglass",
    version,
    about = "Governed emergency (break-glass) access: incident-bound requests, dual approval, \
             short-lived credentials, automatic revocation, audit and certification.",
    after_help = crate::exit::HELP
)]
pub struct Cli {
    /// Config file [default: $BREAKGLASS_CONFIG, else the platform config dir]
    #[arg(long, global = true, env = "BREAKGLASS_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Act as a demo persona. Refused outside demo mode: identity is the OS account.
    #[arg(long = "as", global = true, value_name = "PERSONA")]
    pub as_persona: Option<String>,

    /// Machine-readable output (one JSON document on stdout)
    #[arg(long, global = true)]
    pub json: bool,

    /// Console theme: default, light, high-contrast, colorblind, or a user theme
    #[arg(long, global = true, value_name = "NAME")]
    pub theme: Option<String>,

    /// Without a command, opens the interactive console.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Open the console on the embedded demo (throwaway config, SQLite store, demo backend)
    Demo {
        /// Reuse or create the demo in this directory instead of a fresh temp dir
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
    /// List roles with their lock state
    Roles,
    /// Request emergency access
    Request(RequestArgs),
    /// Activate an approved request: grant access and print the credential once
    Activate { id: String },
    /// Approve someone else's request
    Approve {
        id: String,
        #[arg(long)]
        comment: Option<String>,
    },
    /// Deny a request
    Deny {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Withdraw your own pending or approved request
    Cancel { id: String },
    /// Show one request (with live TTL), or your open ones
    Status {
        id: Option<String>,
        /// Every request, not only open ones
        #[arg(long)]
        all: bool,
    },
    /// End active access now
    Revoke {
        id: String,
        #[arg(long, default_value = "ended early")]
        reason: String,
    },
    /// Extend active access
    Extend {
        id: String,
        /// How much longer, e.g. 10m
        #[arg(long, value_name = "DURATION")]
        by: String,
        #[arg(long)]
        reason: String,
    },
    /// Submit the after-action review (flags, or a TOML/JSON file)
    Review(ReviewArgs),
    /// Certify (or reject) an after-action review; unlocks the role
    Certify {
        id: String,
        #[arg(long)]
        reject: bool,
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// One recovery and expiry pass, then deliver due alerts
    Sweep,
    /// Sweep in a loop
    Daemon {
        #[arg(long, default_value = "5s", value_name = "DURATION")]
        interval: String,
    },
    /// Verify or export the audit chain
    #[command(subcommand)]
    Audit(AuditCmd),
}

#[derive(Subcommand, Debug)]
pub enum ConfigCmd {
    /// Print every problem with file and line; exit 2 if any
    Check,
}

#[derive(Subcommand, Debug)]
pub enum AuditCmd {
    /// Check the hash chain; names the first broken link
    Verify,
    /// Write the audit events
    Export {
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
        /// Write here instead of stdout
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum ExportFormat {
    /// The stored events with their hashes, one JSON object per line
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
    #[arg(long)]
    pub role: String,
    /// One of the role's conditions
    #[arg(long)]
    pub condition: String,
    #[arg(long)]
    pub reason: String,
    /// Access duration within the role's bounds, e.g. 15m [default: the role's]
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
    /// Wait for approval, then activate and print the credential
    #[arg(long)]
    pub wait: bool,
    /// Give up waiting after this long (exit 5)
    #[arg(long, default_value = "30m", value_name = "DURATION")]
    pub wait_timeout: String,
}

#[derive(Args, Debug)]
pub struct ReviewArgs {
    pub id: String,
    /// Answers from a TOML or JSON file (keys as the flags, with underscores)
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    #[arg(long)]
    pub actions_taken: Option<String>,
    #[arg(long)]
    pub systems_touched: Option<String>,
    /// Was emergency access necessary? yes|no
    #[arg(long, value_name = "YES|NO")]
    pub access_necessary: Option<String>,
    /// Were credentials copied anywhere? yes|no
    #[arg(long, value_name = "YES|NO")]
    pub credentials_copied: Option<String>,
    #[arg(long)]
    pub credentials_copied_where: Option<String>,
    #[arg(long)]
    pub follow_ups: Option<String>,
}
