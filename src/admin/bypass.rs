//! `radmfa user bypass USER [--for 5m] [--cancel]`: the user's next login with the right
//! password gets in without a second factor, once, within the time given (default 300 s, as
//! the replaced product's one-time bypass). Audited when set, when cancelled and when used.

use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::store::{BypassWas, Store};

/// A bypass is for the next login, not a standing exemption (that is `exempt_groups`); the
/// longest `--for` is the longest the stores honour (see `store::delivery`).
const MAX_SECS: i64 = crate::store::BYPASS_LONGEST_SECS;

/// How many times a grant reads the bypass again after finding it changed under it.
const GRANT_TRIES: u32 = 5;

#[derive(Debug, Args)]
pub struct BypassArgs {
    #[arg(value_parser = super::user_name)]
    pub user: String,
    /// How long it waits to be used: 90s, 5m, 2h (at most 24h).
    #[arg(long = "for", value_name = "TIME", default_value = "5m")]
    pub valid_for: String,
    /// Take back a bypass not used yet.
    #[arg(long, conflicts_with = "valid_for")]
    pub cancel: bool,
    /// Go ahead although the directory ([ldap]) has no such user (yet).
    #[arg(long, conflicts_with = "cancel")]
    pub force: bool,
}

/// `other_names`: the other names of the user's directory entry (looked up for a grant).
pub async fn run(
    cfg: &Config,
    store: &dyn Store,
    a: BypassArgs,
    other_names: &[String],
) -> anyhow::Result<ExitCode> {
    if a.cancel {
        let now = SystemClock.now();
        let profile = store.user_profile(&a.user).await?;
        if profile.bypass_set(now).is_none() {
            // Nothing changed (not even an empty profile row for a mistyped name). Why not
            // is the news: a bypass used already, perhaps by someone else, is not "check
            // the spelling".
            eprintln!(
                "{}: {}",
                super::printable(&a.user),
                why_none_waits(store, &a.user, profile.bypass_until).await
            );
            return Ok(ExitCode::from(1));
        }
        // Only the bypass read here, with its record, in one transaction: one a login used
        // meanwhile was reported cancelled (review).
        let record = super::users::admin_record(cfg, &a.user, "bypass", Some("cancelled".into()));
        let cancelled = store
            .set_bypass_audited(
                &a.user,
                None,
                BypassWas::Exactly(profile.bypass_until),
                &record,
            )
            .await?;
        if !cancelled {
            let now_profile = store.user_profile(&a.user).await?;
            let said = match now_profile.bypass_set(SystemClock.now()) {
                Some(t) => format!(
                    "its bypass was replaced meanwhile by one until {}; run the cancel again \
                     to cancel that one",
                    super::audit::fmt_time(t)
                ),
                None => match why_none_waits(store, &a.user, now_profile.bypass_until).await {
                    // It was there when read: a login took it, its record still on its way
                    // (review: "check the spelling" during an incident).
                    said if said.ends_with(NO_BYPASS) => format!(
                        "its bypass was used by a login while this cancel waited (radmfa \
                         audit --user {} --mode bypass); nothing to cancel",
                        super::printable(&a.user)
                    ),
                    said => said,
                },
            };
            eprintln!("{}: {said}", super::printable(&a.user));
            return Ok(ExitCode::from(1));
        }
        println!("{}: bypass cancelled", super::printable(&a.user));
        return Ok(ExitCode::SUCCESS);
    }
    let secs = parse_secs(&a.valid_for).with_context(|| format!("--for {:?}", a.valid_for))?;
    if let Some(other) = enrolled_under_another_name(cfg, store, &a.user, other_names).await? {
        // Logins under a name with nothing of its own, while another name of the entry
        // holds the second factor, are refused before a bypass is looked at: granted here,
        // it said success and was never used, and the user was still refused.
        eprintln!(
            "{user}: the directory entry is also named {other}, which holds its second \
             factor, and logins under {user} are refused (\"log in with the user name your \
             second factor is enrolled under\"), so a bypass here would never be used. \
             Nothing granted: `radmfa user bypass {quoted}`, and the user logs in as {other}",
            quoted = super::shell_arg(&other),
            user = super::printable(&a.user),
            other = super::printable(&other),
        );
        return Ok(ExitCode::from(1));
    }
    // A token whose seed does not open refuses every login of its holder, a bypass's too
    // (the login reads the user's tokens before it looks for one): granted, it said
    // success and was never used (review).
    let held = store
        .list_tokens(&crate::store::TokenFilter {
            user: Some(a.user.clone()),
            ..Default::default()
        })
        .await?;
    if let Some(r) = held.iter().find(|r| r.extra.unreadable_seed.is_some()) {
        eprintln!(
            "{}: holds token {}, whose seed does not open (BROKEN), and no login of theirs \
             works until it is repaired, a bypass's neither; nothing granted. {}",
            super::printable(&a.user),
            super::printable(&r.token.serial),
            super::tokens::broken_repair(r)
        );
        return Ok(ExitCode::from(1));
    }
    let until = SystemClock.now() + secs;
    let when = super::audit::fmt_time(until);
    // A login without a second factor, granted: with its record, in one transaction (see
    // `set_bypass_audited`), never standing without it. Only over the bypass read here,
    // so that the note below names the one replaced: two admins granting at once both
    // said they replaced the one from before, and one of them had replaced the other's
    // (red team). Read again when it changed meanwhile; the last grant made stands.
    let mut changes_seen = 0;
    let (profile, earlier) = loop {
        let profile = store.user_profile(&a.user).await?;
        let earlier = profile.bypass_set(SystemClock.now());
        let record =
            super::users::admin_record(cfg, &a.user, "bypass", Some(format!("until {when}")));
        match store
            .set_bypass_audited(
                &a.user,
                Some(until),
                BypassWas::Exactly(profile.bypass_until),
                &record,
            )
            .await
        {
            Ok(true) => break (profile, earlier),
            Ok(false) if changes_seen < GRANT_TRIES => changes_seen += 1,
            Ok(false) => bail!(
                "the bypass for {} is not granted: it changed each time it was read ({} \
                 times; other admins or logins at the same moment). Look at `radmfa user \
                 show {}`, then grant it again",
                a.user,
                GRANT_TRIES + 1,
                a.user
            ),
            Err(e) => {
                return Err(anyhow::Error::new(e).context(match earlier {
                    None => format!("the bypass for {} is not granted", a.user),
                    Some(t) => format!(
                        "the bypass for {} is not changed; the one granted earlier, until \
                         {}, still waits",
                        a.user,
                        super::audit::fmt_time(t)
                    ),
                }))
            }
        }
    };
    println!(
        "{}: the next login with the right password until {when} needs no second factor (once)",
        a.user
    );
    if let Some(t) = earlier {
        println!(
            "note: it replaces the bypass that waited until {}",
            super::audit::fmt_time(t)
        );
    }
    // Logins check a fraud block before a bypass: granted, it waits behind the block.
    if profile.blocked_at.is_some() {
        println!(
            "note: {} is blocked (a fraud report): every login is \
             refused, this one too, until `radmfa user unblock {}`",
            super::printable(&a.user),
            super::shell_arg(&a.user)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// [`why_none_waits`]'s answer when the audit knows of no bypass either.
const NO_BYPASS: &str = "had no bypass waiting; check the spelling";

/// Why no bypass waits for `user` (whose profile's bypass ended at `until`, if it has
/// one): expired unused, used by a login (when, through which NAS), or none granted.
async fn why_none_waits(store: &dyn Store, user: &str, until: Option<i64>) -> String {
    use super::audit::fmt_time;
    if let Some(t) = until {
        return format!(
            "its bypass expired unused at {}; nothing to cancel",
            fmt_time(t)
        );
    }
    let newest = |mode: Option<&str>, result: &str| {
        let filter = crate::store::AuditFilter {
            user: Some(user.to_string()),
            mode: mode.map(str::to_string),
            result: Some(result.to_string()),
            limit: 1,
            // The last written, not the last stamped: a grant made while a clock ran ahead
            // is stamped after the login that took it away, and hid that record.
            newest_by_id: true,
            ..Default::default()
        };
        async move { store.audit(&filter).await }
    };
    // The last grant or cancel: a use older than it is not this bypass's (a cancelled
    // grant, then --cancel again, read as the earlier bypass "used already").
    let admin = newest(None, "bypass")
        .await
        .ok()
        .and_then(|r| r.into_iter().next());
    // Taken away by a login that found it set while a clock ran ahead.
    if let Some(a) = admin.as_ref().filter(|a| {
        a.reason
            .as_deref()
            .is_some_and(|r| r.starts_with(crate::pipeline::bypass::TAKEN_AWAY))
    }) {
        return format!(
            "its bypass was {}; nothing to cancel",
            a.reason.as_deref().unwrap_or_default()
        );
    }
    if let Some(a) = admin
        .as_ref()
        .filter(|a| a.reason.as_deref() == Some("cancelled"))
    {
        return format!(
            "its bypass was cancelled already, at {}; nothing to cancel",
            fmt_time(a.time)
        );
    }
    let used = newest(Some("bypass"), "accept").await;
    let used = used
        .ok()
        .and_then(|r| r.into_iter().next())
        .filter(|u| admin.as_ref().is_none_or(|a| u.id > a.id));
    match used {
        Some(r) => format!(
            "its bypass was used already, by a login at {} through {} (radmfa audit --user \
             {} --mode bypass); nothing to cancel",
            fmt_time(r.time),
            super::printable(r.nas_name.as_deref().unwrap_or("a NAS")),
            super::printable(user)
        ),
        None => NO_BYPASS.into(),
    }
}

/// The entry's other name holding second-factor state (tokens, a phone, a block) while
/// `user` holds none: what a login under `user` is refused for (`aliases::refused`).
async fn enrolled_under_another_name(
    cfg: &Config,
    store: &dyn Store,
    user: &str,
    other_names: &[String],
) -> anyhow::Result<Option<String>> {
    use crate::pipeline::aliases::{entry_names_of, holds_state};
    if other_names.is_empty() {
        return Ok(None);
    }
    let own = store.user_snapshot(user).await?;
    if holds_state(!own.tokens.is_empty(), &own.profile) {
        return Ok(None);
    }
    for (shown, key) in entry_names_of(&cfg.user_names, user, other_names) {
        let snap = store.user_snapshot(&key).await?;
        if holds_state(!snap.tokens.is_empty(), &snap.profile) {
            return Ok(Some(shown));
        }
    }
    Ok(None)
}

/// As `radmfa audit --since` takes ages, `90s`, `5m`, `2h`: seconds, from 1 to
/// [`MAX_SECS`]. A bare number is refused: `--for 5` was five seconds, where an admin on
/// the phone with the user meant minutes.
fn parse_secs(s: &str) -> anyhow::Result<i64> {
    if s.parse::<i64>().is_ok() {
        bail!("give a unit: 90s, 5m, 2h");
    }
    let secs = super::audit::age_secs(s)?;
    if !(1..=MAX_SECS).contains(&secs) {
        bail!("must be between 1 s and 24 h");
    }
    Ok(secs)
}

#[cfg(test)]
mod tests {
    use super::parse_secs;

    #[test]
    fn durations_in_seconds_minutes_and_hours() {
        assert_eq!(parse_secs("90s").unwrap(), 90);
        assert!(parse_secs("5")
            .unwrap_err()
            .to_string()
            .contains("give a unit"));
        assert_eq!(parse_secs("5m").unwrap(), 300);
        assert_eq!(parse_secs("24h").unwrap(), 86_400);
        for bad in ["0", "25h", "5d", "m", "-5m", ""] {
            assert!(parse_secs(bad).is_err(), "{bad}");
        }
    }
}
