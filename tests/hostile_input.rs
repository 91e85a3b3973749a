//! The hostile-input campaign: escape sequences, C1 controls, bidi overrides and
//! huge strings from incident sources, requesters and plugins never reach a
//! terminal through the CLI; parsers take arbitrary input without panicking.

mod support;

use proptest::prelude::*;
use support::*;

/// Terminal attacks: OSC 52 clipboard write, OSC 8 link, title change, cursor
/// position query, CSI via C1, bidi override, BEL.
const NASTY: &str = "\u{1b}]52;c;cm0gLXJmIH4=\u{7}\u{1b}]8;;http://evil.example\u{1b}\\link\u{1b}]8;;\u{1b}\\\u{1b}]0;pwned\u{7}\u{1b}[6n\u{9b}31m\u{202e}gnp.exe\u{7}";

/// A TOML basic string, controls escaped as \uXXXX so the file carries them.
fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn assert_clean(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    assert!(!bytes.contains(&0x1b), "{what}: raw ESC in output");
    assert!(!bytes.contains(&0x07), "{what}: raw BEL in output");
    for bad in ['\u{9b}', '\u{9d}', '\u{202e}', '\u{2066}'] {
        assert!(!text.contains(bad), "{what}: {:?} in output", bad);
    }
}

#[test]
fn no_cli_output_carries_terminal_control_sequences() {
    let (tmp, cfg) = demo_dir();
    let huge = "A".repeat(100_000);
    std::fs::write(
        tmp.path().join("incidents.toml"),
        format!(
            "[[incidents]]\nid = \"INC-1\"\ntitle = {}\nseverity = {}\nurl = {}\n\n[[incidents]]\nid = \"INC-2\"\ntitle = \"{huge}\"\nseverity = \"SEV2\"\n",
            toml_str(&format!("DB {NASTY} down")),
            toml_str(&format!("SEV1{NASTY}")),
            toml_str(&format!("https://x/{NASTY}")),
        ),
    )
    .unwrap();
    // A plugin whose error message is an attack too.
    std::fs::write(
        tmp.path().join("plugins/exec-plugin.sh"),
        "#!/bin/sh\nprintf 'target down \\033]52;c;ZXZpbA==\\007\\033[2J\\302\\233' >&2\nexit 1\n",
    )
    .unwrap();
    let reason = format!("primary read-only {NASTY} {}", "x".repeat(3000));
    let run = |who: Option<&str>, args: &[&str]| {
        let o = bg(&cfg, who, args);
        assert_clean(&format!("{args:?} stdout"), &o.stdout);
        assert_clean(&format!("{args:?} stderr"), &o.stderr);
        o
    };
    let o = run(None, &["incidents"]);
    assert!(stdout(&o).contains("DB"), "{}", stdout(&o));
    assert!(stdout(&o).contains('…'), "the 100 KB title is truncated");
    assert!(stdout(&o).len() < 5_000);
    run(None, &["--json", "incidents"]);
    run(None, &["roles"]);
    run(
        Some("alice"),
        &[
            "request",
            "--incident",
            "INC-1",
            "--role",
            "k8s-cluster-admin",
            "--condition",
            "production outage",
            "--reason",
            &reason,
        ],
    );
    run(
        Some("alice"),
        &[
            "request",
            "--incident",
            "INC-1",
            "--role",
            "payments-api-operator",
            "--condition",
            "production outage",
            "--reason",
            &reason,
        ],
    );
    run(Some("bob"), &["approve", "REQ-1", "--comment", NASTY]);
    run(Some("bob"), &["approve", "REQ-2"]);
    run(Some("alice"), &["status", "REQ-1"]);
    run(None, &["status", "--all"]);
    run(None, &["--json", "status", "REQ-1"]);
    let o = run(Some("alice"), &["activate", "REQ-2"]);
    assert!(stderr(&o).contains("target down"), "{}", stderr(&o));
    run(Some("alice"), &["status", "REQ-2"]);
    run(Some("carol"), &["deny", "REQ-1", "--reason", NASTY]);
    run(Some("alice"), &["status", "REQ-1"]);
    run(None, &["audit", "export"]);
    run(None, &["audit", "export", "--format", "ocsf"]);
    run(None, &["audit", "verify"]);
    run(None, &["sweep"]);
    // An unknown request id or ticket is echoed back sanitised.
    run(
        Some("alice"),
        &[
            "request",
            "--ticket",
            &format!("INC-{NASTY}"),
            "--role",
            "k8s-cluster-admin",
            "--condition",
            "production outage",
            "--reason",
            "r",
        ],
    );
    run(
        Some("alice"),
        &[
            "request",
            "--incident",
            NASTY,
            "--role",
            "k8s-cluster-admin",
            "--condition",
            "production outage",
            "--reason",
            "r",
        ],
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn sanitised_text_has_no_controls_and_respects_its_length(s in any::<String>(), max in 1usize..200) {
        for out in [breakglass::sanitize::line(&s, max), breakglass::sanitize::text(&s, max)] {
            prop_assert!(out.chars().filter(|c| *c != '\n').all(|c| !c.is_control()));
            let bidi = out.contains('\u{202e}') || out.contains('\u{2066}');
            prop_assert!(!bidi, "bidi control left in {:?}", out);
            prop_assert!(out.chars().count() <= max + 1);
        }
        prop_assert!(!breakglass::sanitize::line(&s, max).contains('\n'));
    }

    #[test]
    fn replayed_recordings_never_act_on_the_reviewers_terminal(
        parts in prop::collection::vec(prop_oneof![
            ".{0,12}",
            Just("\u{1b}]52;c;ZXZpbA==\u{7}".to_string()),
            Just("\u{1b}]0;title\u{1b}\\".to_string()),
            Just("\u{1b}[6n".to_string()),
            Just("\u{1b}[c".to_string()),
            Just("\u{9b}5n".to_string()),
            Just("\u{1b}P+q544e\u{1b}\\".to_string()),
            Just("\u{1b}[31m".to_string()),
            Just("\u{1b}".to_string()),
            Just("\u{1b}[".to_string()),
        ], 0..12),
    ) {
        let mut f = breakglass::sanitize::ReplayFilter::default();
        let out: String = parts.iter().map(|p| f.feed(p)).collect();
        prop_assert!(!out.contains("\u{1b}]") && !out.contains("\u{1b}P"), "string sequence kept: {:?}", out);
        prop_assert!(!out.contains("\u{1b}[6n") && !out.contains("\u{1b}[c"), "answerback kept: {:?}", out);
        prop_assert!(!out.chars().any(|c| ('\u{80}'..='\u{9f}').contains(&c)), "C1 kept: {:?}", out);
    }

    #[test]
    fn the_config_parser_takes_any_text(s in "(\\[\\[?[a-z.]{0,12}\\]\\]?\n|[a-z_]{1,10} = (\"[^\"\n]{0,20}\"|[0-9]{1,4}|\\[\\]|true)\n|.{0,30}\n){0,12}") {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        // Either a config or problems; never a panic.
        let _ = breakglass::config::load_str(&s, &path);
    }

    #[test]
    fn the_incident_file_parser_takes_any_json(v in arb_json()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.json");
        std::fs::write(&path, serde_json::json!({"incidents": [v.clone(), {"id": v.clone(), "title": v}]}).to_string()).unwrap();
        let src = breakglass::incident::file::FileSource::new("f".into(), path);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let _ = rt.block_on(breakglass::incident::IncidentSource::list_open(&src));
    }
}

fn arb_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        ".{0,40}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}
