//! Who is acting. Outside demo mode it is the operating-system account of the real
//! uid, never a flag or `$USER`, which anyone can set.

use crate::domain::Policy;

pub mod ssh_sign;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(
        "--as is only accepted in demo mode; outside it you act as your operating-system account"
    )]
    AsOutsideDemo,
    #[error("`{0}` is not a demo persona; personas are: {1}")]
    UnknownPersona(String, String),
    #[error("cannot tell who you are: uid {0} has no user name in the system's user database")]
    NoUserName(u32),
    #[error(
        "[store] identity = \"database\" needs a store with database logins (kind = \"postgres\")"
    )]
    NoSessionUser,
}

/// The real uid's user name from the system user database.
pub fn os_user() -> Result<String, IdentityError> {
    let uid = nix::unistd::getuid();
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(u)) => Ok(u.name),
        _ => Err(IdentityError::NoUserName(uid.as_raw())),
    }
}

/// Resolves the acting identity: a persona in demo mode when asked for, else the OS user.
pub fn resolve(policy: &Policy, as_persona: Option<&str>) -> Result<String, IdentityError> {
    match (as_persona, &policy.demo_personas) {
        (None, _) => os_user(),
        (Some(_), None) => Err(IdentityError::AsOutsideDemo),
        (Some(p), Some(personas)) => {
            if personas.iter().any(|x| x == p) {
                Ok(p.to_string())
            } else {
                Err(IdentityError::UnknownPersona(p.into(), personas.join(", ")))
            }
        }
    }
}

/// With `[store] identity = "database"`: the store connection's `session_user`
/// (each person connects with their own database login, so the store vouches for
/// who acts). `--as` stays demo-only, as with OS identity.
pub fn resolve_database(
    policy: &Policy,
    as_persona: Option<&str>,
    session_user: Option<String>,
) -> Result<String, IdentityError> {
    match as_persona {
        Some(_) => resolve(policy, as_persona),
        None => session_user.ok_or(IdentityError::NoSessionUser),
    }
}

/// This machine's name: the `host` of a grant's owner and of syslog records.
pub fn this_host() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}
