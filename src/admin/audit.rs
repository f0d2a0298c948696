//! `radmfa audit`: recent records, filtered, as a table or JSON lines.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{bail, Context};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{cells, pad, printable};
use crate::app::with_audit_reader;
use crate::cli::AuditArgs;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::store::{AuditCount, AuditFilter, AuditGroup, AuditRecord};

pub use crate::clock::fmt_time;

/// The forms [`parse_time`] takes, for its errors.
const TIME_FORMS: &str = "RFC 3339 (2026-01-31T08:00:00Z, or with an offset, \
                          2026-01-31T09:00:00+01:00), Unix seconds (1769846400), or an age \
                          counted back from now (90s, 15m, 2h, 7d)";

/// RFC 3339, Unix seconds, or an age (`90s`, `15m`, `2h`, `7d`) counted back from `now`.
pub fn parse_time(s: &str, now: i64) -> anyhow::Result<i64> {
    if let Ok(n) = s.parse::<i64>() {
        // `--since 20260131` meant a day, and was read as Unix seconds in August 1970:
        // every record matched, silently. Eight digits are 1970-04-26 to 1973-03-03 as Unix
        // seconds, long before any radmfa record, so one that reads as a date is refused.
        if let Some(day) = yyyymmdd(s) {
            bail!(
                "{s:?} reads as the date {day}, but a bare number is Unix seconds ({}); for \
                 that day give {day}T00:00:00Z. Times are {TIME_FORMS}",
                fmt_time(n)
            );
        }
        return Ok(n);
    }
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        // Records are stamped in whole seconds, `--since` takes those at or after the time
        // and `--until` those before it: a fraction moves both to the next second. Cut
        // off, `--until 08:20:41.9Z` left out the records stamped 08:20:41.
        return Ok(t.unix_timestamp() + i64::from(t.nanosecond() > 0));
    }
    let age = age_secs(s).map_err(|_| anyhow::anyhow!("{s:?}: use {TIME_FORMS}"))?;
    Ok(now.saturating_sub(age))
}

/// `s` as the date it reads as, `YYYY-MM-DD`, when it is eight digits making a real date.
fn yyyymmdd(s: &str) -> Option<String> {
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year: i32 = s[..4].parse().ok()?;
    let month: u8 = s[4..6].parse().ok()?;
    let day: u8 = s[6..].parse().ok()?;
    let month = time::Month::try_from(month).ok()?;
    time::Date::from_calendar_date(year, month, day).ok()?;
    Some(format!("{}-{}-{}", &s[..4], &s[4..6], &s[6..]))
}

/// An age or a duration, `90s`, `15m`, `2h`, `7d`, in seconds.
pub fn age_secs(s: &str) -> anyhow::Result<i64> {
    // At the last character, not the last byte: `5é` must be an error, not a panic.
    let (num, unit) = s.split_at(s.char_indices().last().map_or(0, |(i, _)| i));
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => bail!("{s:?}: use a number with s, m, h or d (15m)"),
    };
    // Digits only: `-1h` read as an hour ahead gave an empty listing without a word (and
    // i64::MIN overflowed `now - age`).
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        bail!("{s:?}: the number before {unit:?} is not a whole number of them (15m)");
    }
    let n: i64 = num
        .parse()
        .with_context(|| format!("{s:?}: the number before {unit:?} is too large"))?;
    Ok(n.saturating_mul(mult))
}

/// The modes radmfa records: the factor checked, or how a login passed without one.
const KNOWN_MODES: &[&str] = &[
    "totp",
    "hotp",
    "sms",
    "voice",
    "app-password",
    "bypass",
    "exempt",
    "remembered",
    "primary-only",
    "fail-open",
    "lockout",
    "admin",
    "none",
];

/// The results radmfa records, as `audit --help` lists them (a unit test keeps the two
/// together).
const KNOWN_RESULTS: &[&str] = &[
    "accept",
    "reject",
    "challenge",
    "unanswered",
    "lock",
    "fraud",
    "enroll",
    "unlock",
    "reset",
    "delete",
    "forget",
    "bypass",
    "unblock",
    "set-phone",
    "set-method",
    "import",
    "import-refused",
    "replace",
    "assign",
    "unassign",
    "enable",
    "disable",
    "delete-token",
    "resync",
    "resync-refused",
    "app-password-add",
    "app-password-delete",
    "app-password-delete-all",
    "backup",
    "migrate",
];

