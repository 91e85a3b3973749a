//! Incidents from a TOML or JSON file (`[[incidents]]` / a list under "incidents").
//!
//! The file is parsed again only when it changed: its device, inode, size,
//! mtime and ctime are compared first (parsing 10,000 incidents of TOML takes
//! ~70 ms; the console asks every 15 s and the sweeper every 30 s). A file
//! written less than [`SETTLE`] ago is parsed on every read, since a second
//! write in the same timestamp tick with the same size would look unchanged.
//!
//! One incident (`get`, asked by every command's revoke-on-resolve check) is
//! found without parsing the whole TOML file when its layout is plain (see
//! [`scan`]): only that incident's `[[incidents]]` block is parsed. Anything
//! else is parsed whole, as before.

use super::*;
use crate::sanitize;
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// A file modified more recently than this when it was read is read again.
pub const SETTLE: Duration = Duration::from_secs(2);
/// Lookups remembered per version of the file.
const MAX_LOOKUPS: usize = 4096;

pub struct FileSource {
    name: String,
    path: PathBuf,
    cache: Mutex<Cache>,
    reads: AtomicU64,
    whole: AtomicU64,
}

/// How often the file was read, and parsed whole (a lookup may parse one block).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reads {
    pub reads: u64,
    pub whole: u64,
}

/// What identifies one version of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

type Parsed = Result<Arc<Listing>, SourceError>;

struct Listing {
    incidents: Vec<Incident>,
    /// Id -> index of its first incident (what a search in file order finds).
    by_id: HashMap<String, usize>,
}

#[derive(Default)]
struct Cache {
    /// The whole file parsed (or its error), and the version it was read at.
    all: Option<(Stamp, Parsed)>,
    /// Lookups answered from one block, for the version they were read at.
    lookups: Option<(Stamp, HashMap<String, Option<Incident>>)>,
}

#[derive(Deserialize)]
struct FileIncidents {
    #[serde(default)]
    incidents: Vec<RawIncident>,
}

#[derive(Deserialize)]
struct RawIncident {
    id: String,
    title: String,
    #[serde(default)]
    severity: String,
    #[serde(default = "open")]
    status: IncidentStatus,
    #[serde(default)]
    opened_at: Option<DateTime<Utc>>,
    #[serde(default)]
    url: Option<String>,
}

fn open() -> IncidentStatus {
    IncidentStatus::Open
}

impl FileSource {
    pub fn new(name: String, path: PathBuf) -> Self {
        FileSource {
            name,
            path,
            cache: Mutex::new(Cache::default()),
            reads: AtomicU64::new(0),
            whole: AtomicU64::new(0),
        }
    }

    /// How many times the file was read and parsed whole (for tests and
    /// benches: an unchanged file is not read again).
    pub fn reads(&self) -> Reads {
        Reads {
            reads: self.reads.load(Ordering::Relaxed),
            whole: self.whole.load(Ordering::Relaxed),
        }
    }

    fn error(&self, message: String) -> SourceError {
        SourceError {
            source_name: self.name.clone(),
            message,
        }
    }

    fn is_json(&self) -> bool {
        self.path.extension().is_some_and(|e| e == "json")
    }

