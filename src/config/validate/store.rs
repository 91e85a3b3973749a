//! `[store]`: SQLite (the default) or PostgreSQL, and how identity is taken.

use super::*;

/// The `[store]` table: `kind = "sqlite"` (the default) or `"postgres"`, and
/// `identity = "os" | "database"`.
pub(super) fn store_config(
    ctx: &mut Ctx,
    raw: Option<&RawStore>,
    resolve: &dyn Fn(&str) -> PathBuf,
) -> (StoreConfig, StoreIdentity) {
    let Some(s) = raw else {
        return (
            StoreConfig::Sqlite {
                path: data_dir_or_cwd().join("breakglass.sqlite"),
            },
            StoreIdentity::Os,
        );
    };
    let kind = s.kind.get_ref().as_str();
    let identity = match s.identity.as_ref().map(|i| i.get_ref().as_str()) {
        None | Some("os") => StoreIdentity::Os,
        Some("database") if kind == "postgres" => StoreIdentity::Database,
        Some("database") => {
            ctx.at(s.identity.as_ref().expect("identity is set: its value was matched"), "identity = \"database\" needs kind = \"postgres\" (the store vouches for who is acting through each person's own database login); with sqlite write identity = \"os\"");
            StoreIdentity::Os
        }
        Some(other) => {
            ctx.at(s.identity.as_ref().expect("identity is set: its value was matched"), format!(
                "identity = \"{other}\" is not known; write identity = \"os\" (the operating-system account) or \"database\" (the PostgreSQL login, kind = \"postgres\" only)"
            ));
            StoreIdentity::Os
        }
    };
    // Keys that belong to the other kind are mistakes worth a line number.
    let foreign: Vec<(&str, Option<std::ops::Range<usize>>)> = if kind == "sqlite" {
        vec![
            ("url", s.url.as_ref().map(|v| v.span())),
            ("url_env", s.url_env.as_ref().map(|v| v.span())),
            ("url_file", s.url_file.as_ref().map(|v| v.span())),
            ("tls", s.tls.as_ref().map(|v| v.span())),
            ("ca_file", s.ca_file.as_ref().map(|v| v.span())),
            ("data_dir", s.data_dir.as_ref().map(|v| v.span())),
        ]
    } else if kind == "postgres" {
        vec![("path", s.path.as_ref().map(|v| v.span()))]
    } else {
        vec![]
    };
    for (key, span) in foreign {
        if let Some(span) = span {
            let line = ctx.line_of(span.start);
            ctx.problems.push(Problem {
                file: ctx.file.clone(),
                line: Some(line),
                message: if kind == "sqlite" {
                    format!("[store] {key} is for kind = \"postgres\"; a sqlite store takes only path")
                } else {
                    "[store] path is for kind = \"sqlite\"; a postgres store reads its connection string from url_env or url_file (local files go to data_dir)".to_string()
                },
            });
        }
    }
    let store = match kind {
        "sqlite" => StoreConfig::Sqlite {
            path: match &s.path {
                Some(p) => resolve(p.get_ref()),
                None => data_dir_or_cwd().join("breakglass.sqlite"),
            },
        },
        "postgres" => {
            if let Some(u) = &s.url {
                ctx.at(u, "[store] the connection string may carry a password and never goes in the config file; remove url and write url_env = \"BREAKGLASS_STORE_URL\" (an environment variable holding it) or url_file = \"/etc/breakglass/store.url\"");
            }
            let url = match (&s.url_env, &s.url_file) {
                (Some(e), None) => {
                    env_name(ctx, e, "url_env");
                    PgUrlSource::Env(e.get_ref().clone())
                }
                (None, Some(f)) => {
                    let path = resolve(f.get_ref());
                    secret_file(ctx, f, &path, "[store] url_file");
                    PgUrlSource::File(path)
                }
                (Some(e), Some(_)) => {
                    ctx.at(e, "[store] write url_env or url_file, not both");
                    PgUrlSource::Env(e.get_ref().clone())
                }
                (None, None) => {
                    if s.url.is_none() {
                        ctx.at(&s.kind, "a postgres store needs url_env = \"BREAKGLASS_STORE_URL\" (an environment variable holding the connection string) or url_file = \"/etc/breakglass/store.url\"");
                    }
                    PgUrlSource::Env(String::new())
                }
            };
            let tls = match s.tls.as_ref().map(|t| t.get_ref().as_str()) {
                None => None,
                Some("disable") => Some(PgTls::Disable),
                Some("require") => Some(PgTls::Require),
                Some("verify-full") => Some(PgTls::VerifyFull),
                Some(other) => {
                    ctx.at(s.tls.as_ref().expect("tls is set: its value was matched"), format!(
                        "[store] tls = \"{other}\" is not known; write tls = \"verify-full\" (encrypted, certificate and host name checked), \"require\" (encrypted, certificate not checked) or \"disable\""
                    ));
                    None
                }
            };
            if let (Some(f), Some(PgTls::Disable | PgTls::Require)) = (&s.ca_file, tls) {
                ctx.at(f, "[store] ca_file is only used with tls = \"verify-full\"");
            }
            StoreConfig::Postgres(PgStoreConfig {
                url,
                tls,
                ca_file: s.ca_file.as_ref().map(|f| resolve(f.get_ref())),
                data_dir: s
                    .data_dir
                    .as_ref()
                    .map(|d| resolve(d.get_ref()))
                    .unwrap_or_else(data_dir_or_cwd),
            })
        }
        other => {
            ctx.at(
                &s.kind,
                format!("store kind \"{other}\" is not known; write kind = \"sqlite\" (one host) or kind = \"postgres\" (a shared team store)"),
            );
            StoreConfig::Sqlite {
                path: PathBuf::new(),
            }
        }
    };
    (store, identity)
}

fn data_dir_or_cwd() -> PathBuf {
    crate::config::default_data_dir().unwrap_or_else(|| PathBuf::from("."))
}
