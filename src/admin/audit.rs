//! `radmfa audit`: recent records, filtered, as a table or JSON lines.

use std::process::ExitCode;

use anyhow::{bail, Context};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::app::with_command_store;
use crate::cli::AuditArgs;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::store::AuditFilter;

pub fn fmt_time(t: i64) -> String {
    OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| d.format(&Rfc3339).ok())
        .unwrap_or_else(|| t.to_string())
}

/// RFC 3339, Unix seconds, or an age (`90s`, `15m`, `2h`, `7d`) counted back from `now`.
pub fn parse_time(s: &str, now: i64) -> anyhow::Result<i64> {
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t.unix_timestamp());
    }
    let (num, unit) = s.split_at(s.len().saturating_sub(1));
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => bail!("{s:?}: use RFC 3339 (2026-01-31T08:00:00Z), Unix seconds, or an age like 15m"),
    };
    let n: i64 = num
        .parse()
        .with_context(|| format!("{s:?}: the number before {unit:?} is not a number"))?;
    Ok(now - n * mult)
}

pub async fn run(cfg: &Config, args: AuditArgs) -> anyhow::Result<ExitCode> {
    let now = SystemClock.now();
    let filter = AuditFilter {
        user: args.user.as_deref().map(crate::store::user_key),
        result: args.result,
        since: args
            .since
            .map(|s| parse_time(&s, now))
            .transpose()
            .context("--since")?,
        until: args
            .until
            .map(|s| parse_time(&s, now))
            .transpose()
            .context("--until")?,
        limit: args.limit,
    };
    let rows =
        with_command_store(&cfg.store, async |store| Ok(store.audit(&filter).await?)).await?;
    if args.json {
        for r in rows {
            println!("{}", serde_json::to_string(&r)?);
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<20} {:<16} {:<9} {:<12} {:<14} {:<12} {:>6}  REASON",
        "TIME", "USER", "RESULT", "MODE", "TOKEN", "NAS", "MS"
    );
    for r in rows {
        println!(
            "{:<20} {:<16} {:<9} {:<12} {:<14} {:<12} {:>6}  {}",
            fmt_time(r.time),
            r.user,
            r.result,
            r.mode,
            r.token_serial.as_deref().unwrap_or("-"),
            r.nas_name.as_deref().unwrap_or("-"),
            r.latency_ms,
            r.reason.as_deref().unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_in_all_three_forms() {
        assert_eq!(parse_time("1700000000", 0).unwrap(), 1700000000);
        assert_eq!(parse_time("2023-11-14T22:13:20Z", 0).unwrap(), 1700000000);
        assert_eq!(parse_time("15m", 10_000).unwrap(), 10_000 - 900);
        assert!(parse_time("yesterday", 0).is_err());
    }
}
