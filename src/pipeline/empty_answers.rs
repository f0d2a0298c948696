//! How many empty answers each open prompt has had, on this node. An empty answer re-asks
//! without taking an attempt (Enter pressed out of habit after a call's prompt), so nothing
//! else bounds a client that answers empty in a loop: pam_radius_auth fed no input sent 49
//! in under a second, each audited, until the prompt's timeout. Past
//! [`MAX_EMPTY_ANSWERS`] the prompt is closed. Kept in memory: a bound per node is enough
//! for a loop, and counting them in the store would cost a write each.

use std::collections::HashMap;
use std::sync::Mutex;

/// Empty answers one prompt may have before it is closed.
pub const MAX_EMPTY_ANSWERS: u32 = 5;

/// Prompts remembered at once; when full, all are forgotten (a count starting again only
/// allows a few more re-asks).
const MAX_PROMPTS: usize = 4096;

#[derive(Default)]
pub struct EmptyAnswers {
    seen: Mutex<HashMap<Vec<u8>, u32>>,
}

impl EmptyAnswers {
    /// One more empty answer to the prompt whose State hashes to `hash`: how many so far.
    pub fn note(&self, hash: &[u8]) -> u32 {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= MAX_PROMPTS && !seen.contains_key(hash) {
            seen.clear();
        }
        let n = seen.entry(hash.to_vec()).or_default();
        *n += 1;
        *n
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_per_prompt_and_stays_bounded() {
        let e = super::EmptyAnswers::default();
        assert_eq!(e.note(b"a"), 1);
        assert_eq!(e.note(b"a"), 2);
        assert_eq!(e.note(b"b"), 1);
        for i in 0..super::MAX_PROMPTS as u32 {
            e.note(&i.to_be_bytes());
        }
        assert!(e.seen.lock().unwrap().len() <= super::MAX_PROMPTS);
    }
}