    /// The file's current version, and whether it was modified long enough ago
    /// that a second write would show in the stamp (else it is read every time).
    fn stamp(&self) -> Result<(Stamp, bool), SourceError> {
        let m = std::fs::metadata(&self.path)
            .map_err(|e| self.error(format!("cannot read {}: {e}", self.path.display())))?;
        let stamp = Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        };
        let settled = m
            .modified()
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age >= SETTLE);
        Ok((stamp, settled))
    }

    fn read_text(&self) -> Result<String, SourceError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        std::fs::read_to_string(&self.path)
            .map_err(|e| self.error(format!("cannot read {}: {e}", self.path.display())))
    }

    /// The whole file, parsed, from the cache when the file is unchanged.
    fn listing(&self) -> Parsed {
        // Stat before reading: a write in between leaves a stale stamp, so the
        // next call reads again rather than keeping an old version.
        let (stamp, settled) = self.stamp()?;
        if let Some(parsed) = self.cached(stamp, settled) {
            return parsed;
        }
        let text = self.read_text();
        self.keep(stamp, settled, text)
    }

    /// The parsed file if it is still this version.
    fn cached(&self, stamp: Stamp, settled: bool) -> Option<Parsed> {
        let c = self.cache.lock().ok()?;
        match &c.all {
            Some((s, parsed)) if settled && *s == stamp => Some(parsed.clone()),
            _ => None,
        }
    }

    /// Parses `text`, read at `stamp`, and keeps the result for that version
    /// when the file had settled (a fresh one may still change unseen).
    fn keep(&self, stamp: Stamp, settled: bool, text: Result<String, SourceError>) -> Parsed {
        let parsed = text.and_then(|text| {
            self.whole.fetch_add(1, Ordering::Relaxed);
            let incidents = self.parse(&text)?;
            let mut by_id = HashMap::with_capacity(incidents.len());
            for (n, i) in incidents.iter().enumerate() {
                by_id.entry(i.id.clone()).or_insert(n);
            }
            Ok(Arc::new(Listing { incidents, by_id }))
        });
        if let Ok(mut c) = self.cache.lock() {
            c.all = settled.then(|| (stamp, parsed.clone()));
            c.lookups = None;
        }
        parsed
    }

    /// One incident: from the parsed file when it is unchanged, else from its
    /// block alone when the layout allows, else by parsing the whole file.
    fn lookup(&self, id: &str) -> Result<Option<Incident>, SourceError> {
        let find = |l: Arc<Listing>| l.by_id.get(id).map(|&n| l.incidents[n].clone());
        let (stamp, settled) = self.stamp()?;
        if let Some(parsed) = self.cached(stamp, settled) {
            return Ok(find(parsed?));
        }
        if settled {
            if let Ok(c) = self.cache.lock() {
                if let Some((s, found)) = &c.lookups {
                    if let Some(v) = found.get(id).filter(|_| *s == stamp) {
                        return Ok(v.clone());
                    }
                }
            }
        }
        let text = self.read_text()?;
        if !self.is_json() {
            if let Some(found) = self.scan_lookup(&text, id) {
                if let (true, Ok(mut c)) = (settled, self.cache.lock()) {
                    let lookups = match &mut c.lookups {
                        Some((s, m)) if *s == stamp && m.len() < MAX_LOOKUPS => m,
                        other => &mut other.insert((stamp, HashMap::new())).1,
                    };
                    lookups.insert(id.to_string(), found.clone());
                }
                return Ok(found);
            }
        }
        Ok(find(self.keep(stamp, settled, Ok(text))?))
    }

    /// `Some(answer)` when `scan` could tell from the text, parsing only the
    /// incident's own block; `None` when the whole file must be parsed.
    fn scan_lookup(&self, text: &str, id: &str) -> Option<Option<Incident>> {
        match scan(text, id) {
            Scan::Unsure => None,
            Scan::Absent => Some(None),
            Scan::Found(block) => {
                let found = self.parse(block).ok()?;
                // The scan and the parser must agree on the id, or trust neither.
                match found.as_slice() {
                    [i] if i.id == id => Some(Some(i.clone())),
                    _ => None,
                }
            }
        }
    }

    /// The incidents in `text`, read as JSON when the path ends in `.json` and
    /// as TOML otherwise. Pure, so it can be fuzzed.
    pub(crate) fn parse(&self, text: &str) -> Result<Vec<Incident>, SourceError> {
        let parsed: FileIncidents = if self.is_json() {
            serde_json::from_str(text)
                .map_err(|e| self.error(format!("{}: {e}", self.path.display())))?
        } else {
            toml::from_str(text).map_err(|e| {
                self.error(format!("{}: {}", self.path.display(), e.message().trim()))
            })?
        };
        Ok(parsed
            .incidents
            .into_iter()
            .map(|r| Incident {
                source: self.name.clone(),
                id: clean_id(&r.id),
                title: sanitize::line(&r.title, 200),
                severity: sanitize::line(&r.severity, 16),
                status: r.status,
                opened_at: r.opened_at,
                url: r.url.map(|u| sanitize::line(&u, 300)),
            })
            .collect())
    }

    /// What `get` answers, without the cache: the fuzzer compares it with a
    /// search of the whole file.
    pub(crate) fn lookup_in(&self, text: &str, id: &str) -> Result<Option<Incident>, SourceError> {
        if !self.is_json() {
            if let Some(found) = self.scan_lookup(text, id) {
                return Ok(found);
            }
        }
        Ok(self.parse(text)?.into_iter().find(|i| i.id == id))
    }
}

