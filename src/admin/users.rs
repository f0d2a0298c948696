//! `radmfa user …`: enroll, list, show, unlock, reset, delete. Each state change is audited.

use std::process::ExitCode;

use anyhow::{bail, Context};
use rand::RngCore;

use crate::app::{with_command_store, with_existing_store, with_store_as_it_is};
use crate::cli::{EnrollArgs, UserCommand};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::mfa::{enroll, otp};
use crate::secret::Secret;
use crate::store::{
    AuditRecord, FirstToken, NewToken, OtpAlgorithm, Store, StoreError, TokenFilter, TokenKind,
    TokensRemoved,
};

pub async fn run(cfg: &Config, mut cmd: UserCommand) -> anyhow::Result<ExitCode> {
    fold_user_name(cfg, &mut cmd)?;
    // Before the store is opened (perhaps made): a refused name leaves nothing behind. A
    // name no command takes is left to the command's own message.
    let mut granted = super::directory_name::Granted::default();
    if let Some((user, flag, overridden)) = grant(&cmd).filter(|g| valid_user_name(g.0)) {
        match super::directory_name::granted_entry(cfg, user, flag, overridden).await {
            Some(found) => granted = found,
            None => return Ok(ExitCode::from(1)),
        }
    }
    let granted = &granted;
    if only_reads(&cmd) {
        return with_store_as_it_is(&cfg.store, async |store| {
            run_on(cfg, store, cmd, granted).await
        })
        .await;
    }
    if !adds(&cmd) {
        return with_existing_store(&cfg.store, async |store| {
            run_on(cfg, store, cmd, granted).await
        })
        .await;
    }
    with_command_store(&cfg.store, async |store| {
        run_on(cfg, store, cmd, granted).await
    })
    .await
}

/// Whether the command gives a user something (a token, a number, an app password, a
/// bypass), and so may be an installation's first, making the store. The others read,
/// take away or unlock: where there is no store there is nothing for them to act on, and
/// made there (a mistyped store.path) a new empty one would answer "0 deleted" while the
/// real store kept what was to be taken away.
fn adds(cmd: &UserCommand) -> bool {
    use crate::admin::app_passwords::AppPasswordCommand;
    match cmd {
        UserCommand::EnrollTotp(_) => true,
        // "none" takes the number or preference away.
        UserCommand::SetPhone(a) => !a.phone.eq_ignore_ascii_case("none"),
        UserCommand::SetMethod(a) => !a.method.eq_ignore_ascii_case("none"),
        UserCommand::AppPassword(AppPasswordCommand::Add(_)) => true,
        UserCommand::Bypass(b) => !b.cancel,
        _ => false,
    }
}

/// Whether the command only reads: it does not migrate a store behind this release's
/// schema either (see `app::with_store_as_it_is`).
fn only_reads(cmd: &UserCommand) -> bool {
    use crate::admin::app_passwords::AppPasswordCommand;
    matches!(
        cmd,
        UserCommand::List(_)
            | UserCommand::Show(_)
            | UserCommand::AppPassword(AppPasswordCommand::List(_))
    )
}

/// A command that gives the user something a login uses: the user, the flag that goes
/// ahead for a name the directory does not have, and whether it was given.
fn grant(cmd: &UserCommand) -> Option<(&str, &'static str, bool)> {
    use crate::admin::app_passwords::AppPasswordCommand;
    match cmd {
        UserCommand::EnrollTotp(a) => Some((&a.user, "--not-in-directory", a.not_in_directory)),
        UserCommand::SetPhone(a) if !a.phone.eq_ignore_ascii_case("none") => {
            Some((&a.user, "--force", a.force))
        }
        UserCommand::AppPassword(AppPasswordCommand::Add(a)) => Some((&a.user, "--force", a.force)),
        UserCommand::Bypass(b) if !b.cancel => Some((&b.user, "--force", b.force)),
        // A preference for a misspelt name (a scripted import) made a profile nobody
        // logs in with, where set-phone refused the same name.
        UserCommand::SetMethod(a) if !a.method.eq_ignore_ascii_case("none") => {
            Some((&a.user, "--force", a.force))
        }
        _ => None,
    }
}

