//! No credential in any URL of the config: user info (`https://u:PW@host`) or a
//! query parameter named like a secret (`?api_key=...`, `&token=...`). A config
//! file is read by more people and tools than a secret may be, and URLs end up
//! in logs and error messages. The refusal names where, never the value.

use super::Ctx;
use toml::Spanned;

/// Query parameter names (or their `_`/`-`/`.` separated words) that carry secrets.
const SECRET_WORDS: &[&str] = &[
    "token",
    "key",
    "apikey",
    "secret",
    "password",
    "passwd",
    "pwd",
    "pass",
    "signature",
    "sig",
    "auth",
    "authorization",
    "credential",
    "credentials",
    "session",
    "jwt",
    "bearer",
];

fn secret_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [
        "token",
        "secret",
        "passw",
        "apikey",
        "signature",
        "credential",
    ]
    .iter()
    .any(|w| lower.contains(w))
        || lower
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|w| SECRET_WORDS.contains(&w))
}

/// Where `url` carries a credential, if it does (never the value itself).
pub(super) fn credential_in(url: &str) -> Option<String> {
    let parsed = reqwest::Url::parse(url.trim()).ok()?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Some("user info (user:password@)".into());
    }
    parsed
        .query_pairs()
        .find(|(k, _)| secret_name(k))
        .map(|(k, _)| format!("the query parameter \"{}\"", crate::sanitize::line(&k, 40)))
}

/// Records a problem when `u` carries a credential; `what` names the setting,
/// `instead` says where the secret goes. True when refused: later checks must
/// not echo the URL.
pub(super) fn refuse_credentials(
    ctx: &mut Ctx,
    u: &Spanned<String>,
    what: &str,
    instead: &str,
) -> bool {
    match credential_in(u.get_ref()) {
        Some(place) => {
            ctx.at(
                u,
                format!("{what}: credentials never go in a URL (this one has {place}); {instead}"),
            );
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_user_info_and_secret_query_parameters() {
        for (url, found) in [
            ("https://u:PW@vault.example.com", true),
            ("https://u@example.com/x", true),
            ("https://api.example.com/x?api_key=abc", true),
            ("https://api.example.com/x?a=1&token=abc", true),
            ("https://api.example.com/x?X-Amz-Signature=abc", true),
            ("https://api.example.com/x?sig=abc", true),
            ("https://api.example.com/x?client_secret=abc", true),
            ("https://api.example.com/x?password=abc", true),
            ("https://api.example.com/x?limit=10&status=open", false),
            ("https://api.example.com/monkey?keyboard=1", false),
            ("https://api.example.com/breakglass", false),
        ] {
            assert_eq!(credential_in(url).is_some(), found, "{url}");
        }
        let place = credential_in("https://x.example?access_token=SECRET").unwrap();
        assert!(!place.contains("SECRET"), "{place}");
    }
}
