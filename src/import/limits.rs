//! Bounds on what one file makes the import hold. The 64 MiB size limit alone does not
//! bound memory: every row becomes an entry, and a file of "x" lines is 33 million
//! problems (gigabytes). Nobody reads past the first problems, and no seed file holds a
//! million tokens, so reading stops there and the whole file is refused.

use super::{Entry, ImportError, Problem};

/// Problems (bad rows) after which reading stops.
pub const MAX_PROBLEMS: usize = 10_000;
/// Tokens one file may hold: ten times the largest bulk export we have seen, and about
/// 350 MB held in memory before anything is stored.
pub const MAX_TOKENS: usize = 1_000_000;

/// The entries read so far, counted against the limits.
pub(crate) struct Entries {
    list: Vec<Entry>,
    problems: usize,
    tokens: usize,
    max_problems: usize,
    max_tokens: usize,
}

impl Entries {
    pub fn new() -> Entries {
        Entries::with_limits(MAX_PROBLEMS, MAX_TOKENS)
    }

    pub fn with_limits(max_problems: usize, max_tokens: usize) -> Entries {
        Entries {
            list: Vec::new(),
            problems: 0,
            tokens: 0,
            max_problems,
            max_tokens,
        }
    }

    /// Adds the entry of line `line`; one past either limit refuses the file, keeping the
    /// problems found so far to be shown.
    pub fn push(&mut self, e: Entry, line: u64) -> Result<(), ImportError> {
        let (count, limit, what) = match &e {
            Entry::Token(_) => (&mut self.tokens, self.max_tokens, "tokens"),
            Entry::Invalid(_) | Entry::InvalidToken(..) => {
                (&mut self.problems, self.max_problems, "problems")
            }
            Entry::Ignored(_) | Entry::Note(_) => (&mut 0, usize::MAX, ""),
        };
        if *count >= limit {
            let reason = format!(
                "more than {} {what}: reading stopped at line {line}",
                thousands(limit)
            );
            let first = std::mem::take(&mut self.list)
                .into_iter()
                .filter_map(|e| match e {
                    Entry::Invalid(p) | Entry::InvalidToken(p, _) => Some(p),
                    _ => None,
                })
                .collect();
            return Err(ImportError::CutOff { reason, first });
        }
        *count += 1;
        self.list.push(e);
        Ok(())
    }

    pub fn into_vec(self) -> Vec<Entry> {
        self.list
    }
}

/// 10000 as "10,000": limits read as people write them.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Kept so the caller can show them: the problems before reading stopped.
pub fn first_problems(e: &ImportError) -> &[Problem] {
    match e {
        ImportError::CutOff { first, .. } => first,
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(n: u64) -> Entry {
        Entry::Invalid(Problem {
            origin: format!("line {n}"),
            message: "bad".into(),
        })
    }

    #[test]
    fn past_a_limit_the_file_is_refused_with_its_first_problems() {
        let mut e = Entries::with_limits(3, 100);
        for n in 1..=3 {
            e.push(problem(n), n).unwrap();
        }
        let err = e.push(problem(4), 4).unwrap_err();
        assert_eq!(
            err.to_string(),
            "more than 3 problems: reading stopped at line 4; nothing was imported"
        );
        let first: Vec<String> = first_problems(&err)
            .iter()
            .map(|p| p.origin.clone())
            .collect();
        assert_eq!(first, ["line 1", "line 2", "line 3"]);
        assert_eq!(thousands(MAX_PROBLEMS), "10,000");
        assert_eq!(thousands(MAX_TOKENS), "1,000,000");
        assert_eq!(thousands(999), "999");
    }

    /// The token limit, on a real CSV file: its tokens are counted as read.
    #[test]
    fn past_the_token_limit_a_csv_file_is_refused() {
        let b32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        let text = format!("SN1,{b32},30\nSN2,{b32},30\nx\nSN3,{b32},30\n");
        let d = crate::import::FileDefaults::default();
        let err = crate::import::csv::parse_into(text.as_bytes(), &d, Entries::with_limits(5, 2))
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("more than 2 tokens: reading stopped at line 4"),
            "{err}"
        );
        assert_eq!(first_problems(&err).len(), 1);
    }
}
