//! serde's words in a TOML error, put in an admin's: `expected usize` is a Rust type's name,
//! `invalid type: map, expected a sequence` under `client` is `[client]` written for
//! `[[client]]`, and an unknown key listed every key there is without the one that was
//! meant. Only the message's wording changes: the key and the line come around it as before.

/// What `raw_table::tables` says of one table where a list of them (`[[section]]`) belongs;
/// [`admin_words`] names the section from the key.
pub const ONE_TABLE: &str = "one table where a list of tables is expected";

/// `message` (serde's, for the key `key`) in an admin's words; unchanged where none apply.
pub fn admin_words(key: &str, message: &str) -> String {
    if message.starts_with(ONE_TABLE) {
        let header = section_header(key);
        return format!(
            "[{header}] is one table; write [[{header}]] (two brackets) before each entry, \
             [[{header}]] again for the next"
        );
    }
    if let Some(rest) = message.strip_prefix("unknown field ") {
        return with_nearest(message, rest);
    }
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        return with_nearest(message, rest);
    }
    let (value, rest) = if let Some(rest) = message.strip_prefix("invalid type: ") {
        (false, rest)
    } else if let Some(rest) = message.strip_prefix("invalid value: ") {
        (true, rest)
    } else {
        return message.to_string();
    };
    let Some((got, expected)) = rest.rsplit_once(", expected ") else {
        return message.to_string();
    };
    let Some(wanted) = expected_words(expected, value) else {
        return message.to_string();
    };
    // `pool_size = "8"`: the number is right, the quotes are not. Only where what is in
    // them is a number (or true, false) that would do: `"yes"` unquoted is no better.
    let inside = got
        .strip_prefix("string \"")
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or_default();
    let unquote = match wanted.as_str() {
        "true or false" => ["true", "false"].contains(&inside),
        "a number" => inside.parse::<f64>().is_ok(),
        w if w.starts_with("a whole number") => inside.parse::<i64>().is_ok(),
        _ => false,
    };
    let got = got_words(got);
    let hint = if unquote {
        ": write it without quotes"
    } else {
        ""
    };
    format!("{got} where {wanted} is expected{hint}")
}

/// The `[[...]]` header of the list of tables at `key` (`client[0].group_attributes`:
/// `client.group_attributes`).
fn section_header(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut in_index = false;
    for c in key.chars() {
        match c {
            '[' => in_index = true,
            ']' => in_index = false,
            c if !in_index => out.push(c),
            _ => {}
        }
    }
    out
}

/// serde's name of what it expected, as an admin would say it. For a value out of range
/// (`invalid value`), an unsigned type's range is said. `None`: leave the message as it is.
fn expected_words(expected: &str, value: bool) -> Option<String> {
    let max = match expected {
        "u8" => Some(u64::from(u8::MAX)),
        "u16" => Some(u64::from(u16::MAX)),
        "u32" => Some(u64::from(u32::MAX)),
        "u64" | "usize" => None,
        "i8" | "i16" | "i32" | "i64" | "isize" => return Some("a whole number".into()),
        "f32" | "f64" => return Some("a number".into()),
        "a boolean" => return Some("true or false".into()),
        "a sequence" => return Some("a list [...]".into()),
        "a map" => return Some("a table".into()),
        "a string" => return Some("a string (in quotes)".into()),
        _ => return None,
    };
    Some(match (value, max) {
        (false, _) => "a whole number".into(),
        (true, Some(max)) => format!("a whole number from 0 to {max}"),
        (true, None) => "a whole number, 0 or more,".into(),
    })
}

/// serde's description of what it found (`string "8"`, `floating point `1.5``).
fn got_words(got: &str) -> String {
    for (serde, admin) in [
        ("string ", "the string "),
        ("integer ", "the number "),
        ("floating point ", "the number "),
        ("boolean ", ""),
    ] {
        if let Some(v) = got.strip_prefix(serde) {
            return format!("{admin}{v}");
        }
    }
    match got {
        "map" => "a table".into(),
        "sequence" => "a list".into(),
        other => other.to_string(),
    }
}