pub async fn run(cfg: &Config, args: AuditArgs) -> anyhow::Result<ExitCode> {
    let now = SystemClock.now();
    // A typo (`rejected`) matched nothing and printed an empty table: read during an
    // incident as "no rejects". Said on stderr; the query still runs (a result written by
    // a newer node sharing the store is one this release may not know).
    for (flag, value, known) in [
        ("mode", &args.mode, KNOWN_MODES),
        ("result", &args.result, KNOWN_RESULTS),
    ] {
        if let Some(v) = value.as_deref().filter(|v| !known.contains(v)) {
            eprintln!(
                "warning: --{flag} {:?} is not a {flag} radmfa records ({}); records match it \
                 only if a newer release wrote them",
                printable(v),
                known.join(", ")
            );
        }
    }
    let filter = AuditFilter {
        user: args.user.as_deref().map(|u| cfg.user_names.key(u)),
        result: args.result,
        mode: args.mode,
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
        server: args.server,
        nas: args.nas.map(|n| nas_as_configured(cfg, n)),
        token: args.token,
        client_ip: args.client_ip,
        limit: args.limit,
        after_id: None,
        before: None,
        newest_by_id: false,
    };
    // `--since 1h --until 2h` (an hour ago until two hours ago) matches nothing: said, so
    // an incident report does not read "no records" where the window was back to front.
    if let (Some(since), Some(until)) = (filter.since, filter.until) {
        if since >= until {
            bail!(
                "--since ({}) is not before --until ({}): no record could match (ages count \
                 back from now: --since 2h --until 1h; records are stamped in whole seconds, \
                 and a fraction counts from the next one)",
                fmt_time(since),
                fmt_time(until)
            );
        }
    }
    if let Some(by) = args.count_by {
        let counts = with_audit_reader(&cfg.store, true, async |store| {
            Ok(store.audit_counts(&filter, by).await?)
        })
        .await?;
        return report(counts, by, args.limit, args.json);
    }
    if args.follow {
        // Nodes share a PostgreSQL store: what comes next may be any node's.
        let shared = matches!(cfg.store, crate::config::StoreConfig::Postgres { .. });
        with_audit_reader(&cfg.store, false, async |store| {
            super::audit_follow::follow(store, filter, args.json, shared).await
        })
        .await?;
        return Ok(ExitCode::SUCCESS);
    }
    // On a shared store the SERVER column is always there, even when the records shown
    // are one node's: which node answered is what an admin reading them wants to know.
    let shared = matches!(cfg.store, crate::config::StoreConfig::Postgres { .. });
    let shown = with_audit_reader(&cfg.store, true, async |store| {
        print_pages(store, filter, args.json, shared).await
    })
    .await?;
    if let Some(shown) = shown {
        // On stderr: stdout stays the table or the JSON lines. An export cut short at the
        // default 50 without a word was read as every record of the window.
        eprintln!(
            "(the newest {shown} records shown; more match: raise --limit, or --limit 0 for \
             all)"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Records are read this many at a time, each page printed before the next is read: an
/// export of 90 days (`--json --limit 2000000`) held every record in memory at once,
/// 5.7 GiB for 1.55 million on SQLite, on what may be a serving host. So `--limit 0`,
/// every record, costs no more memory than a page.
const PAGE: u32 = 5_000;

/// Prints the records `filter` selects, newest first, at most `filter.limit` (0: all of
/// them). The table's columns fit the first page: a listing of one page fits them all, a
/// longer one is printed as it is read, and a wider value further down pushes its own line
/// out. Returns how many were shown when more match than the limit let through.
/// `--nas` as typed (the query ignores case), with a warning when no client of the config
/// has that name: a typo printed an empty report, read as "no records" (admin red team).
/// Searched all the same: a client since removed still has its records.
fn nas_as_configured(cfg: &Config, typed: String) -> String {
    if !cfg
        .clients
        .iter()
        .any(|c| c.name.eq_ignore_ascii_case(&typed))
    {
        let names: Vec<&str> = cfg.clients.iter().map(|c| c.name.as_str()).collect();
        eprintln!(
            "warning: --nas {:?} is no [[client]] name in the config ({}); records match it \
             only if a client of that name was configured when they were written",
            printable(&typed),
            printable(&names.join(", "))
        );
    }
    typed
}

async fn print_pages(
    store: &crate::store::audit_reader::AuditReader,
    mut filter: AuditFilter,
    json: bool,
    shared: bool,
) -> anyhow::Result<Option<u64>> {
    let mut left = (filter.limit > 0).then_some(filter.limit);
    let mut shown = 0_u64;
    let mut table: Option<Table> = None;
    loop {
        let page = left.map_or(PAGE, |l| l.min(PAGE));
        // One more than the page: whether any are left after it, without a count that
        // scans every matching record.
        filter.limit = page + 1;
        let mut rows = store.audit(&filter).await?;
        let more = rows.len() > page as usize;
        rows.truncate(page as usize);
        // println!: a reader gone (`| head`) ends the command by SIGPIPE, as everywhere
        // (`output::end_quietly_when_stdout_fails`).
        let t = *table.get_or_insert_with(|| {
            let t = Table::fitting(&rows).with_server(shared);
            if !json {
                println!("{}", t.header());
            }
            t
        });
        for r in &rows {
            if json {
                println!("{}", super::json_printable(serde_json::to_string(r)?));
            } else {
                println!("{}", t.row(r));
            }
        }
        shown += rows.len() as u64;
        let Some(last) = rows.last().filter(|_| more) else {
            return Ok(None);
        };
        filter.before = Some((last.time, last.id));
        if let Some(l) = left.as_mut() {
            *l -= page;
            if *l == 0 {
                return Ok(Some(shown));
            }
        }
    }
}

/// The records' table: columns as wide as their widest value (at least the header), so long
/// NAS names and serials do not push the rest out of line. SERVER, which node answered, only
/// where there can be more than one (PostgreSQL's shared store): on one node it says the
/// same on every line.
#[derive(Clone, Copy)]
pub(super) struct Table {
    user: usize,
    result: usize,
    mode: usize,
    token: usize,
    nas: usize,
    server: Option<usize>,
}

impl Table {
    pub(super) fn fitting(rows: &[AuditRecord]) -> Self {
        let width = |header: &str, value: &dyn Fn(&AuditRecord) -> usize| {
            rows.iter().map(value).max().unwrap_or(0).max(header.len())
        };
        let servers: std::collections::BTreeSet<&str> =
            rows.iter().map(|r| r.server_name.as_str()).collect();
        Table {
            user: width("USER", &|r| cells(&printable(&r.user))),
            result: width("RESULT", &|r| cells(&printable(&r.result))),
            mode: width("MODE", &|r| r.mode.len()),
            token: width("TOKEN", &|r| cells(&printable(&token_column(r)))),
            nas: width("NAS", &|r| {
                r.nas_name.as_deref().map_or(1, |n| cells(&printable(n)))
            }),
            server: (servers.len() > 1)
                .then(|| width("SERVER", &|r| cells(&printable(&r.server_name)))),
        }
    }

    /// With the SERVER column even if the rows so far name one node: on a shared store
    /// (PostgreSQL) they are one node's of several, and records still to come (`--follow`)
    /// may be another's.
    pub(super) fn with_server(self, shared: bool) -> Self {
        Table {
            server: self.server.or(shared.then_some("SERVER".len())),
            ..self
        }
    }

    /// At least `min` wide in every column: for records not seen yet (`--follow`).
    pub(super) fn at_least(self, min: usize) -> Self {
        Table {
            user: self.user.max(min),
            // Every record's result fits: the longest radmfa writes is
            // "app-password-delete-all".
            result: self.result.max("app-password-delete-all".len()),
            mode: self.mode.max(min),
            token: self.token.max(min),
            nas: self.nas.max(min),
            server: self.server.map(|w| w.max(min)),
        }
    }

    pub(super) fn header(&self) -> String {
        self.line(
            [
                "TIME", "USER", "RESULT", "MODE", "TOKEN", "NAS", "SERVER", "MS",
            ],
            "REASON",
        )
    }

    pub(super) fn row(&self, r: &AuditRecord) -> String {
        self.line(
            [
                &fmt_time(r.time),
                &r.user,
                &r.result,
                &r.mode,
                &token_column(r),
                r.nas_name.as_deref().unwrap_or("-"),
                &r.server_name,
                &r.latency_ms.to_string(),
            ],
            &match (&r.reason, &r.actor) {
                (Some(reason), Some(actor)) => format!("{reason} (by {actor})"),
                (None, Some(actor)) => format!("by {actor}"),
                (reason, None) => reason.clone().unwrap_or_default(),
            },
        )
    }

    fn line(&self, fields: [&str; 8], reason: &str) -> String {
        let [time, user, result, mode, token, nas, server, ms] = fields.map(printable);
        let reason = printable(reason);
        let Table {
            user: wu,
            result: wr,
            mode: wm,
            token: wt,
            nas: wn,
            server: ws,
        } = *self;
        let server = match ws {
            Some(ws) => format!(" {}", pad(&server, ws)),
            None => String::new(),
        };
        format!(
            "{time:<20} {} {} {} {} {}{server} {ms:>6}  {reason}",
            pad(&user, wu),
            pad(&result, wr),
            pad(&mode, wm),
            pad(&token, wt),
            pad(&nas, wn),
        )
    }
}

/// What the second factor was: the token's serial, or for an SMS or a call the number used,
/// masked as the prompts mask it (`--json` gives it whole, for the admin tracing a fraud).
fn token_column(r: &AuditRecord) -> String {
    match (&r.token_serial, &r.phone) {
        (Some(serial), _) => serial.clone(),
        (None, Some(phone)) => crate::delivery::phone::mask(phone),
        (None, None) => "-".into(),
    }
}

/// One line of a report: a group's count per result.
#[derive(Debug, Default, serde::Serialize)]
struct Group {
    key: String,
    total: u64,
    results: BTreeMap<String, u64>,
}

/// Results with a column of their own; the admin events (enroll, lock, …) and a no_reply
/// client's unanswered logins go under OTHER.
const COLUMNS: [&str; 3] = ["accept", "reject", "challenge"];

/// Pivots the counts to one line per group: the largest groups first (days: the latest
/// first), at most `limit` of them.
fn groups(counts: Vec<AuditCount>, by: AuditGroup) -> Vec<Group> {
    let mut map: BTreeMap<String, Group> = BTreeMap::new();
    for c in counts {
        // A reason's cause, not its every wording (`reason_group`).
        let key = match by {
            AuditGroup::Reason => super::reason_group::reason_group(&c.key),
            // One row per address or MAC, however the NAS wrote it: `ip:port` with a new
            // port per connection split one source into a row each.
            AuditGroup::ClientIp if c.key != "-" => crate::pipeline::networks::station_key(&c.key),
            _ => c.key,
        };
        let g = map.entry(key.clone()).or_insert_with(|| Group {
            key,
            ..Default::default()
        });
        g.total += c.count;
        *g.results.entry(c.result).or_default() += c.count;
    }
    let mut out: Vec<Group> = map.into_values().collect();
    if by == AuditGroup::Day {
        out.reverse();
    } else {
        // Stable: equal totals stay in key order.
        out.sort_by_key(|g| std::cmp::Reverse(g.total));
    }
    out
}

fn report(
    counts: Vec<AuditCount>,
    by: AuditGroup,
    limit: u32,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let all = groups(counts, by);
    let shown = if limit == 0 {
        all.len()
    } else {
        all.len().min(limit as usize)
    };
    if json {
        for g in &all[..shown] {
            println!("{}", super::json_printable(serde_json::to_string(g)?));
        }
        more_groups(&all[shown..]);
        return Ok(ExitCode::SUCCESS);
    }
    // As typed after --count-by (CLIENT-IP), not the variant's name (CLIENTIP).
    let name = clap::ValueEnum::to_possible_value(&by)
        .map(|v| v.get_name().to_uppercase())
        .unwrap_or_default();
    println!(
        "{:>9} {:>9} {:>9} {:>9} {:>9}  {name}",
        "TOTAL", "ACCEPT", "REJECT", "CHALLENGE", "OTHER"
    );
    for g in &all[..shown] {
        let n = |r: &str| g.results.get(r).copied().unwrap_or(0);
        let other = g.total - COLUMNS.iter().map(|r| n(r)).sum::<u64>();
        println!(
            "{:>9} {:>9} {:>9} {:>9} {:>9}  {}",
            g.total,
            n("accept"),
            n("reject"),
            n("challenge"),
            other,
            printable(&g.key)
        );
    }
    more_groups(&all[shown..]);
    Ok(ExitCode::SUCCESS)
}

/// Says on stderr what a report left off, for the table and the JSON alike: a script
/// reading `--json` took the groups shown for all of them. Not on stdout, which stays the
/// table or the JSON lines.
fn more_groups(rest: &[Group]) {
    if !rest.is_empty() {
        let records: u64 = rest.iter().map(|g| g.total).sum();
        eprintln!(
            "({} more groups, {records} records; raise --limit, or --limit 0 for all)",
            rest.len()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Columns line up in terminal cells: a fullwidth name takes two a character, a
    /// combining mark none. Padded by characters, the RESULT column after 山田太郎 started
    /// four cells later than after alice's, and after josé (e + U+0301) one sooner.
    #[test]
    fn table_columns_line_up_in_terminal_cells() {
        use crate::store::AuditRecord;
        let row = |user: &str| AuditRecord {
            time: 1_700_000_000,
            user: user.into(),
            mode: "totp".into(),
            result: "accept".into(),
            token_serial: Some("ＴＯＫ１".into()),
            nas_name: Some("vpn".into()),
            ..AuditRecord::default()
        };
        let rows = [row("alice"), row("山田太郎"), row("jose\u{301}")];
        let table = Table::fitting(&rows);
        let lines: Vec<String> = rows.iter().map(|r| table.row(r)).collect();
        // Measured here with the crate itself, not `cells`, so the test stands apart.
        let column_of = |line: &str, what: &str| {
            unicode_width::UnicodeWidthStr::width(&line[..line.find(what).unwrap()])
        };
        for what in ["accept", " vpn "] {
            let at: Vec<usize> = lines.iter().map(|l| column_of(l, what)).collect();
            assert!(at.iter().all(|c| *c == at[0]), "{what}: {at:?}\n{lines:#?}");
        }
        assert_eq!(
            unicode_width::UnicodeWidthStr::width(pad("山田", 6).as_str()),
            6
        );
        assert_eq!(pad("longer than", 3), "longer than");
    }

    /// `--result`'s help lists what the warning calls known, and nothing else.
    #[test]
    fn known_results_are_those_the_help_lists() {
        use clap::CommandFactory;
        let cli = crate::cli::Cli::command();
        let audit = cli.find_subcommand("audit").unwrap();
        let arg = audit
            .get_arguments()
            .find(|a| a.get_id() == "result")
            .unwrap();
        let help = arg.get_long_help().or(arg.get_help()).unwrap().to_string();
        let listed: Vec<&str> = help
            .split(|c: char| !(c.is_ascii_lowercase() || c == '-'))
            .filter(|w| KNOWN_RESULTS.contains(w))
            .collect();
        for r in KNOWN_RESULTS {
            assert!(listed.contains(r), "{r} is not in the help: {help}");
        }
    }

    /// `audit --help` says what is not in the audit: a NAS that reports a timeout sent a
    /// request that was dropped, and the admin looking for its record found nothing.
    #[test]
    fn the_help_says_dropped_requests_are_in_the_log() {
        use clap::CommandFactory;
        let cli = crate::cli::Cli::command();
        let audit = cli.find_subcommand("audit").unwrap();
        let about = audit.get_long_about().unwrap().to_string();
        for said in [
            "wrong shared secret",
            "no [[client]] entry matches",
            "no Message-Authenticator",
            "serve log",
        ] {
            assert!(about.contains(said), "{said:?} not in: {about}");
        }
    }

    fn count(key: &str, result: &str, count: u64) -> AuditCount {
        AuditCount {
            key: key.into(),
            result: result.into(),
            count,
        }
    }

    #[test]
    fn report_groups_are_pivoted_and_ordered() {
        let counts = vec![
            count("bob", "accept", 2),
            count("alice", "reject", 1),
            count("alice", "accept", 3),
            count("carol", "enroll", 1),
            count("dave", "reject", 1),
        ];
        let g = groups(counts.clone(), AuditGroup::User);
        let keys: Vec<&str> = g.iter().map(|g| g.key.as_str()).collect();
        assert_eq!(
            keys,
            ["alice", "bob", "carol", "dave"],
            "largest first, ties by name"
        );
        assert_eq!(g[0].total, 4);
        assert_eq!(g[0].results["accept"], 3);
        assert_eq!(g[0].results["reject"], 1);
        // Reasons group by cause: each lock's time apart, they were a row each.
        let reasons = groups(
            vec![
                count(
                    "3 consecutive wrong codes; locked until 2026-05-01T10:00:00Z",
                    "lock",
                    1,
                ),
                count(
                    "3 consecutive wrong codes; locked until 2026-05-02T11:00:00Z",
                    "lock",
                    1,
                ),
                count("wrong code", "reject", 1),
            ],
            AuditGroup::Reason,
        );
        let keys: Vec<(&str, u64)> = reasons.iter().map(|g| (g.key.as_str(), g.total)).collect();
        assert_eq!(
            keys,
            [
                ("N consecutive wrong codes; locked until <time>", 2),
                ("wrong code", 1)
            ]
        );
        let days = groups(
            vec![
                count("2026-11-30", "accept", 9),
                count("2026-12-01", "accept", 1),
            ],
            AuditGroup::Day,
        );
        assert_eq!(days[0].key, "2026-12-01", "latest day first");
        // One source, one row, however its NAS wrote it (a new port per connection split
        // a spray's source into a row each).
        let sources = groups(
            vec![
                count("[2001:db8:7::21]:4500", "reject", 1),
                count("[2001:db8:7::21]:61234", "reject", 1),
                count("2001:db8:7::21", "accept", 1),
                count("10.9.1.1[4500]", "reject", 1),
                count("-", "enroll", 1),
            ],
            AuditGroup::ClientIp,
        );
        let keys: Vec<(&str, u64)> = sources.iter().map(|g| (g.key.as_str(), g.total)).collect();
        assert_eq!(keys, [("2001:db8:7::21", 3), ("-", 1), ("10.9.1.1", 1)]);
    }

    #[test]
    fn ages_take_a_unit_and_refuse_anything_else() {
        assert_eq!(age_secs("15m").unwrap(), 900);
        assert_eq!(age_secs("2d").unwrap(), 172_800);
        for bad in [
            "5é",
            "é",
            "",
            "m",
            "15",
            "1.5h",
            "15 m",
            "-1h",
            "+1h",
            "-9223372036854775808s",
        ] {
            assert!(age_secs(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn times_parse_in_all_three_forms() {
        assert_eq!(parse_time("1700000000", 0).unwrap(), 1700000000);
        assert_eq!(parse_time("2023-11-14T22:13:20Z", 0).unwrap(), 1700000000);
        assert_eq!(
            parse_time("2023-11-14T23:13:20+01:00", 0).unwrap(),
            1700000000
        );
        assert_eq!(parse_time("15m", 10_000).unwrap(), 10_000 - 900);
        // A fraction: the next whole second, for --until's "before" as for --since's
        // "at or after".
        assert_eq!(parse_time("2023-11-14T22:13:19.9Z", 0).unwrap(), 1700000000);
        assert_eq!(parse_time("2023-11-14T22:13:20.0Z", 0).unwrap(), 1700000000);
        let err = parse_time("yesterday", 0).unwrap_err().to_string();
        assert!(err.contains("RFC 3339") && err.contains("7d"), "{err}");
    }

    /// A day typed as YYYYMMDD is not taken for Unix seconds in 1970 (where every record
    /// is later, so `--since` matched them all).
    #[test]
    fn an_eight_digit_date_is_refused_not_read_as_1970() {
        let err = parse_time("20260131", 0).unwrap_err().to_string();
        assert!(
            err.contains("reads as the date 2026-01-31")
                && err.contains("1970-08-23")
                && err.contains("2026-01-31T00:00:00Z"),
            "{err}"
        );
        assert!(parse_time("20240229", 0).is_err(), "a leap day is a date");
        // Eight digits that make no date are Unix seconds still, as are other lengths.
        assert_eq!(parse_time("20261331", 0).unwrap(), 20_261_331);
        assert_eq!(parse_time("20230229", 0).unwrap(), 20_230_229);
        assert_eq!(parse_time("202601310", 0).unwrap(), 202_601_310);
        assert_eq!(parse_time("0", 0).unwrap(), 0);
    }
}
