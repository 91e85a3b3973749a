//! `[broker]`: an absolute socket path that fits a Unix socket address, and a
//! group name the system could hold; and whether a file is a person's client
//! config (only `[broker]` and `[ui]`).

use super::*;
use crate::config::broker::{BrokerConfig, DEFAULT_SOCKET, MAX_SOCKET_PATH};

/// The `[broker]` table, when present.
pub(super) fn broker(ctx: &mut Ctx, raw: Option<&Spanned<RawBroker>>) -> Option<BrokerConfig> {
    let table = raw?;
    let b = table.get_ref();
    let socket = match &b.socket {
        None => PathBuf::from(DEFAULT_SOCKET),
        Some(s) => {
            let text = s.get_ref();
            let path = PathBuf::from(text);
            if text.chars().any(char::is_control) {
                ctx.at(s, "[broker] socket holds a control character; write a plain path, e.g. socket = \"/run/breakglass/broker.sock\"");
            } else if !path.is_absolute() {
                ctx.at(s, format!("[broker] socket = \"{text}\" is not an absolute path; the broker and every person's config name the same socket, so write it whole, e.g. socket = \"{DEFAULT_SOCKET}\""));
            } else if text.ends_with('/') || path.file_name().is_none() {
                ctx.at(s, format!("[broker] socket = \"{text}\" names a directory; name the socket file in it, e.g. socket = \"{DEFAULT_SOCKET}\""));
            } else if text.len() > MAX_SOCKET_PATH {
                ctx.at(s, format!("[broker] socket is {} bytes long; a Unix socket path holds at most {MAX_SOCKET_PATH}: choose a shorter one, e.g. socket = \"{DEFAULT_SOCKET}\"", text.len()));
            }
            path
        }
    };
    let group = b.group.as_ref().map(|g| {
        if !valid_group_name(g.get_ref()) {
            ctx.at(g, "[broker] group is not a group name: write the group whose members may connect, e.g. group = \"breakglass-users\" (a letter or _, then letters, digits, _ . -; at most 32)");
        }
        g.get_ref().clone()
    });
    Some(BrokerConfig { socket, group })
}

/// What `useradd`/`groupadd` and systemd-sysusers accept everywhere: a letter or
/// `_`, then letters, digits, `_`, `.`, `-`; at most 32 characters.
fn valid_group_name(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    name.len() <= 32
        && (first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// A person's config: `[broker]` and at most `[ui]`. Every other key names the
/// policy, the store or a secret, which only the broker's config holds. (Taken
/// apart field by field, so a new key of the file format must be placed here.)
pub(super) fn client_only(raw: &RawConfig) -> bool {
    let RawConfig {
        policy,
        approval_signing,
        allowed_signers,
        demo,
        store,
        incident_sources,
        backends,
        alerts,
        recovery,
        ui: _,
        audit,
        broker,
        groups,
        roles,
    } = raw;
    broker.is_some()
        && policy.is_none()
        && approval_signing.is_none()
        && allowed_signers.is_none()
        && demo.is_none()
        && store.is_none()
        && incident_sources.is_empty()
        && backends.is_empty()
        && alerts.is_none()
        && recovery.is_none()
        && audit.is_none()
        && groups.is_none()
        && roles.is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names() {
        for ok in ["breakglass-users", "_ops", "wheel", "a.b", "G1"] {
            assert!(valid_group_name(ok), "{ok}");
        }
        let long = "g".repeat(33);
        for bad in [
            "", "1ops", "-x", "ops team", "ops;rm", "ops\n", "öps", &long,
        ] {
            assert!(!valid_group_name(bad), "{bad:?}");
        }
    }
}