fn clean_id(raw: &str) -> String {
    sanitize::line(raw, 64)
}

/// What a scan of a TOML incidents file says about one id.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Scan<'a> {
    /// The first `[[incidents]]` block whose id is this one (the text to parse).
    Found(&'a str),
    /// No block has this id.
    Absent,
    /// The layout is not plain enough to tell without parsing the whole file.
    Unsure,
}

/// Finds the block of incident `id` by reading lines, for files laid out as
/// writers of this format lay them out: comments and blank lines, then
/// `[[incidents]]` blocks of `key = value` lines, each with exactly one
/// `id = "..."` (or `'...'`) line with no escapes.
///
/// Why this is sound: without multi-line strings (`'''`, `"""`: refused), no
/// TOML value spans a line except arrays, and a line of an array cannot be a
/// header or a `key = ` line in a valid file; so every line that is exactly
/// `[[incidents]]` starts a block, and every line starting `id =` is that
/// block's id. An id written with escapes, a sub-table, another table, a
/// quoted key, anything else: `Unsure`. The id is compared as the parser
/// would produce it (cleaned and cut), and the first block wins, as in a
/// search of the parsed list. A broken block elsewhere in the file is not
/// noticed here (the listing reports it).
pub(crate) fn scan<'a>(text: &'a str, id: &str) -> Scan<'a> {
    if text.contains("'''") || text.contains("\"\"\"") {
        return Scan::Unsure;
    }
    // (start of the block, its id if seen, how many id lines)
    let mut block: Option<(usize, Option<&str>, usize)> = None;
    let mut found: Option<(usize, usize)> = None;
    let mut offset = 0;
    // Ends the current block at `end`: whether it was well formed.
    let close = |block: Option<(usize, Option<&str>, usize)>,
                 end: usize,
                 found: &mut Option<(usize, usize)>|
     -> bool {
        let Some((start, raw, ids)) = block else {
            return true;
        };
        let Some(raw) = raw.filter(|_| ids == 1) else {
            return false;
        };
        if found.is_none() && clean_id(raw) == id {
            *found = Some((start, end));
        }
        true
    };
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if t == "[[incidents]]" {
            if !close(block.take(), start, &mut found) {
                return Scan::Unsure;
            }
            block = Some((start, None, 0));
            continue;
        }
        let Some((_, raw, ids)) = &mut block else {
            // Something before the first block: not the plain layout.
            return Scan::Unsure;
        };
        if t.starts_with('[') {
            return Scan::Unsure;
        }
        if let Some(rest) = t.strip_prefix("id") {
            let rest = rest.trim_start();
            if let Some(value) = rest.strip_prefix('=') {
                *ids += 1;
                match id_value(value.trim_start()) {
                    Some(v) => *raw = Some(v),
                    None => return Scan::Unsure,
                }
            }
        }
    }
    if !close(block.take(), text.len(), &mut found) {
        return Scan::Unsure;
    }
    match found {
        Some((start, end)) => Scan::Found(&text[start..end]),
        None => Scan::Absent,
    }
}

/// The string of `"value"` or `'value'` followed by nothing or a comment;
/// `None` for escapes, other types, or anything else.
fn id_value(v: &str) -> Option<&str> {
    let quote = v.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let body = &v[1..];
    let end = body.find(quote)?;
    let (value, after) = (&body[..end], body[end + 1..].trim());
    let plain = !value.contains('\\') && !value.chars().any(char::is_control);
    (plain && (after.is_empty() || after.starts_with('#'))).then_some(value)
}

#[async_trait::async_trait]
impl IncidentSource for FileSource {
    fn name(&self) -> &str {
        &self.name
    }

    async fn list_open(&self) -> Result<Vec<Incident>, SourceError> {
        Ok(self
            .listing()?
            .incidents
            .iter()
            .filter(|i| i.status.is_open())
            .cloned()
            .collect())
    }

    async fn get(&self, id: &str) -> Result<Option<Incident>, SourceError> {
        self.lookup(id)
    }
}