/// `message` (an unknown key's or word's: "`pool_sise`, expected one of `urls`, ...") with
/// the listed name nearest the one written, when it is near enough to be a typo.
fn with_nearest(message: &str, rest: &str) -> String {
    let mut quoted = rest.split('`').skip(1).step_by(2);
    let Some(written) = quoted.next() else {
        return message.to_string();
    };
    let nearest = quoted
        .map(|name| (edit_distance(written, name), name))
        .min_by_key(|(d, _)| *d)
        .filter(|(d, name)| *d > 0 && *d <= (name.chars().count() / 3).max(1));
    match nearest {
        Some((_, name)) => format!("{message}; did you mean `{name}`?"),
        None => message.to_string(),
    }
}

/// Levenshtein distance over characters, with a swap of two neighbours counted as one edit
/// (the commonest typo: `pool_sise`, `tiemout_ms`).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut rows = vec![(0..=b.len()).collect::<Vec<usize>>()];
    for i in 1..=a.len() {
        let mut row = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            row[j] = (rows[i - 1][j] + 1)
                .min(row[j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                row[j] = row[j].min(rows[i - 2][j - 2] + 1);
            }
        }
        rows.push(row);
    }
    rows[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_named_as_an_admin_would() {
        assert_eq!(
            admin_words(
                "ldap.pool_size",
                r#"invalid type: string "8", expected usize"#
            ),
            r#"the string "8" where a whole number is expected: write it without quotes"#
        );
        assert_eq!(
            admin_words("x", "invalid type: floating point `1.5`, expected u32"),
            "the number `1.5` where a whole number is expected"
        );
        assert_eq!(
            admin_words("x", "invalid type: boolean `true`, expected u32"),
            "`true` where a whole number is expected"
        );
        assert_eq!(
            admin_words("x", r#"invalid type: string "true", expected a boolean"#),
            r#"the string "true" where true or false is expected: write it without quotes"#
        );
        // Quotes around what would be no better without them: no such hint.
        assert_eq!(
            admin_words("x", r#"invalid type: string "yes", expected a boolean"#),
            r#"the string "yes" where true or false is expected"#
        );
        assert_eq!(
            admin_words(
                "x",
                r#"invalid type: string "(value not shown)", expected u32"#
            ),
            r#"the string "(value not shown)" where a whole number is expected"#
        );
        assert_eq!(
            admin_words("x", "invalid type: integer `1`, expected a string"),
            "the number `1` where a string (in quotes) is expected"
        );
        assert_eq!(
            admin_words("x", "invalid type: map, expected a sequence"),
            "a table where a list [...] is expected"
        );
        assert_eq!(
            admin_words("x", "invalid value: integer `-3`, expected usize"),
            "the number `-3` where a whole number, 0 or more, is expected"
        );
        assert_eq!(
            admin_words("x", "invalid value: integer `70000`, expected u16"),
            "the number `70000` where a whole number from 0 to 65535 is expected"
        );
        // Words it does not know are left as serde wrote them.
        let odd = "invalid length 3, expected fewer elements in array";
        assert_eq!(admin_words("x", odd), odd);
        assert_eq!(
            admin_words("x", "invalid type: unit value, expected a duration"),
            "invalid type: unit value, expected a duration"
        );
    }

    #[test]
    fn a_single_bracket_list_says_to_write_two() {
        assert_eq!(
            admin_words("client", ONE_TABLE),
            "[client] is one table; write [[client]] (two brackets) before each entry, \
             [[client]] again for the next"
        );
        assert!(admin_words("client[1].group_attributes", ONE_TABLE)
            .contains("write [[client.group_attributes]] (two brackets)"));
    }

    #[test]
    fn an_unknown_key_near_a_known_one_is_suggested() {
        let m = "unknown field `pool_sise`, expected one of `urls`, `pool_size`, `timeout_ms`";
        assert_eq!(
            admin_words("ldap.pool_sise", m),
            format!("{m}; did you mean `pool_size`?")
        );
        let m = "unknown field `tiemout_ms`, expected one of `urls`, `pool_size`, `timeout_ms`";
        assert!(admin_words("k", m).ends_with("did you mean `timeout_ms`?"));
        // Nothing near: no guess.
        let m = "unknown field `colour`, expected one of `urls`, `pool_size`, `timeout_ms`";
        assert_eq!(admin_words("k", m), m);
        let m = "unknown field `x`, there are no fields";
        assert_eq!(admin_words("k", m), m);
        assert_eq!(edit_distance("pool_sise", "pool_size"), 1);
        assert_eq!(edit_distance("ab", "ba"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
