//! What an install puts beside the binary, from the real binary: completion
//! scripts a real bash loads and completes with, man pages groff renders, and
//! `--version` naming the commit (build.rs, whose logic runs here on scratch
//! git repositories).

use crate::support::*;
use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_breakglass");

/// build.rs itself: its `commit` is what `--version` prints.
#[allow(dead_code)] // its `main` is the build script's
#[path = "../../build.rs"]
mod build_script;

/// The top-level commands, as clap defines them.
fn commands() -> Vec<String> {
    use clap::CommandFactory;
    breakglass::cli::Cli::command()
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| s.get_name().to_string())
        .collect()
}

fn completions(shell: &str) -> String {
    let o = Command::new(BIN)
        .args(["completions", shell])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    stdout(&o)
}

/// What bash's completion offers for `line` (the word under the cursor last).
fn bash_completes(script: &Path, words: &[&str]) -> Vec<String> {
    let words_q: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let o = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source '{}' || exit 9
            complete -p breakglass || exit 8
            COMP_WORDS=({})
            COMP_CWORD={}
            COMP_LINE=\"${{COMP_WORDS[*]}}\"
            COMP_POINT=${{#COMP_LINE}}
            _breakglass breakglass '{}' '{}'
            printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display(),
            words_q.join(" "),
            words.len() - 1,
            words[words.len() - 1],
            words[words.len().saturating_sub(2)],
        ))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("complete -o bashdefault -o default -o nosort -F _breakglass breakglass"),
        "{out}"
    );
    lines
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn bash_loads_the_completions_and_completes_commands_and_options() {
    let tmp = tempfile::tempdir().unwrap();
    let script = tmp.path().join("breakglass.bash");
    std::fs::write(&script, completions("bash")).unwrap();

    let all = bash_completes(&script, &["breakglass", ""]);
    for c in commands() {
        assert!(all.contains(&c), "{c} not offered: {all:?}");
    }
    assert_eq!(bash_completes(&script, &["breakglass", "aud"]), ["audit"]);
    let audit = bash_completes(&script, &["breakglass", "audit", ""]);
    for sub in ["verify", "checkpoint", "keygen", "export"] {
        assert!(audit.contains(&sub.to_string()), "{audit:?}");
    }
    assert_eq!(
        bash_completes(&script, &["breakglass", "request", "--ro"]),
        ["--role"]
    );
    assert_eq!(
        bash_completes(&script, &["breakglass", "completions", "f"]),
        ["fish"]
    );
}

#[test]
fn zsh_and_fish_completions_name_every_command() {
    let zsh = completions("zsh");
    assert!(zsh.starts_with("#compdef breakglass\n"), "{zsh}");
    let fish = completions("fish");
    for c in commands() {
        assert!(zsh.contains(&format!("'{c}:")), "zsh lacks {c}");
        assert!(
            fish.contains(&format!("-a \"{c}\"")),
            "fish lacks {c}:\n{fish}"
        );
    }
    // A bad shell is a usage error, not a script.
    let o = Command::new(BIN)
        .args(["completions", "powershell"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(stdout(&o).is_empty());
}

#[test]
fn man_writes_a_page_per_command_that_groff_renders() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("man1");
    let o = Command::new(BIN)
        .args(["man", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let listed: Vec<String> = stdout(&o).lines().map(str::to_string).collect();
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    on_disk.sort();
    assert_eq!(listed, on_disk, "it lists what it wrote");

    let main = std::fs::read_to_string(dir.join("breakglass.1")).unwrap();
    assert!(
        main.lines()
            .find(|l| !l.starts_with(".ie") && !l.starts_with(".el"))
            .is_some_and(|l| l.starts_with(".TH breakglass 1 ")),
        "{main}"
    );
    // The version is the binary's, commit included.
    let version = stdout(&Command::new(BIN).arg("--version").output().unwrap());
    let version = version.trim().trim_start_matches("breakglass ");
    assert!(main.contains(version), "{main}");
    // The config's default is described, not the default of whoever generated it.
    assert!(
        main.contains("$XDG_CONFIG_HOME/breakglass/breakglass.toml"),
        "{main}"
    );
    assert!(!main.contains(&std::env::var("HOME").unwrap()), "{main}");
    for c in commands() {
        assert!(
            main.contains(&format!("breakglass\\-{}(1)", c.replace('-', "\\-"))),
            "breakglass.1 does not name {c}"
        );
        assert!(dir.join(format!("breakglass-{c}.1")).is_file(), "{c}");
    }
    assert!(dir.join("breakglass-audit-verify.1").is_file());

    // groff renders every page without a warning.
    for page in &listed {
        let o = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(page)
            .output()
            .unwrap_or_else(|e| panic!("groff: {e} (scripts/test installs groff-base)"));
        assert!(
            o.status.success() && o.stderr.is_empty(),
            "{page}: {}",
            stderr(&o)
        );
    }
    let text = Command::new("groff")
        // -P-cbou: plain text, no overstriking for bold.
        .args(["-man", "-Tutf8", "-P-cbou"])
        .arg(dir.join("breakglass-request.1"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("--role"), "{text}");

    // A directory it cannot make: said, exit 1.
    let file = tmp.path().join("file");
    std::fs::write(&file, "").unwrap();
    let o = Command::new(BIN)
        .args(["man", "--dir"])
        .arg(file.join("man1"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("cannot write the man pages"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn version_names_the_release_and_the_commit_built() {
    let o = Command::new(BIN).arg("--version").output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    let line = stdout(&o);
    let prefix = format!("breakglass {} (commit ", env!("CARGO_PKG_VERSION"));
    let commit = line
        .trim()
        .strip_prefix(&prefix)
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{line:?}"));
    // The tree may have changed since the build (+dirty is the tree's state
    // when the sources last changed); the commit may not.
    let now = build_script::commit(Path::new(env!("CARGO_MANIFEST_DIR")));
    assert_eq!(
        commit.trim_end_matches("+dirty"),
        now.trim_end_matches("+dirty"),
        "{line}"
    );
    assert_eq!(stdout(&Command::new(BIN).arg("-V").output().unwrap()), line);
}

fn git(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.org"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "git {args:?}: {}", stderr(&o));
    stdout(&o).trim().to_string()
}

#[test]
fn the_build_script_names_the_commit_marks_a_dirty_tree_and_falls_back_to_unknown() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("src");
    std::fs::create_dir(&dir).unwrap();
    // Not a checkout (even inside one: only the package's own .git counts).
    assert_eq!(build_script::commit(&dir), "unknown");

    git(&dir, &["init", "-q"]);
    assert_eq!(build_script::commit(&dir), "unknown", "no commit yet");
    std::fs::write(dir.join("a.rs"), "fn a() {}\n").unwrap();
    git(&dir, &["add", "a.rs"]);
    git(&dir, &["commit", "-qm", "one"]);
    let full = git(&dir, &["rev-parse", "HEAD"]);
    let clean = build_script::commit(&dir);
    assert!(
        clean.len() >= 7 && full.starts_with(&clean),
        "{clean} of {full}"
    );
    // An untracked file is not a change to the source.
    std::fs::write(dir.join("notes.txt"), "x").unwrap();
    assert_eq!(build_script::commit(&dir), clean);
    std::fs::write(dir.join("a.rs"), "fn a() { todo!() }\n").unwrap();
    assert_eq!(build_script::commit(&dir), format!("{clean}+dirty"));
    // A subdirectory of a checkout is not the checkout's root.
    std::fs::create_dir(dir.join("inner")).unwrap();
    assert_eq!(build_script::commit(&dir.join("inner")), "unknown");
}
