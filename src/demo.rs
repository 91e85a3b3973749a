//! The embedded default: a throwaway demo config with incidents, roles, personas,
//! the example exec plugin and a SQLite store, all in one temporary directory.

use std::path::{Path, PathBuf};

pub const PLUGIN: &str = include_str!("../examples/exec-plugin.sh");
pub const PERSONAS: [&str; 4] = ["alice", "bob", "carol", "dave"];

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

/// A fresh demo directory under the system temp dir, kept after exit so the
/// printed commands keep working.
pub fn fresh_dir() -> std::io::Result<PathBuf> {
    let d = tempfile::Builder::new()
        .prefix("breakglass-demo-")
        .tempdir()?;
    Ok(d.keep())
}
