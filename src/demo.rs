//! The embedded default: a throwaway demo config with incidents, roles, personas,
//! the example exec plugin and a SQLite store, all in one directory: one per
//! user, started afresh on each `demo` run (`default_dir`, `reset`), or one the
//! person names and keeps.

use std::path::{Path, PathBuf};

pub const PLUGIN: &str = include_str!("../examples/exec-plugin.sh");
pub const PERSONAS: [&str; 4] = ["alice", "bob", "carol", "dave"];

/// How the demo's config starts: `reset` only empties a directory holding it.
const HEADER: &str = "# breakglass demo configuration (throwaway).";

const CONFIG: &str = r#"# breakglass demo configuration (throwaway). Personas stand in for people:
# act as one with --as NAME. Outside demo mode, identity is the OS account.
[demo]
personas = ["alice", "bob", "carol", "dave"]

[store]
kind = "sqlite"
path = "breakglass.sqlite"

[[incident_sources]]
name = "demo-incidents"
kind = "file"
path = "incidents.toml"

[backends.demo]
kind = "demo"

[backends.plugin]
kind = "exec"
command = "plugins/exec-plugin.sh"
args = ["--state", "@DIR@/plugin-state"]
timeout = "10s"

[[alerts.sinks]]
kind = "file"
path = "alerts.jsonl"

[groups]
oncall = ["alice", "bob"]
sre-leads = ["bob", "carol", "dave"]
security = ["dave"]

[[roles]]
name = "prod-db-emergency-dba"
description = "Write access to the production database during an outage"
backend = "demo"
scope = { member_of = ["emergency_dba"] }
default_ttl = "15m"
max_ttl = "30m"
max_extensions = 1
conditions = ["production outage", "locked-out administrators", "failed automation path"]
requesters = ["@oncall"]
approvers = ["@sre-leads"]
approvals_required = 2
certifiers = ["@security"]

[[roles]]
name = "k8s-cluster-admin"
description = "cluster-admin on the production Kubernetes cluster"
backend = "demo"
scope = { cluster = "prod-eu-1", cluster_role = "cluster-admin" }
default_ttl = "10m"
max_ttl = "20m"
max_extensions = 2
conditions = ["production outage", "failed automation path"]
ticket_pattern = "^(INC|CHG)-[0-9]+$"
requesters = ["@oncall"]
approvers = ["@sre-leads"]
certifiers = ["@security"]

[[roles]]
name = "payments-api-operator"
description = "Operator access to the payments API (via the example exec plugin)"
backend = "plugin"
scope = { service = "payments-api", permissions = ["restart", "scale"] }
default_ttl = "15m"
max_ttl = "45m"
conditions = ["production outage", "failed automation path"]
requesters = ["@oncall"]
approvers = ["@sre-leads"]
certifiers = ["@security"]

[[roles]]
name = "iam-breakglass-admin"
description = "Identity-provider super admin when every administrator is locked out"
backend = "demo"
scope = { idp = "corp-sso", role = "super-admin" }
default_ttl = "10m"
max_ttl = "15m"
conditions = ["locked-out administrators"]
requesters = ["@oncall"]
approvers = ["@sre-leads"]
certifiers = ["@security"]
"#;

fn incidents(now: chrono::DateTime<chrono::Utc>) -> String {
    let ago = |m: i64| crate::domain::time::ts(now - chrono::Duration::minutes(m));
    format!(
        r#"# Demo incidents (file source).
[[incidents]]
id = "INC-1042"
title = "Checkout API returning 503 for EU customers"
severity = "SEV1"
status = "open"
opened_at = "{}"
url = "https://status.example.com/incidents/1042"

[[incidents]]
id = "INC-1043"
title = "Primary database replica lag above 10 minutes"
severity = "SEV2"
status = "acknowledged"
opened_at = "{}"

[[incidents]]
id = "INC-1044"
title = "All SSO administrators locked out after IdP certificate rotation"
severity = "SEV1"
status = "open"
opened_at = "{}"

[[incidents]]
id = "INC-1039"
title = "Search latency regression (resolved)"
severity = "SEV3"
status = "resolved"
opened_at = "{}"
"#,
        ago(12),
        ago(47),
        ago(5),
        ago(600)
    )
}

/// Writes the demo config, incidents and plugin into `dir` (created if needed) and
/// returns the config path. An existing demo config there is kept.
pub fn prepare(dir: &Path) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir.join("plugins"))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    let config = dir.join("breakglass.toml");
    if !config.exists() {
        let abs = dir.canonicalize()?;
        std::fs::write(&config, CONFIG.replace("@DIR@", &abs.to_string_lossy()))?;
        std::fs::write(dir.join("incidents.toml"), incidents(chrono::Utc::now()))?;
        let plugin = dir.join("plugins/exec-plugin.sh");
        std::fs::write(&plugin, PLUGIN)?;
        std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(config)
}

/// This user's one demo directory, used when `demo` is given no `--dir`:
/// `$XDG_RUNTIME_DIR/breakglass/demo` (the user's own, emptied at logout), or
/// `<data dir>/demo` where there is no runtime dir. None without a home.
pub fn default_dir() -> Option<PathBuf> {
    let dirs = directories::ProjectDirs::from("", "", "breakglass")?;
    Some(dirs.runtime_dir().unwrap_or(dirs.data_dir()).join("demo"))
}

/// Removes a demo directory so `prepare` starts it afresh: only one that holds
/// a demo config (or nothing). Anything else there, a file or a link in its
/// place, is refused and left as it is.
pub fn reset(dir: &Path) -> std::io::Result<()> {
    let meta = match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        other => other?,
    };
    let refuse = |why: &str| {
        Err(std::io::Error::other(format!(
            "{} {why}; it was left as it is",
            dir.display()
        )))
    };
    if !meta.is_dir() {
        return refuse("is not a directory");
    }
    let ours =
        std::fs::read_to_string(dir.join("breakglass.toml")).is_ok_and(|t| t.starts_with(HEADER));
    if !ours && std::fs::read_dir(dir)?.next().is_some() {
        return refuse("holds something other than a breakglass demo");
    }
    std::fs::remove_dir_all(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_empties_a_demo_and_refuses_anything_else() {
        let tmp = tempfile::tempdir().expect("a temp dir");
        let demo = tmp.path().join("demo");
        prepare(&demo).expect("prepare");
        std::fs::write(demo.join("breakglass.sqlite"), "state").expect("write");
        reset(&demo).expect("a demo is reset");
        assert!(!demo.exists());
        reset(&demo).expect("nothing there is fine");

        let other = tmp.path().join("other");
        std::fs::create_dir(&other).expect("mkdir");
        std::fs::write(other.join("notes.txt"), "mine").expect("write");
        let e = reset(&other).expect_err("not a demo");
        assert!(e.to_string().contains("left as it is"), "{e}");
        assert!(other.join("notes.txt").exists());

        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&other, &link).expect("symlink");
        reset(&link).expect_err("a link is not followed");
        assert!(other.join("notes.txt").exists());
    }
}
