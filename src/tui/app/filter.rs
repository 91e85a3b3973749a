//! The incident list's filter, computed once per change of the filter text or of
//! the incidents, not on every key and every frame: with 10,000 incidents,
//! lower-casing every title twice a key was 93% of the console's CPU.

use crate::incident::Incident;

#[derive(Debug, Default, Clone)]
pub struct IncidentFilter {
    /// Per incident, its id, title and severity lower-cased and joined by '\n'
    /// (which no field holds: sources clean them to one line). Made at load.
    haystacks: Vec<String>,
    /// The lower-cased filter `shown` holds the matches of; `None`: not computed.
    key: Option<String>,
    /// Indices into the incidents that match `key`, in list order.
    shown: Vec<usize>,
    /// How many times the matches were computed since the app started; a test
    /// checks that drawing does not compute them.
    pub computed: u64,
}

impl IncidentFilter {
    /// New incidents: their haystacks are made now, the matches at the next `apply`.
    pub fn load(&mut self, incidents: &[Incident]) {
        self.haystacks = incidents
            .iter()
            .map(|i| {
                let mut s =
                    String::with_capacity(i.id.len() + i.title.len() + i.severity.len() + 2);
                for (n, field) in [&i.id, &i.title, &i.severity].into_iter().enumerate() {
                    if n > 0 {
                        s.push('\n');
                    }
                    s.push_str(&field.to_lowercase());
                }
                s
            })
            .collect();
        self.key = None;
    }

    /// Brings the matches up to date with `filter` (as typed); does nothing when
    /// they already are. Typing one more character only searches the incidents
    /// that matched before it.
    pub fn apply(&mut self, filter: &str) {
        let key = filter.to_lowercase();
        if self.key.as_deref() == Some(key.as_str()) {
            return;
        }
        self.computed += 1;
        let narrower = self
            .key
            .as_deref()
            .is_some_and(|old| key.starts_with(old) && !old.is_empty());
        let hit = |h: &String| {
            // Each field is one line: a filter holding '\n' matches none, as
            // when fields were searched one by one.
            key.is_empty() || (!key.contains('\n') && h.contains(key.as_str()))
        };
        if narrower {
            let haystacks = &self.haystacks;
            self.shown.retain(|&i| haystacks.get(i).is_some_and(hit));
        } else {
            self.shown = (0..self.haystacks.len())
                .filter(|&i| hit(&self.haystacks[i]))
                .collect();
        }
        self.key = Some(key);
    }

    /// How many incidents the haystacks were made for.
    pub fn len(&self) -> usize {
        self.haystacks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.haystacks.is_empty()
    }

    /// The indices of the matching incidents, as of the last `apply`.
    pub fn shown(&self) -> &[usize] {
        &self.shown
    }
}
