//! `radmfa token list`: the inventory, all of it or a part (an owner, stock, a serial
//! prefix, the first N), as a table or JSON, written a row at a time.

use std::process::ExitCode;

use clap::Args;

use super::tokens::{kind_str, to_json};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::store::{Store, TokenFilter, TokenKind, TokenRecord};

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this user's tokens.
    #[arg(long)]
    pub user: Option<String>,
    /// Only tokens in stock (no owner).
    #[arg(long, conflicts_with = "user")]
    pub unassigned: bool,
    /// Only tokens whose serial starts with PREFIX (case counts).
    #[arg(long, value_name = "PREFIX")]
    pub serial: Option<String>,
    /// At most N tokens (1 or more), the first by serial.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: Option<u32>,
    /// JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub async fn list(cfg: &Config, store: &dyn Store, a: ListArgs) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    let filter = TokenFilter {
        // As users type it (`CORP\alice`), like every other admin command.
        user: a.user.as_deref().map(|u| cfg.user_names.key(u)),
        unassigned: a.unassigned,
        serial_prefix: a.serial.clone(),
        // One more than asked for, to tell "N tokens" from "the first N of more".
        limit: a.limit.map(|n| n.saturating_add(1)),
    };
    let mut tokens = store.list_tokens(&filter).await?;
    let more = matches!(a.limit, Some(n) if tokens.len() > n as usize);
    if let Some(n) = a.limit {
        tokens.truncate(n as usize);
    }
    // Written a row at a time through one buffer: println! per row is a write each, and
    // 100,000 tokens as one JSON value held them twice more (379 MiB at its peak).
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if a.json {
        let written = write_json_array(&mut out, &tokens).and_then(|()| Ok(out.flush()?));
        if let Err(e) = written {
            // A reader gone (`| head`) ends the command as it ends every other list.
            match e.downcast_ref::<std::io::Error>() {
                Some(io) => super::output::exit_for_stdout_error(io),
                None => return Err(e),
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Err(e) = write_table(&mut out, &tokens, more) {
        super::output::exit_for_stdout_error(&e);
    }
    let broken = tokens
        .iter()
        .filter(|r| r.extra.unreadable_seed.is_some())
        .count();
    if broken > 0 {
        eprintln!(
            "{broken} token(s) BROKEN: the seed does not open (`radmfa token show SERIAL` says \
             why); their holders cannot log in with any token until they are repaired: \
             import an imported token again with `radmfa token import --replace` (it keeps \
             the HOTP counter), delete an app's token and enroll its user again"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The table `token list` prints, and its count.
/// `more`: the list was cut at --limit, and more tokens match.
fn write_table(
    out: &mut impl std::io::Write,
    tokens: &[TokenRecord],
    more: bool,
) -> std::io::Result<()> {
    writeln!(
        out,
        // STATE as wide as its longest value, "not yet valid".
        "{:<20} {:<4} {:<6} {:>2} {:>9}  {:<13} OWNER",
        "SERIAL", "TYPE", "HASH", "D", "STEP/CTR", "STATE"
    )?;
    let now = crate::clock::Clock::now(&crate::clock::SystemClock);
    for r in tokens {
        let t = &r.token;
        let step = match t.kind {
            TokenKind::Totp => format!("{} s", t.period),
            TokenKind::Hotp => t.counter.to_string(),
        };
        let validity = crate::mfa::verify::validity_at(r, now);
        writeln!(
            out,
            "{} {:<4} {:<6} {:>2} {:>9}  {:<13} {}",
            super::pad(&super::printable(&t.serial), 20),
            kind_str(t.kind),
            t.algorithm.as_str(),
            t.digits,
            step,
            match (&r.extra.unreadable_seed, t.enabled, validity) {
                (Some(_), _, _) => "BROKEN",
                (None, false, _) => "disabled",
                // Enabled, but every code is refused until (or since) its dates.
                (None, true, Some(why)) => why,
                (None, true, None) => "enabled",
            },
            super::printable(t.user.as_deref().unwrap_or("(stock)"))
        )?;
    }
    if more {
        // "3 token(s)" read as all there were.
        writeln!(
            out,
            "{} token(s) shown, the first by serial; more match (raise --limit)",
            tokens.len()
        )?;
    } else {
        writeln!(out, "{} token(s)", tokens.len())?;
    }
    out.flush()
}

/// `tokens` as `serde_json::to_string_pretty` writes a list of [`to_json`] objects, one
/// object at a time.
fn write_json_array(out: &mut impl std::io::Write, tokens: &[TokenRecord]) -> anyhow::Result<()> {
    if tokens.is_empty() {
        writeln!(out, "[]")?;
        return Ok(());
    }
    let now = SystemClock.now();
    write!(out, "[")?;
    for (i, r) in tokens.iter().enumerate() {
        let object = super::json_printable(serde_json::to_string_pretty(&to_json(r, now))?);
        for line in object.lines() {
            // An object's lines, one level in; a string in it never holds a newline
            // (serde_json escapes it).
            write!(out, "\n  {line}")?;
        }
        if i + 1 < tokens.len() {
            write!(out, ",")?;
        }
    }
    writeln!(out, "\n]")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use crate::store::{OtpAlgorithm, Token, TokenExtra};

    fn record(serial: &str) -> TokenRecord {
        TokenRecord {
            token: Token {
                id: 1,
                serial: serial.into(),
                user: Some("alice\u{202e}".into()),
                kind: TokenKind::Totp,
                algorithm: OtpAlgorithm::Sha1,
                digits: 6,
                period: 30,
                counter: 0,
                last_step: None,
                enabled: true,
                created_at: 1_700_000_000,
                secret: Secret::new(vec![1; 20]),
            },
            extra: TokenExtra::default(),
        }
    }

    /// Written an object at a time, the list is what one pretty-printed value was, byte for
    /// byte, escapes included: scripts that read `token list --json` see no change.
    #[test]
    fn json_written_a_row_at_a_time_is_the_pretty_printed_list() {
        for tokens in [vec![], vec![record("A")], vec![record("A"), record("B\n")]] {
            let mut out = Vec::new();
            write_json_array(&mut out, &tokens).unwrap();
            let rows: Vec<_> = tokens
                .iter()
                .map(|r| to_json(r, SystemClock.now()))
                .collect();
            let whole = super::super::json_printable(serde_json::to_string_pretty(&rows).unwrap());
            assert_eq!(String::from_utf8(out).unwrap(), format!("{whole}\n"));
        }
    }
}