/// `granted`: what a command that gives looked up of the user's directory entry.
async fn run_on(
    cfg: &Config,
    store: &dyn Store,
    cmd: UserCommand,
    granted: &super::directory_name::Granted,
) -> anyhow::Result<ExitCode> {
    let other_names = &granted.other_names;
    match cmd {
        UserCommand::EnrollTotp(args) => enroll_totp(cfg, store, args, other_names).await,
        UserCommand::List(flag) => list(store, flag.json).await,
        UserCommand::Show(a) => show(cfg, store, &a.user, a.json).await,
        UserCommand::Unlock(a) => {
            // Read first: unlocking clears a count below the threshold too, which is news
            // to say ("was not locked" alone read as nothing changed).
            let failures = store.user_status(&a.user).await?.failures;
            let was = store.unlock_user(&a.user, SystemClock.now()).await?;
            // The send limits count afresh too: someone with the password may have used up
            // the user's day of texts and calls (`max_per_user_per_day`).
            // Every send is counted under the day's key, and forgotten under the user's and
            // the number's keys; the NAS's cap still counts them (see `USER_SEND_KEYS`).
            // Sends are counted under the entry's key, which may be another of its names
            // (john.doe's under jdoe): each name's is forgotten. The directory is asked
            // once, for this and for the locks under the other names below.
            let (entry, others) = entry_and_other_names(cfg, &a.user).await;
            let forget = |key: String| async move {
                super::send_limits::forget_counted(store, &format!("user-day:{key}")).await
            };
            let mut sends = forget(a.user.clone()).await?;
            for (_, key) in &others {
                sends += forget(key.clone()).await?;
            }
            // And the number's, which other names' logins may have used up (a shared desk
            // phone, a person's admin account): the user was refused with nothing of its own
            // counted, and "was not locked" sent the helpdesk away. Theirs still count in
            // their own limits and the NAS's.
            let profile = store.user_profile(&a.user).await?;
            let mut number_sends = None;
            if let Some(number) = super::send_limits::number_of(cfg, &profile, entry.as_ref()) {
                let now = SystemClock.now();
                let key = format!("phone-day:{number}");
                let whose = store.sends_since(&key, now - 86_400, now).await?;
                store.forget_number_sends(&number).await?;
                // Those that counted: the day's, whose the list names. Older ones not yet
                // purged were said forgotten too, beside a list that left them out.
                let n: u64 = whose.iter().map(|(_, n)| n).sum();
                if n > 0 {
                    number_sends = Some(format!(
                        "{n} send(s) of other names to its number no longer counted against \
                         the number's limits (by {}; their own limits and the NAS's still count \
                         them)",
                        super::send_limits::by_whom(&whose)
                    ));
                }
            }
            let mut said = vec![match (was, failures) {
                (true, _) => "unlocked".to_string(),
                (false, 0) => "was not locked".to_string(),
                (false, n) => format!("was not locked; {n} wrong code(s) forgotten"),
            }];
            if sends > 0 {
                said.push(format!(
                    "{sends} send(s) no longer counted against its own or its number's limits \
                     (the NAS's limit still counts them)"
                ));
            }
            let forgot_number = number_sends.is_some();
            said.extend(number_sends);
            let note = (!was || sends > 0 || forgot_number).then(|| said.join("; "));
            admin_audit(cfg, store, &a.user, "unlock", note).await?;
            println!("{}: {}", super::printable(&a.user), said.join("; "));
            // A lock lands on the name the wrong codes came under, and refuses every name of
            // the entry: "was not locked" alone sent the helpdesk away with the user still
            // refused. Said, not lifted: the admin typed this name.
            // Unlocked already, said and audited: a store error now is a warning, not the
            // command's failure.
            let elsewhere = locked_among(store, others).await.unwrap_or_else(|e| {
                eprintln!("warning: the entry's other names' locks could not be read: {e}");
                Vec::new()
            });
            for (other, _) in elsewhere {
                println!(
                    "{}: still refused: locked under the entry's other name {}; run `radmfa \
                     user unlock {}`",
                    super::printable(&a.user),
                    super::printable(&other),
                    super::printable(&other)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        UserCommand::Reset(a) => reset(cfg, store, &a.user).await,
        UserCommand::SetPhone(a) => super::phone::set_phone(cfg, store, a).await,
        UserCommand::SetMethod(a) => super::phone::set_method(cfg, store, a).await,
        UserCommand::Unblock(a) => super::phone::unblock(cfg, store, &a.user).await,
        UserCommand::Bypass(a) => super::bypass::run(cfg, store, a, other_names).await,
        UserCommand::AppPassword(c) => super::app_passwords::run(cfg, store, c, granted).await,
        UserCommand::Forget(a) => match a.user {
            Some(user) => forget(cfg, store, &user).await,
            None => forget_all(cfg, store).await,
        },
        UserCommand::Delete(a) => {
            // A fraud report's block lives with the user's profile: deleting the user lifts
            // it, and with no_factor = "allow" the password alone would then let the caller
            // who was reported in. That takes a deliberate choice, not a clean-up.
            let profile = store.user_profile(&a.user).await?;
            let lifted = profile.blocked_at.is_some();
            if lifted && !a.unblock {
                eprintln!(
                    "{}: blocked ({}); deleting would lift the block. Delete with --unblock, \
                     or `radmfa user unblock` first once the report is dealt with.",
                    super::printable(&a.user),
                    super::printable(profile.blocked_reason.as_deref().unwrap_or("fraud alert"))
                );
                return Ok(ExitCode::from(1));
            }
            let Some(tokens) = store.delete_user(&a.user).await? else {
                // Nothing was deleted: no record claims otherwise (a mistyped name).
                eprintln!("{}: no such user", super::printable(&a.user));
                return Ok(ExitCode::from(1));
            };
            let note = lifted.then(|| "the block (fraud report) lifted".to_string());
            // The tokens' records first: the command's own, which sums up, is the newest.
            let tokens_recorded =
                audit_tokens_removed(cfg, store, &a.user, "delete", &tokens).await;
            let recorded = admin_audit(cfg, store, &a.user, "delete", note).await;
            // The command's own failure, if any, is the one to name.
            recorded.and(tokens_recorded)?;
            println!("{}: deleted", super::printable(&a.user));
            left_under_other_names(cfg, store, &a.user).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `user forget USER`. Done whatever the count: its mark stops a login in flight from
/// being remembered after it, for a user with no remembered login yet too. Nothing
/// forgotten under a name the store knows nothing of is most often a mistyped one, whose
/// real user stays remembered: said so, exit 1 and no record, as `user reset` does.
async fn forget(cfg: &Config, store: &dyn Store, user: &str) -> anyhow::Result<ExitCode> {
    let now = SystemClock.now();
    let n = store.forget_logins(user, now).await?;
    if n == 0 && !has_state(store, user, now).await? {
        eprintln!(
            "{}: no remembered logins, nor anything else, under this name; check the spelling",
            super::printable(user)
        );
        return Ok(ExitCode::from(1));
    }
    let what = format!("{n} remembered login(s) forgotten");
    admin_audit(cfg, store, user, "forget", Some(what.clone())).await?;
    println!(
        "{}: {what}; the next login asks for a second factor",
        super::printable(user)
    );
    Ok(ExitCode::SUCCESS)
}

/// `user forget --all`: each user's as `user forget` does (with its mark), one record for
/// the whole, under no user as `db backup`'s. Users are those the store lists, which a
/// remembered login makes one of.
async fn forget_all(cfg: &Config, store: &dyn Store) -> anyhow::Result<ExitCode> {
    let now = SystemClock.now();
    let (mut logins, mut users) = (0, 0);
    let mut failed = None;
    for u in store.list_users(now).await? {
        let u = u.status;
        match store.forget_logins(&u.user, now).await {
            Ok(0) => {}
            Ok(n) => (logins, users) = (logins + n, users + 1),
            Err(e) => {
                failed = Some((u.user, e));
                break;
            }
        }
    }
    let what = format!("{logins} remembered login(s) of {users} user(s) forgotten");
    let Some((at, e)) = failed else {
        admin_audit(
            cfg,
            store,
            "",
            "forget",
            Some(format!("every user's: {what}")),
        )
        .await?;
        println!("{what}; each user's next login asks for a second factor");
        return Ok(ExitCode::SUCCESS);
    };
    // What was forgotten stays forgotten and goes on the record before the error.
    let partial = format!("every user's, partial: {what}; then failed at {at}");
    let audited = admin_audit(cfg, store, "", "forget", Some(partial)).await;
    Err(anyhow::Error::new(e).context(format!(
        "forgetting every user's remembered logins stopped at {} ({what}{}); run it again",
        super::printable(&at),
        unaudited_note(&audited)
    )))
}

/// Whether the store holds anything of `user` at `now` (`user show`'s test).
pub(super) async fn has_state(store: &dyn Store, user: &str, now: i64) -> anyhow::Result<bool> {
    let status = store.user_status(user).await?;
    let profile = store.user_profile(user).await?;
    Ok(status.token_count > 0
        || status.failures > 0
        || status.locked_until.is_some_and(|t| t > now)
        || profile.phone.is_some()
        || profile.method.is_some()
        || profile.blocked_at.is_some()
        || profile.bypass_set(now).is_some()
        || !store.app_passwords(user).await?.is_empty()
        || !store.remembered_logins(user, now).await?.is_empty())
}

/// Takes away every second factor the user has, so they must enroll again. Each step is
/// its own write: if a later one fails, what was done stays done and is audited as a
/// partial reset before the error is shown (running the command again finishes it).
async fn reset(cfg: &Config, store: &dyn Store, user: &str) -> anyhow::Result<ExitCode> {
    let mut done: Vec<String> = Vec::new();
    let mut calls: Vec<String> = Vec::new();
    let mut tokens = TokensRemoved::default();
    let outcome = reset_steps(store, user, &mut done, &mut calls, &mut tokens).await;
    let what = done.join(", ");
    match outcome {
        // Nothing under this name: most often a mistyped one, whose real user keeps the
        // (perhaps compromised) factor. Said so, and no record claims a reset.
        Ok(false) => {
            eprintln!(
                "{}: nothing to reset (no tokens, lockout, app passwords, bypass, remembered \
                 logins or open prompts under this name); check the spelling",
                super::printable(user)
            );
            left_under_other_names(cfg, store, user).await?;
            Ok(ExitCode::from(1))
        }
        Ok(true) => {
            // The tokens' records first: the command's own, which sums up, is the newest.
            let tokens_recorded = audit_tokens_removed(cfg, store, user, "reset", &tokens).await;
            let recorded = admin_audit(cfg, store, user, "reset", Some(what.clone())).await;
            // After the records: a slow provider must not keep the reset from the audit. And
            // whether or not they were written: the calls are cancelled already, and running
            // the command again would not find them to hang up.
            let hung_up = super::phone::hang_up(cfg, &calls).await;
            // The command's own failure, if any, is the one to name.
            recorded.and(tokens_recorded)?;
            println!(
                "{}: {what}{hung_up}; the user must enroll again",
                super::printable(user)
            );
            left_under_other_names(cfg, store, user).await?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) if done.is_empty() => Err(e),
        Err(e) => {
            let partial = format!("partial: {what}; then failed");
            let tokens_audited = audit_tokens_removed(cfg, store, user, "reset", &tokens).await;
            let audited = admin_audit(cfg, store, user, "reset", Some(partial)).await;
            let audited = audited.and(tokens_audited);
            Err(e.context(format!(
                "the reset of {user} stopped part-way ({what} is done{}); run it again",
                unaudited_note(&audited)
            )))
        }
    }
}

/// After a reset or delete of `user`: what the other names of its directory entry still
/// hold that lets a login in (tokens, app passwords, a waiting bypass), said on stderr with
/// the command for each. Each name keeps its own; a reset under one left the other's app
/// passwords working, with nothing said (a lost laptop's mail client used the other name).
async fn left_under_other_names(cfg: &Config, store: &dyn Store, user: &str) -> anyhow::Result<()> {
    let now = SystemClock.now();
    for (shown, key) in entry_other_names(cfg, user).await {
        let mut held = Vec::new();
        let tokens = store.list_tokens(&holder_of(&key)).await?.len();
        if tokens > 0 {
            held.push(format!("{tokens} token(s)"));
        }
        let app = store.app_passwords(&key).await?.len();
        if app > 0 {
            held.push(format!("{app} app password(s)"));
        }
        if store.user_profile(&key).await?.bypass_set(now).is_some() {
            held.push("a waiting bypass".into());
        }
        if !held.is_empty() {
            eprintln!(
                "note: {user}'s directory entry is also named {other}, which still holds {}: \
                 logins under that name still pass with them (`radmfa user reset {quoted}`)",
                held.join(", "),
                quoted = super::shell_arg(&shown),
                user = super::printable(user),
                other = super::printable(&shown),
            );
        }
    }
    Ok(())
}

/// True if anything was there to take away. The tokens taken away are left in `tokens`
/// for their own audit records, after a later step's error too.
async fn reset_steps(
    store: &dyn Store,
    user: &str,
    done: &mut Vec<String>,
    calls: &mut Vec<String>,
    tokens: &mut TokensRemoved,
) -> anyhow::Result<bool> {
    let now = SystemClock.now();
    *tokens = store.delete_user_tokens(user).await?;
    // Only what happened goes into `done`: a later step's error audits `done` as a partial
    // reset, which must not claim one for a name that had nothing.
    let mut found = !tokens.is_empty();
    if found {
        done.push(format!(
            "{} app token(s) deleted, {} imported token(s) returned to stock",
            tokens.deleted.len(),
            tokens.returned.len()
        ));
    }
    // Unlocking also clears a count of wrong codes below the threshold: that is state too.
    let failures = store.user_status(user).await?.failures;
    if store.unlock_user(user, now).await? {
        done.push("unlocked".into());
        found = true;
    } else if failures > 0 {
        done.push(format!("{failures} wrong code(s) forgotten"));
        found = true;
    }
    // App passwords and a waiting bypass stand in for the second factor, so they go too (a
    // reset often follows a lost or compromised device); a factor the user no longer has
    // must not be remembered either.
    let app_passwords = store.delete_app_passwords(user).await?;
    if app_passwords > 0 {
        done.push(format!("{app_passwords} app password(s) deleted"));
        found = true;
    }
    if store.user_profile(user).await?.bypass_set(now).is_some() {
        store.set_bypass(user, None).await?;
        done.push("the waiting bypass cancelled".into());
        found = true;
    }
    let forgotten = store.forget_logins(user, now).await?;
    if forgotten > 0 {
        done.push(format!("{forgotten} remembered login(s) forgotten"));
        found = true;
    }
    // A prompt opened before the reset could still resend a code or switch methods.
    let closed = store.close_challenges(user).await?;
    if closed > 0 {
        done.push(format!("{closed} open prompt(s) closed"));
        found = true;
    }
    // And a login held on a call (no prompt to close) must not be approved from the phone.
    let cancelled = store
        .cancel_oob(
            user,
            None,
            &format!("{}the user was reset", crate::store::OOB_CANCELLED),
        )
        .await?;
    if cancelled.count > 0 {
        done.push(format!(
            "{} pending SMS code(s) or call(s) cancelled",
            cancelled.count
        ));
        *calls = cancelled.calls;
        found = true;
    }
    Ok(found)
}

/// One record per token `command` (`reset`, `delete`) took from `user`, its serial in
/// `token_serial` as every other token change has it: the command's own record gives only
/// counts, and a token's history (lost, stolen, back in stock) must be found by its serial.
/// Each is tried; the first failure is given back.
async fn audit_tokens_removed(
    cfg: &Config,
    store: &dyn Store,
    user: &str,
    command: &str,
    tokens: &TokensRemoved,
) -> anyhow::Result<()> {
    let mut recorded = Ok(());
    for (serials, result, what) in [
        (&tokens.deleted, "delete-token", "deleted (an app seed)"),
        (
            &tokens.returned,
            "unassign",
            "returned to stock (an imported token)",
        ),
    ] {
        for serial in serials {
            let reason = format!("token {serial} {what} by user {command}");
            let r = super::tokens::audit(cfg, store, user, result, serial, Some(reason)).await;
            recorded = recorded.and(r);
        }
    }
    recorded
}

/// Admins type names as users do; the store keys them as logins do (`Config::user_names`).
/// Checked first, the same for every command: no name a login could never send (empty,
/// over 253 octets, control characters: `unlock` printed an ESC raw to the terminal and
/// audited a 3,000-character name), and nothing given to a name with invisible or
/// bidirectional formatting characters, which logins refuse.
fn fold_user_name(cfg: &Config, cmd: &mut UserCommand) -> anyhow::Result<()> {
    let gives = adds(cmd);
    let name = match cmd {
        UserCommand::EnrollTotp(a) => &mut a.user,
        UserCommand::Show(a) => &mut a.user,
        UserCommand::Unlock(a) | UserCommand::Reset(a) | UserCommand::Unblock(a) => &mut a.user,
        UserCommand::Forget(a) => match &mut a.user {
            Some(user) => user,
            None => return Ok(()),
        },
        UserCommand::Delete(a) => &mut a.user,
        UserCommand::SetPhone(a) => &mut a.user,
        UserCommand::SetMethod(a) => &mut a.user,
        UserCommand::Bypass(a) => &mut a.user,
        UserCommand::AppPassword(c) => c.user_mut(),
        UserCommand::List(_) => return Ok(()),
    };
    if let Err(why) = super::user_name(name) {
        anyhow::bail!("user name {}", super::printable(&why));
    }
    *name = cfg.user_names.key(name);
    // The login's own rule (`pipeline::decide`), on the key as the login checks it: ZWNJ
    // and ZWJ, which Persian and Indic names are spelt with, pass.
    if gives && name.chars().any(crate::pipeline::invisible_format) {
        // A script reading an export saved with a byte order mark passes it on with the
        // first name: said by name, since nothing shows it.
        let bom = if name.starts_with('\u{feff}') {
            " (it starts with a byte order mark: the first line of a file saved as \
             \"UTF-8 with BOM\"; strip it in the script)"
        } else {
            ""
        };
        // Quoted by hand: printable() has escaped them, and {:?} would escape its
        // backslashes again ("ev\\u{202e}il").
        anyhow::bail!(
            "user name \"{}\" has invisible formatting characters{bom}: logins under it are \
             refused",
            super::printable(name)
        );
    }
    Ok(())
}

/// Writes the audit record of an admin action that has been made. If the record fails,
/// the error says the action stands: an admin must not read "disk I/O error" as "nothing
/// happened" after an unlock, a reset or a delete.
pub(crate) async fn admin_audit(
    cfg: &Config,
    store: &dyn Store,
    user: &str,
    result: &str,
    reason: Option<String>,
) -> anyhow::Result<()> {
    let rec = admin_record(cfg, user, result, reason);
    // Not "backup for  is done" for a record of no user.
    let what = match user {
        "" => result.to_string(),
        user => format!("{result} for {user}"),
    };
    record_made_change(store, &rec, &what).await
}

/// For a change that stopped part-way: its audit record's failure, said beside the step's
/// error and never instead of it (alone, it would report the change as done).
pub(crate) fn unaudited_note(audited: &anyhow::Result<()>) -> String {
    match audited {
        Ok(()) => String::new(),
        Err(e) => format!(
            "; its audit record could not be written either: {}",
            e.root_cause()
        ),
    }
}

/// Appends `rec` for a change already made; `what` names the change in the error.
pub(crate) async fn record_made_change(
    store: &dyn Store,
    rec: &AuditRecord,
    what: &str,
) -> anyhow::Result<()> {
    store
        .append_audit(rec)
        .await
        .with_context(|| format!("{what} is done, but its audit record could not be written"))?;
    Ok(())
}

/// The audit record alone, for actions that take themselves back when it fails.
pub(crate) async fn write_admin_audit(
    cfg: &Config,
    store: &dyn Store,
    user: &str,
    result: &str,
    reason: Option<String>,
) -> Result<(), StoreError> {
    let rec = admin_record(cfg, user, result, reason);
    store.append_audit(&rec).await.map(|_| ())
}

/// The `enroll` record of token `serial`, its serial in `token_serial` as every token
/// change has it (and in the reason, as before); `more` is added to the reason.
async fn write_enroll_audit(
    cfg: &Config,
    store: &dyn Store,
    user: &str,
    serial: &str,
    more: String,
) -> Result<(), StoreError> {
    let mut rec = admin_record(cfg, user, "enroll", Some(format!("token {serial}{more}")));
    rec.token_serial = Some(serial.to_string());
    store.append_audit(&rec).await.map(|_| ())
}

/// An admin action's audit record, as of now.
pub(crate) fn admin_record(
    cfg: &Config,
    user: &str,
    result: &str,
    reason: Option<String>,
) -> AuditRecord {
    AuditRecord {
        time: SystemClock.now(),
        user: user.to_string(),
        mode: "admin".into(),
        result: result.into(),
        reason,
        server_name: cfg.server.name.clone(),
        actor: Some(super::actor().to_string()),
        ..Default::default()
    }
}

/// The tokens `user` holds, for [`Store::list_tokens`].
fn holder_of(user: &str) -> TokenFilter {
    TokenFilter {
        user: Some(user.to_string()),
        ..Default::default()
    }
}

fn valid_user_name(user: &str) -> bool {
    !user.is_empty() && user.len() <= 253 && !user.chars().any(|c| c.is_control())
}

/// `other_names`: the other names of the user's directory entry (none where it was not
/// looked up), whose tokens count as the user's: logins under either name pass.
async fn enroll_totp(
    cfg: &Config,
    store: &dyn Store,
    args: EnrollArgs,
    other_names: &[String],
) -> anyhow::Result<ExitCode> {
    if !valid_user_name(&args.user) {
        bail!(
            "user name {:?} is empty, too long or has control characters",
            args.user
        );
    }
    let algorithm = match &args.algorithm {
        Some(a) => OtpAlgorithm::parse(a)
            .with_context(|| format!("--algorithm {a:?}: use SHA1, SHA256 or SHA512"))?,
        None => cfg.totp.algorithm,
    };
    let digits = args.digits.unwrap_or(cfg.totp.digits);
    if !(6..=8).contains(&digits) {
        bail!("--digits {digits}: use 6, 7 or 8");
    }
    let period = args.period.unwrap_or(cfg.totp.period);
    if !(10..=300).contains(&period) {
        bail!("--period {period}: use 10 to 300 seconds");
    }
    // The admin read: a token whose seed does not open is counted too, and stops even a
    // --force: the user's logins fail on it whatever else they hold.
    let existing = store.list_tokens(&holder_of(&args.user)).await?;
    if let Some(r) = existing.iter().find(|r| r.extra.unreadable_seed.is_some()) {
        eprintln!(
            "{}: holds token {}, whose seed does not open (BROKEN), and no login of theirs \
             works until it is repaired; nothing enrolled. {}",
            super::printable(&args.user),
            super::printable(&r.token.serial),
            super::tokens::broken_repair(r)
        );
        return Ok(ExitCode::from(1));
    }
    if !existing.is_empty() && !args.force {
        // A refusal (exit 1), not an error (exit 2): see docs/operations.md.
        eprintln!(
            "{} already has {} token(s); use --force to add another, or `radmfa user reset {}` first",
            super::printable(&args.user),
            existing.len(),
            super::shell_arg(&args.user)
        );
        return Ok(ExitCode::from(1));
    }
    let others = crate::pipeline::aliases::entry_names_of(&cfg.user_names, &args.user, other_names);
    if !args.force {
        if let Some(refusal) = held_under_another_name(store, &args.user, &others).await? {
            eprintln!("{refusal}");
            return Ok(ExitCode::from(1));
        }
    }
    // Without --force, the store looks again as it stores (add_first_token): another
    // enrollment of this entry may have stored a token since the look above.
    let holders = (!args.force).then(|| {
        std::iter::once(args.user.clone())
            .chain(others.into_iter().map(|(_, key)| key))
            .collect::<Vec<_>>()
    });
    // Only `config check` warned, and only for [totp] itself: an override here stored a
    // token some apps cannot follow, and the printed text still named them.
    if (algorithm != OtpAlgorithm::Sha1 || digits != 6 || period != 30) && !args.verify {
        eprintln!(
            "warning: {} {digits} digits, {period} s: {}; --verify would show a mismatch \
             before the token is stored",
            algorithm.as_str(),
            UNFOLLOWED_PARAMETERS
        );
    }
    let seed = enroll::new_seed(algorithm);
    // 56 random bits. 32 were too few for a large site: among 100,000 tokens about one pair
    // would share a serial (the second enrollment failing on the UNIQUE column), and
    // re-enrollments over the years would bring a deleted token's serial back for another
    // user, making the audit trail's token_serial ambiguous. 7 bytes keep the serial within
    // `token list`'s 20-character column.
    let mut tag = [0u8; 7];
    rand::rngs::OsRng.fill_bytes(&mut tag);
    let serial = format!("TOTP-{}", hex::encode_upper(tag));
    let token = NewToken {
        serial: serial.clone(),
        user: Some(args.user.clone()),
        kind: TokenKind::Totp,
        algorithm,
        digits,
        period,
        counter: 0,
        secret: seed.clone(),
    };
    let uri = enroll::otpauth_uri(
        &cfg.totp.issuer,
        &args.user,
        &seed,
        algorithm,
        digits,
        period,
    );
    if args.verify {
        // Shown first, stored only once the app proves it has it: nothing to undo.
        let text = format!(
            "New TOTP token {serial} for {}.\n{}",
            args.user,
            enrollment_text(&uri, &seed, args.no_qr)
        );
        super::output::write_out(&text).context("showing the new token (nothing stored)")?;
        return enroll_verified(cfg, store, token, &args.user, holders.as_deref()).await;
    }
    let text = if args.uri_only {
        format!("{uri}\n")
    } else {
        format!(
            "Enrolled TOTP token {serial} for {}.\n{}",
            args.user,
            enrollment_text(&uri, &seed, args.no_qr)
        )
    };
    if let Err(held) = store_token(store, token, holders.as_deref()).await? {
        eprintln!(
            "{}; nothing enrolled; {}",
            held_meanwhile(&args.user, &held),
            FORCE_A_SECOND
        );
        return Ok(ExitCode::from(1));
    }
    // An enrollment without its audit record is taken back: its secret is never shown, so
    // a token left behind could only be a trap ("already has a token" on the retry).
    if let Err(e) = write_enroll_audit(cfg, store, &args.user, &serial, String::new()).await {
        let e = anyhow::Error::new(e).context("writing audit record");
        return Err(match store.delete_token(&serial).await {
            Ok(_) => e.context(format!("enrollment of {} undone", args.user)),
            Err(undo) => e.context(format!(
                "token {serial} was stored for {user} but its secret was not shown, and it \
                 could not be removed ({undo}); run `radmfa user reset {quoted}`",
                user = args.user,
                quoted = super::shell_arg(&args.user)
            )),
        });
    }
    // A secret that could not be shown (stdout a full disk, a closed pipe) makes a token
    // nobody has: taken back, and said so, as when its record fails.
    if let Err(e) = super::output::write_out(&text) {
        let e = anyhow::Error::new(e).context("showing the new token's secret");
        let undone = store.delete_token(&serial).await;
        let record = format!("token {serial}: enrollment undone, its secret could not be shown");
        let recorded = super::tokens::audit(
            cfg,
            store,
            &args.user,
            "delete-token",
            &serial,
            Some(record),
        )
        .await;
        return Err(match (undone, recorded) {
            (Ok(_), Ok(())) => e.context(format!("enrollment of {} undone", args.user)),
            (Ok(_), Err(r)) => e.context(format!(
                "enrollment of {} undone; its record could not be written: {r}",
                args.user
            )),
            (Err(undo), _) => e.context(format!(
                "token {serial} was stored for {user} but its secret was not shown, and it \
                 could not be removed ({undo}); run `radmfa user reset {quoted}`",
                user = args.user,
                quoted = super::shell_arg(&args.user)
            )),
        });
    }
    if args.uri_only {
        // stdout stays the URI alone, for the script that reads it; the serial links the
        // URI to `token show`, the audit and `token delete`.
        eprintln!("serial: {serial}");
    }
    bypass_still_waits(store, &args.user).await;
    Ok(ExitCode::SUCCESS)
}

/// The refusal of an enrollment (without --force) for a user whose directory entry's other
/// name (`others`: shown, key) holds tokens. Logins under either name pass, each with its
/// own: "enroll the new phone" under the other name left the stolen phone working under
/// the first.
async fn held_under_another_name(
    store: &dyn Store,
    user: &str,
    others: &[(String, String)],
) -> anyhow::Result<Option<String>> {
    Ok(tokens_under_another_name(store, others, None)
        .await?
        .map(|(other, serials)| {
            format!(
                "{user}: the directory entry is also named {other}, which holds token(s) \
                 {serials}; logins under either name pass, so those would keep working beside \
                 the new one. Nothing enrolled. Run `radmfa user reset {quoted}` first (a new \
                 phone for a lost one), or add --force to keep both",
                user = super::printable(user),
                quoted = super::shell_arg(&other),
            )
        }))
}

/// The first of `others` (an entry's other names, shown and as keys, from
/// `aliases::entry_names_of`) that holds tokens other than `except`, as it is shown, with their serials joined
/// for a message (both escaped for a terminal). A second factor given under one name of an
/// entry leaves those of its other names working: the lost phone's app code still passes.
pub(super) async fn tokens_under_another_name(
    store: &dyn Store,
    others: &[(String, String)],
    except: Option<&str>,
) -> anyhow::Result<Option<(String, String)>> {
    for (shown, key) in others {
        // A disabled token lets no one in: nothing to keep working. Nor the one being
        // moved (`except`, a `token assign` from the other name to this one).
        let mut held = store.list_tokens(&holder_of(key)).await?;
        held.retain(|r| r.token.enabled && Some(r.token.serial.as_str()) != except);
        if held.is_empty() {
            continue;
        }
        let serials: Vec<_> = held
            .iter()
            .map(|r| super::printable(&r.token.serial).into_owned())
            .collect();
        return Ok(Some((
            super::printable(shown).into_owned(),
            serials.join(", "),
        )));
    }
    Ok(None)
}

/// How a refusal for a token stored meanwhile ends.
const FORCE_A_SECOND: &str = "use --force to add a second";

/// Stores `token`: where `holders` is given (no --force), only if none of them holds a
/// token yet, looked at in the same step as the insert. `Err` with what they hold.
async fn store_token(
    store: &dyn Store,
    token: NewToken,
    holders: Option<&[String]>,
) -> Result<Result<i64, Vec<(String, String)>>, StoreError> {
    let Some(holders) = holders else {
        return store.add_token(token).await.map(Ok);
    };
    Ok(match store.add_first_token(token, holders).await? {
        FirstToken::Added(id) => Ok(id),
        FirstToken::Held(held) => Err(held),
    })
}

/// "carol got a token meanwhile (TOTP-…)", for tokens `held` (name, serial) stored by
/// another enrollment between this one's look and its insert.
fn held_meanwhile(user: &str, held: &[(String, String)]) -> String {
    let serials: Vec<_> = held
        .iter()
        .map(|(_, serial)| super::printable(serial).into_owned())
        .collect();
    let under = match held.iter().find(|(name, _)| name != user) {
        Some((other, _)) => format!(" under {}", super::printable(other)),
        None => String::new(),
    };
    format!(
        "{} got a token meanwhile{under} ({})",
        super::printable(user),
        serials.join(", ")
    )
}

/// Why anything but SHA1, 6 digits and 30 s is a risk at enrollment (`config check` says it
/// of [totp] too).
pub(crate) const UNFOLLOWED_PARAMETERS: &str = "some authenticator apps (Microsoft \
     Authenticator, older Google Authenticator builds) show SHA1, 6-digit, 30 s codes \
     whatever the enrollment says, and such a token's codes never match there";

/// The QR code, URI and secret for the user's app.
fn enrollment_text(uri: &str, seed: &Secret, no_qr: bool) -> String {
    let mut text = String::from(
        "Scan this with Google Authenticator, Microsoft Authenticator or any TOTP app,\n\
         or type the secret in by hand. It is shown only now.\n\n",
    );
    if !no_qr {
        match enroll::qr_text(uri, qr_colours()) {
            Ok(qr) => {
                text.push_str(&qr);
                text.push('\n');
            }
            // Said where the QR code would be, so whoever reads the text knows to type.
            Err(e) => text.push_str(&format!(
                "(No QR code: the URI does not fit in one ({e}). Type the secret below into \
                 the app by hand.)\n\n"
            )),
        }
    }
    text.push_str(&format!(
        "URI:    {uri}\nSecret: {}\n",
        enroll::base32(seed)
    ));
    text
}

/// Whether the QR code is drawn in fixed colours (black on white): on a terminal, whose
/// background may be dark or light, unless NO_COLOR asks for none (then it is drawn as for
/// a light background). Not into a file or pipe, which gets plain text, dark on light.
fn qr_colours() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// Tries a code from the app may take at `enroll-totp --verify`.
const VERIFY_TRIES: u32 = 3;

/// `enroll-totp --verify`: asks for a code from the app; stores the token (its code's step
/// used up, so that code cannot log in) and the audit record only once one matches.
async fn enroll_verified(
    cfg: &Config,
    store: &dyn Store,
    token: NewToken,
    user: &str,
    holders: Option<&[String]>,
) -> anyhow::Result<ExitCode> {
    let probe = token.preview();
    let mut step = None;
    for attempt in 1..=VERIFY_TRIES {
        eprint!("Code from the app (try {attempt} of {VERIFY_TRIES}, Enter to give up): ");
        let mut line = String::new();
        if std::io::stdin().read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        // Typed as the app shows it ("123 456"): the spaces are no part of the code, as at
        // a login.
        let code = otp::plain_code(&line);
        step = otp::match_totp(&probe, &code, SystemClock.now(), cfg.totp.window);
        if step.is_some() {
            break;
        }
        eprintln!("That code does not match. Check the phone's clock and the entry's name.");
    }
    let Some(step) = step else {
        eprintln!("{user}: not enrolled (no matching code); nothing was stored");
        return Ok(ExitCode::from(1));
    };
    let serial = token.serial.clone();
    // Looked at again now: the code prompt may have waited minutes, while another
    // enrollment of this user went through.
    let id = match store_token(store, token, holders).await? {
        Ok(id) => id,
        Err(held) => {
            eprintln!(
                "{}; nothing stored (remove its entry from the app); {FORCE_A_SECOND}",
                held_meanwhile(user, &held)
            );
            return Ok(ExitCode::from(1));
        }
    };
    // Its code's step used up and its audit record written, or the token goes again: one
    // left behind would log in with the very code just typed, unaudited.
    let finished = async {
        store
            .consume_totp_step(id, step)
            .await
            .context("marking the code as used")?;
        write_enroll_audit(
            cfg,
            store,
            user,
            &serial,
            ", verified with a code from the app".into(),
        )
        .await
        .context("writing the audit record")
    };
    if let Err(e) = finished.await {
        return Err(match store.delete_token(&serial).await {
            Ok(_) => e.context(format!(
                "token {serial} was removed again: remove its entry from the app and enroll \
                 {user} again"
            )),
            Err(undo) => e.context(format!(
                "token {serial} is stored for {user} and could not be removed ({undo}); run \
                 `radmfa token delete {} --force`",
                super::shell_arg(&serial)
            )),
        });
    }
    println!("Verified: token {serial} enrolled for {user}.");
    bypass_still_waits(store, user).await;
    Ok(ExitCode::SUCCESS)
}

/// After an enrollment: a bypass granted for the lost phone (`user bypass`, then the new
/// phone enrolled) still waits, and the next login takes it rather than the new token's
/// code; said, with how to cancel it, on stderr. A store read that fails says nothing: the
/// enrollment is done.
async fn bypass_still_waits(store: &dyn Store, user: &str) {
    let Ok(profile) = store.user_profile(user).await else {
        return;
    };
    if let Some(until) = profile.bypass_set(SystemClock.now()) {
        eprintln!(
            "note: a bypass still waits for {user} until {}: the next login with the \
             password takes it, not a code; `radmfa user bypass {quoted} --cancel` if the new \
             token replaces it",
            super::audit::fmt_time(until),
            user = super::printable(user),
            quoted = super::shell_arg(user)
        );
    }
}

/// Printed a page at a time ([`crate::store::USERS_PAGE`]): at 30,000 users the whole list
/// held at once took 85 MB (119 MB with `--json`).
async fn list(store: &dyn Store, json: bool) -> anyhow::Result<ExitCode> {
    let now = SystemClock.now();
    if !json {
        println!(
            "{:<32} {:>6} {:>8}  {:<26}  ALSO",
            "USER", "TOKENS", "FAILURES", "LOCKED"
        );
    }
    let mut count = 0usize;
    let mut after: Option<String> = None;
    loop {
        let page = store
            .list_users_page(now, after.as_deref(), crate::store::USERS_PAGE)
            .await?;
        let last_page = page.len() < crate::store::USERS_PAGE as usize;
        after = page.last().map(|u| u.status.user.clone());
        for u in &page {
            if json {
                // The layout `serde_json::to_string_pretty` gives the whole array.
                let row = super::json_printable(serde_json::to_string_pretty(&json_row(u, now))?);
                let row = row.replace('\n', "\n  ");
                print!("{}  {row}", if count == 0 { "[\n" } else { ",\n" });
            } else {
                table_row(u, now);
            }
            count += 1;
        }
        if last_page {
            break;
        }
    }
    if json {
        println!("{}", if count == 0 { "[]" } else { "\n]" });
    } else {
        // As `token list` ends: a count an admin would otherwise pipe to wc.
        println!("{count} user(s)");
    }
    Ok(ExitCode::SUCCESS)
}

fn json_row(u: &crate::store::UserSummary, now: i64) -> serde_json::Value {
    let s = &u.status;
    serde_json::json!({
        "user": s.user, "tokens": s.token_count, "failures": s.failures,
        "locked_until": s.locked_until.filter(|t| *t > now),
        "method": u.method, "phone": u.phone, "blocked_at": u.blocked_at,
        "bypass_until": u.bypass_until, "app_passwords": u.app_passwords,
        "remembered": u.remembered,
    })
}

fn table_row(u: &crate::store::UserSummary, now: i64) {
    let s = &u.status;
    let locked = match s.locked_until {
        Some(t) if t > now => format!("until {}", super::audit::fmt_time(t)),
        _ => "-".into(),
    };
    println!(
        "{} {:>6} {:>8}  {locked:<26}  {}",
        super::pad(&super::printable(&s.user), 32),
        s.token_count,
        s.failures,
        also(u)
    );
}

/// What else the store holds of a listed user, in a few words: a user listed with no token
/// and no failures is there for one of these, and a fraud block or a waiting bypass is what
/// a helpdesk scanning the list must not miss. `user show USER` has the details.
fn also(u: &crate::store::UserSummary) -> String {
    let mut parts = Vec::new();
    if u.blocked_at.is_some() {
        parts.push("BLOCKED (fraud report)".to_string());
    }
    if let Some(t) = u.bypass_until {
        parts.push(format!("bypass until {}", super::audit::fmt_time(t)));
    }
    if let Some(m) = &u.method {
        parts.push(format!("method {m}"));
    }
    if u.phone {
        parts.push("phone".into());
    }
    if u.app_passwords > 0 {
        parts.push(format!("{} app password(s)", u.app_passwords));
    }
    if u.remembered > 0 {
        parts.push(format!("{} remembered login(s)", u.remembered));
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(", ")
    }
}

/// The user's directory entry, and its other names with their store keys (see
/// [`super::directory_name::other_names`]); neither, said on stderr, when the directory
/// cannot be asked.
async fn entry_and_other_names(
    cfg: &Config,
    user: &str,
) -> (Option<crate::auth::UserInfo>, Vec<(String, String)>) {
    match super::directory_name::entry_of(cfg, user).await {
        Ok(entry) => {
            let names = super::directory_name::other_names_of(cfg, user, entry.as_ref());
            (entry, names)
        }
        Err(e) => {
            eprintln!(
                "warning: {}: the directory could not be asked for the entry ({e}); a lock \
                 under one of its other names, which refuses this name too, and the send \
                 limits of a number from the directory are not looked at",
                super::printable(user)
            );
            (None, Vec::new())
        }
    }
}

/// The other names of `user`'s entry with their store keys (see
/// [`super::directory_name::other_names`]); none, said on stderr, when the directory
/// cannot be asked.
async fn entry_other_names(cfg: &Config, user: &str) -> Vec<(String, String)> {
    super::directory_name::other_names(cfg, user)
        .await
        .unwrap_or_else(|e| {
            eprintln!(
                "warning: {}: the directory could not be asked for the entry's other names \
                 ({e}); a lock under one of them, which refuses this name too, is not shown",
                super::printable(user)
            );
            Vec::new()
        })
}

/// Which of `names` (name, store key) are locked now, with until when.
async fn locked_among(
    store: &dyn Store,
    names: Vec<(String, String)>,
) -> anyhow::Result<Vec<(String, i64)>> {
    let now = SystemClock.now();
    let mut locked = Vec::new();
    for (other, key) in names {
        if let Some(until) = store.user_status(&key).await?.locked_until {
            if until > now {
                locked.push((other, until));
            }
        }
    }
    Ok(locked)
}

async fn show(cfg: &Config, store: &dyn Store, user: &str, json: bool) -> anyhow::Result<ExitCode> {
    let status = store.user_status(user).await?;
    // The admin read, in enrollment order: a token whose seed does not open is shown as such
    // (a login's read fails on it), not an error that hides the rest.
    let mut tokens = store.list_tokens(&holder_of(user)).await?;
    tokens.sort_by_key(|r| r.token.id);
    let profile = store.user_profile(user).await?;
    let now = SystemClock.now();
    let remembered = store.remembered_logins(user, now).await?;
    // App passwords log in without a code: a user holding one is never "without state".
    let app_passwords = store.app_passwords(user).await?;
    let has_profile = profile.phone.is_some()
        || profile.method.is_some()
        || profile.blocked_at.is_some()
        || profile.bypass_set(now).is_some()
        || !remembered.is_empty()
        || !app_passwords.is_empty();
    // A lock that has run out is no state (`user list` leaves it out too).
    let locked = status.locked_until.filter(|t| *t > now);
    // Asked before "no state" is said: a name with nothing stored of its own is refused all
    // the same while the entry's other name is locked (a user whose number comes from the
    // directory), and the help desk was told there was nothing there.
    let (entry, others) = entry_and_other_names(cfg, user).await;
    // The user's texts and calls, and its number's, which other names' logins can use up:
    // such a user is refused though nothing else of its own is stored.
    let mut names = vec![user.to_string()];
    names.extend(others.iter().map(|(_, key)| key.clone()));
    let number = super::send_limits::number_of(cfg, &profile, entry.as_ref());
    let sends = super::send_limits::read(cfg, store, &names, number).await?;
    let locked_elsewhere = locked_among(store, others).await?;
    if tokens.is_empty()
        && status.failures == 0
        && locked.is_none()
        && !has_profile
        && locked_elsewhere.is_empty()
        && !sends.any(cfg)
    {
        eprintln!(
            "{}: no tokens and no second-factor state",
            super::printable(user)
        );
        return Ok(ExitCode::from(1));
    }
    if json {
        let toks: Vec<_> = tokens
            .iter()
            .map(|r| {
                let t = &r.token;
                serde_json::json!({
                    "serial": t.serial, "type": t.kind, "algorithm": t.algorithm,
                    "digits": t.digits, "enabled": t.enabled,
                    "valid_from": r.extra.valid_from, "valid_until": r.extra.valid_until,
                    // As `token list --json` has it: a TOTP token's period (an HOTP token's
                    // was 0, which a script dividing by it met), an HOTP token's counter.
                    "period": (t.kind == TokenKind::Totp).then_some(t.period),
                    "counter": (t.kind == TokenKind::Hotp).then_some(t.counter),
                    "created_at": t.created_at, "last_used_step": t.last_step,
                    "seed_unreadable": r.extra.unreadable_seed,
                })
            })
            .collect();
        let v = serde_json::json!({
            "user": user, "failures": status.failures, "locked_until": locked, "tokens": toks,
            "locked_under_other_names": locked_elsewhere.iter().map(|(name, until)| {
                serde_json::json!({ "user": name, "locked_until": until })
            }).collect::<Vec<_>>(),
            "phone": profile.phone, "method": profile.method,
            "sends": super::send_limits::json(cfg, &sends),
            "blocked_at": profile.blocked_at, "blocked_reason": profile.blocked_reason,
            "bypass_until": profile.bypass_set(now),
            "remembered": remembered.iter().map(|r| serde_json::json!({
                "client": r.nas, "calling_station_id": r.station, "mode": r.mode,
                "verified_at": r.verified_at, "expires_at": r.expires_at,
            })).collect::<Vec<_>>(),
            "app_passwords": app_passwords.iter().map(|p| serde_json::json!({
                "id": p.id, "label": p.label, "created_at": p.created_at,
                "last_used_at": p.last_used_at,
            })).collect::<Vec<_>>(),
        });
        println!(
            "{}",
            super::json_printable(serde_json::to_string_pretty(&v)?)
        );
    } else {
        println!("user:     {}", super::printable(user));
        // Of the threshold: "failures: 0" beside "locked: until …" read as a contradiction
        // (a lock starts the count again).
        // At or over the threshold without a lock: it was lowered since (a reload keeps the
        // count); "3 of 2, locked: no" read as a failed lock.
        let over = status.failures >= cfg.lockout.threshold && locked.is_none();
        println!(
            "failures: {} of {} ({})",
            status.failures,
            cfg.lockout.threshold,
            if over {
                "at or over a threshold lowered since they were counted: the next wrong code \
                 locks; a right code starts again"
            } else {
                "consecutive wrong codes; a lock or a right code starts again"
            }
        );
        match locked {
            Some(t) => println!("locked:   until {}", super::audit::fmt_time(t)),
            None if !locked_elsewhere.is_empty() => println!("locked:   not under this name"),
            None => println!("locked:   no"),
        }
        // Such a lock refuses this name's logins as its own would ("Too many wrong codes").
        for (other, until) in &locked_elsewhere {
            println!(
                "locked:   under the entry's other name {} until {} (refuses this name too; \
                 `radmfa user unlock {}` lifts it)",
                super::printable(other),
                super::audit::fmt_time(*until),
                super::shell_arg(other)
            );
        }
        match profile.phone.as_deref() {
            // Stored before [phone] allowed_country_codes left its country out, say: logins
            // refuse texts and calls to it, and the admin should see why here.
            Some(p) => match crate::delivery::phone::dialable(p, &cfg.delivery.phone) {
                Ok(_) => println!("phone:    {p}"),
                Err(e) => println!(
                    "phone:    {p} (cannot be dialled now: {}; store another with user \
                     set-phone)",
                    e.masked()
                ),
            },
            None => println!("phone:    -"),
        }
        println!("method:   {}", profile.method.as_deref().unwrap_or("-"));
        for line in super::send_limits::lines(cfg, user, &sends) {
            println!("{line}");
        }
        if let Some(at) = profile.blocked_at {
            let why = super::printable(profile.blocked_reason.as_deref().unwrap_or(""));
            println!("blocked:  since {} ({why})", super::audit::fmt_time(at));
        }
        if let Some(t) = profile.bypass_set(now) {
            let asleep = if t > crate::store::delivery::bypass_latest_end(now) {
                " (ends more than 24 h from now: set while a clock ran ahead; not used, and \
                 the next login that finds it takes it away; --cancel it)"
            } else {
                ""
            };
            println!(
                "bypass:   until {} (once){asleep}",
                super::audit::fmt_time(t)
            );
        }
        for r in &remembered {
            // The station is the NAS's Calling-Station-Id, which a user may choose: no
            // terminal escapes from it reach the admin's screen.
            let station = if r.station.is_empty() {
                "any station".into()
            } else {
                super::printable(&r.station)
            };
            println!(
                "remembered: {} on {} from {station} until {}",
                r.mode,
                super::printable(&r.nas),
                super::audit::fmt_time(r.expires_at)
            );
        }
        for p in &app_passwords {
            println!(
                "app password: #{} {}, made {}, last used {}",
                p.id,
                super::printable(p.label.as_deref().unwrap_or("(no label)")),
                super::audit::fmt_time(p.created_at),
                p.last_used_at
                    .map_or_else(|| "never".into(), super::audit::fmt_time)
            );
        }
        println!("tokens:");
        for r in &tokens {
            let t = &r.token;
            // An HOTP token has no period (stored as 0): its counter is what a resync or a
            // lost-sync report needs.
            let step = match t.kind {
                TokenKind::Totp => format!("{} s", t.period),
                TokenKind::Hotp => format!("counter {}", t.counter),
            };
            // An inventory token was imported, not enrolled: said, with its make if the
            // vendor's file named it.
            let make: Vec<&str> = [&r.extra.manufacturer, &r.extra.model]
                .into_iter()
                .filter_map(|v| v.as_deref())
                .collect();
            let (origin, make) = match (r.extra.enrolled, make.is_empty()) {
                (true, _) => ("enrolled", String::new()),
                (false, true) => ("imported", String::new()),
                (false, false) => ("imported", format!(" ({})", make.join(" "))),
            };
            println!(
                "  {} {} {} {} digits, {step}, {}, {origin} {}{}",
                super::pad(&super::printable(&t.serial), 16),
                crate::store::columns::kind_str(t.kind),
                t.algorithm.as_str(),
                t.digits,
                match (
                    &r.extra.unreadable_seed,
                    t.enabled,
                    crate::mfa::verify::validity_at(r, now),
                ) {
                    (Some(_), _, _) => "BROKEN (its seed does not open: `radmfa token list`)",
                    (None, false, _) => "disabled",
                    (None, true, Some("expired")) => {
                        "expired (past its valid_until: every code is refused)"
                    }
                    (None, true, Some(_)) => {
                        "not yet valid (before its valid_from: every code is refused)"
                    }
                    (None, true, None) => "enabled",
                },
                super::audit::fmt_time(t.created_at),
                super::printable(&make)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A URI too long for a QR code: the text says, where the code would be, to type the
    /// secret in by hand; it said only "(cannot draw QR code: data too long)" on stderr.
    #[test]
    fn a_uri_no_qr_code_holds_says_to_type_the_secret() {
        let seed = Secret::new(b"12345678901234567890".to_vec());
        let uri = format!("otpauth://totp/{}:a?secret=x", "x".repeat(3000));
        let text = enrollment_text(&uri, &seed, false);
        assert!(
            text.contains("No QR code") && text.contains("by hand"),
            "{text}"
        );
        assert!(text.contains(&format!("URI:    {uri}")), "{text}");
        assert!(text.contains(&format!("Secret: {}", enroll::base32(&seed))));
    }
}
