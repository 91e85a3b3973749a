//! Saved after-action review drafts: per request and per person, in the data dir
//! (`REQ-3-alice.json`, 0600). A draft keeps "not answered yet" for the yes/no
//! questions: a saved draft must never answer for the person.

use crate::domain::{RequestId, ReviewAnswers};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Written into every draft; files without it predate the tri-state answers.
const FORMAT: u32 = 2;

/// A review in progress: like `ReviewAnswers`, with the yes/no questions optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewDraft {
    #[serde(default)]
    pub actions_taken: String,
    #[serde(default)]
    pub systems_touched: String,
    #[serde(default)]
    pub access_necessary: Option<bool>,
    #[serde(default)]
    pub credentials_copied: Option<bool>,
    #[serde(default)]
    pub credentials_copied_where: String,
    #[serde(default)]
    pub follow_ups: String,
}

impl ReviewDraft {
    /// The answers to submit, once both questions have one.
    pub fn complete(&self) -> Option<ReviewAnswers> {
        Some(ReviewAnswers {
            actions_taken: self.actions_taken.clone(),
            systems_touched: self.systems_touched.clone(),
            access_necessary: self.access_necessary?,
            credentials_copied: self.credentials_copied?,
            credentials_copied_where: self.credentials_copied_where.clone(),
            follow_ups: self.follow_ups.clone(),
        })
    }

    /// A draft holding answers already given (a review sent back).
    pub fn answered(a: &ReviewAnswers) -> ReviewDraft {
        ReviewDraft {
            actions_taken: a.actions_taken.clone(),
            systems_touched: a.systems_touched.clone(),
            access_necessary: Some(a.access_necessary),
            credentials_copied: Some(a.credentials_copied),
            credentials_copied_where: a.credentials_copied_where.clone(),
            follow_ups: a.follow_ups.clone(),
        }
    }

    /// Reads a saved draft. Drafts from before `FORMAT` 2 stored an unanswered
    /// question as `false`, indistinguishable from "no": keep their text, drop
    /// their yes/no answers so the person answers again.
    fn parse(text: &str) -> Option<ReviewDraft> {
        let stored: Stored = serde_json::from_str(text).ok()?;
        let mut d = stored.draft;
        if stored.format < FORMAT {
            d.access_necessary = None;
            d.credentials_copied = None;
        }
        Some(d)
    }
}

/// A draft as written to its file: the answers and the file format.
#[derive(Serialize, Deserialize)]
struct Stored {
    #[serde(default)]
    format: u32,
    #[serde(flatten)]
    draft: ReviewDraft,
}

/// Drafts are per request and per person: `REQ-3-alice.json`.
fn draft_suffix(who: &str) -> String {
    format!("-{}.json", who.replace(['/', '.'], "_"))
}

pub fn draft_path(dir: &Path, id: RequestId, who: &str) -> PathBuf {
    dir.join(format!("{id}{}", draft_suffix(who)))
}

pub fn load_drafts(dir: &Path, who: &str) -> BTreeMap<RequestId, ReviewDraft> {
    let suffix = draft_suffix(who);
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(id) = name
            .strip_suffix(&suffix)
            .and_then(|i| i.parse::<RequestId>().ok())
        else {
            continue;
        };
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        if let Some(d) = ReviewDraft::parse(&text) {
            out.insert(id, d);
        }
    }
    out
}

pub fn save_draft(dir: &Path, id: RequestId, who: &str, d: &ReviewDraft) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let stored = Stored {
        format: FORMAT,
        draft: d.clone(),
    };
    let text = serde_json::to_string_pretty(&stored).unwrap_or_default();
    crate::files::write_private(&draft_path(dir, id, who), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unanswered_questions_stay_unanswered_across_a_save() {
        let dir = tempfile::tempdir().unwrap();
        let id: RequestId = "REQ-4".parse().unwrap();
        let d = ReviewDraft {
            actions_taken: "half".into(),
            credentials_copied: Some(true),
            ..Default::default()
        };
        save_draft(dir.path(), id, "alice", &d).unwrap();
        let back = &load_drafts(dir.path(), "alice")[&id];
        assert_eq!(back.access_necessary, None);
        assert_eq!(back.credentials_copied, Some(true));
        assert_eq!(back.actions_taken, "half");
        assert!(back.complete().is_none());
    }

    #[test]
    fn an_old_draft_loses_its_yes_no_answers() {
        let old = r#"{"actions_taken":"a","systems_touched":"s","access_necessary":false,
                     "credentials_copied":false,"credentials_copied_where":"","follow_ups":""}"#;
        let d = ReviewDraft::parse(old).unwrap();
        assert_eq!((d.access_necessary, d.credentials_copied), (None, None));
        assert_eq!(d.actions_taken, "a");
    }
}
