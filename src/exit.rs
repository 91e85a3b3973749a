//! Documented exit codes (also in `--help` and docs/src/command-line.md).

pub const OK: i32 = 0;
/// Internal or store failure.
pub const FAILURE: i32 = 1;
/// Bad usage, bad config, unknown request or role.
pub const USAGE: i32 = 2;
/// Refused by policy (who, what, when), including locked roles.
pub const REFUSED: i32 = 3;
/// A backend or incident source failed.
pub const BACKEND: i32 = 4;
/// Still pending: `--wait` gave up before a decision.
pub const PENDING: i32 = 5;
/// The audit chain does not verify.
pub const AUDIT_BROKEN: i32 = 6;

pub const HELP: &str = "Exit codes: 0 ok, 1 internal/store failure, 2 usage or config error, \
3 refused by policy (or role locked), 4 backend or incident source failure, \
5 still pending (--wait timed out), 6 audit chain broken.";
