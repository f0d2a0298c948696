//! `radmfa token …`: the token inventory — list, show, assign to a user or return to stock,
//! disable, enable, delete, resynchronise, and import (`token_import.rs`). Every change is
//! audited with the token's serial.

use std::process::ExitCode;

use anyhow::bail;
use clap::{Args, Subcommand};

use crate::app::{with_command_store, with_existing_store, with_store_as_it_is};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::mfa::{hotp, otp};
use crate::store::{AuditRecord, CounterUse, Store, TokenKind, TokenRecord};

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// List tokens: serial, type, owner, state.
    List(super::token_list::ListArgs),
    /// Show one token's parameters and state (never its secret).
    Show(ShowArgs),
    /// Give a token to USER (a user may hold several tokens). A token another user holds,
    /// a disabled or expired one, or USER's directory entry holding tokens under another of
    /// its names, needs --force; a seed enrolled for someone's authenticator app is never
    /// moved.
    Assign(AssignArgs),
    /// Take a hardware or imported token from its user and return it to stock (a seed
    /// enrolled for an app is deleted instead: `token delete --force`).
    Unassign(SerialArg),
    /// Stop a token from verifying (lost, broken) without forgetting it.
    Disable(SerialArg),
    /// Let a disabled token verify again.
    Enable(SerialArg),
    /// Remove a token and its secret for good (one someone holds, or an HOTP token that
    /// has used codes: with --force).
    Delete(DeleteArgs),
    /// Bring a token back in step with two consecutive codes from it (HOTP: counter; TOTP:
    /// clock drift). Searches [hotp] resync_window counters or time steps.
    Resync(ResyncArgs),
    /// Import tokens from a CSV or PSKC (RFC 6030) file.
    Import(super::token_import::ImportArgs),
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    pub serial: String,
    /// JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SerialArg {
    pub serial: String,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    pub serial: String,
    /// Delete it although a user holds it (their second factor goes with it), or although
    /// it is an HOTP token that has used codes (imported again from the vendor's file, it
    /// would take them again).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct AssignArgs {
    pub serial: String,
    pub user: String,
    /// Take the token from the user who has it now (needed when it has an owner), assign
    /// a disabled or expired one, or assign although another name of USER's directory
    /// entry holds tokens (which keep working beside it).
    #[arg(long)]
    pub force: bool,
    /// Assign although the directory ([ldap]) has no such user (yet). Not --force, which
    /// already means taking the token from its holder.
    #[arg(long)]
    pub not_in_directory: bool,
}

#[derive(Debug, Args)]
pub struct ResyncArgs {
    pub serial: String,
    /// A code from the token.
    pub code1: String,
    /// The token's next code (press the button again, or wait for the next time step).
    pub code2: String,
    /// A TOTP token whose clock ran ahead and was put right: take codes from before its
    /// last used one. Codes it showed while ahead work again once their time comes.
    #[arg(long)]
    pub clock_went_back: bool,
    /// A TOTP token whose clock is more than 20 minutes slow: take codes that old. Without
    /// it such codes are refused, as they could be codes someone saw on its display long
    /// ago, and a drift set to them would let the codes after them in.
    #[arg(long)]
    pub clock_behind: bool,
}

use crate::mfa::otp::SLOW_CLOCK_LIMIT_SECS;

pub async fn run(cfg: &Config, cmd: TokenCommand) -> anyhow::Result<ExitCode> {
    // Only an import may be an installation's first command (hardware tokens before the
    // first start); a dry run changes nothing, and the others act on tokens already there.
    let adds = matches!(&cmd, TokenCommand::Import(a) if !a.dry_run);
    // Checking the vendor's file is a first step too; no store is made for it.
    let first_dry_run = match &cmd {
        TokenCommand::Import(a) if a.dry_run => !crate::app::store_exists(&cfg.store).await?,
        _ => false,
    };
    if first_dry_run {
        if let TokenCommand::Import(a) = cmd {
            return super::token_import::run(cfg, None, a).await;
        }
    }
    // A look (and a dry run's check against the stored tokens) does not migrate a store
    // behind this release's schema (see `app::with_store_as_it_is`).
    let only_reads = match &cmd {
        TokenCommand::List(_) | TokenCommand::Show(_) => true,
        TokenCommand::Import(a) => a.dry_run,
        _ => false,
    };
    if only_reads {
        return with_store_as_it_is(&cfg.store, async |store| run_on(cfg, store, cmd).await).await;
    }
    if !adds {
        return with_existing_store(&cfg.store, async |store| run_on(cfg, store, cmd).await).await;
    }
    with_command_store(&cfg.store, async |store| run_on(cfg, store, cmd).await).await
}

async fn run_on(cfg: &Config, store: &dyn Store, cmd: TokenCommand) -> anyhow::Result<ExitCode> {
    let (serial, action, owner, force) = match cmd {
        TokenCommand::List(a) => return super::token_list::list(cfg, store, a).await,
        TokenCommand::Show(a) => return show(store, &a.serial, a.json).await,
        TokenCommand::Resync(a) => return resync(cfg, store, a).await,
        TokenCommand::Import(a) => return super::token_import::run(cfg, Some(store), a).await,
        TokenCommand::Assign(a) => {
            let user = cfg.user_names.key(&a.user);
            if user.is_empty() || user.len() > 253 || user.chars().any(char::is_control) {
                bail!(
                    "user name {:?} is empty, too long or has control characters",
                    a.user
                );
            }
            let Some(super::directory_name::Granted { other_names, .. }) =
                super::directory_name::granted_entry(
                    cfg,
                    &user,
                    "--not-in-directory",
                    a.not_in_directory,
                )
                .await
            else {
                return Ok(ExitCode::from(1));
            };
            // As `user enroll-totp` refuses: a hardware token handed out under asmith for
            // the lost phone enrolled under alice, the same entry, left the phone's codes
            // passing beside it.
            let others =
                crate::pipeline::aliases::entry_names_of(&cfg.user_names, &user, &other_names);
            if let Some((other, serials)) =
                super::users::tokens_under_another_name(store, &others, Some(&a.serial)).await?
            {
                let name = super::printable(&user);
                let quoted = super::shell_arg(&other);
                // --force also takes a token from its holder: given for that, it must not
                // pass this in silence.
                if a.force {
                    eprintln!(
                        "warning: {name}: the directory entry is also named {other}, which \
                         holds token(s) {serials}; they keep working beside this one \
                         (`radmfa user reset {quoted}` ends them)"
                    );
                } else {
                    eprintln!(
                        "{name}: the directory entry is also named {other}, which holds token(s) \
                         {serials}; logins under either name pass, so those would keep working \
                         beside this one. Nothing assigned. Run `radmfa user reset {quoted}` \
                         first (a token for a lost phone), or add --force to keep both"
                    );
                    return Ok(ExitCode::from(1));
                }
            }
            (a.serial, Action::Assign, Some(user), a.force)
        }
        TokenCommand::Unassign(a) => (a.serial, Action::Unassign, None, false),
        TokenCommand::Disable(a) => (a.serial, Action::Disable, None, false),
        TokenCommand::Enable(a) => (a.serial, Action::Enable, None, false),
        TokenCommand::Delete(a) => (a.serial, Action::Delete, None, a.force),
    };
    let Some(before) = store.token_record(&serial).await? else {
        eprintln!("{serial}: no such token");
        return Ok(ExitCode::from(1));
    };
    if let Some(refusal) = refuse_move(&before, &action, owner.as_deref(), force) {
        eprintln!("{serial}: {refusal}");
        return Ok(ExitCode::from(1));
    }
    // A holder's logins fail on a seed that does not open: giving one out or turning one
    // on helps nobody. Unassign, disable and delete stay open, to clear it up.
    if let (Some(why), Action::Assign | Action::Enable) = (&before.extra.unreadable_seed, &action) {
        eprintln!(
            "{serial}: its seed does not open ({}); nothing done. {}",
            super::printable(why),
            broken_repair(&before)
        );
        return Ok(ExitCode::from(1));
    }
    // Nothing to do is said (exit 1, as the docs' convention has it), not audited as a
    // change that was never made: a stock token "returned to stock" under user "", say.
    let holder = before.token.user.as_deref();
    let unchanged = match action {
        Action::Unassign if holder.is_none() => Some("already in stock".to_string()),
        Action::Assign if holder.is_some() && holder == owner.as_deref() => Some(format!(
            "already held by {}",
            super::printable(holder.unwrap_or_default())
        )),
        Action::Disable if !before.token.enabled => Some("already disabled".into()),
        Action::Enable if before.token.enabled => Some("already enabled".into()),
        _ => None,
    };
    if let Some(why) = unchanged {
        eprintln!("{serial}: {why}; nothing done");
        return Ok(ExitCode::from(1));
    }
    if let (Action::Assign, false) = (&action, force) {
        if let Some(why) = refuse_unusable(&before, SystemClock.now()) {
            eprintln!("{serial}: {why}");
            return Ok(ExitCode::from(1));
        }
    }
    let done = match action {
        Action::Assign => {
            store
                .assign_token(&serial, holder, owner.as_deref())
                .await?
        }
        Action::Unassign => store.assign_token(&serial, holder, None).await?,
        Action::Disable => store.set_token_enabled(&serial, false).await?,
        Action::Enable => store.set_token_enabled(&serial, true).await?,
        Action::Delete => store.delete_token(&serial).await?,
    };
    if !done {
        // Gone, or (assign/unassign) moved by someone else since it was checked: nothing
        // was changed, and the check must be made again on what is there now.
        match store.token_record(&serial).await? {
            Some(now) if matches!(action, Action::Assign | Action::Unassign) => eprintln!(
                "{serial}: changed meanwhile (now {}); nothing done, run the command again",
                now.token
                    .user
                    .as_deref()
                    .map_or("in stock".into(), |u| format!(
                        "held by {}",
                        super::printable(u)
                    ))
            ),
            _ => eprintln!("{serial}: no such token"),
        }
        return Ok(ExitCode::from(1));
    }
    // Audited under the user the change concerns: the new owner, else the previous one.
    let previous = before.token.user.clone();
    let who = owner.clone().or(previous.clone()).unwrap_or_default();
    let (result, mut what) = match action {
        Action::Assign => ("assign", format!("assigned to {who}")),
        Action::Unassign => ("unassign", "returned to stock".into()),
        Action::Disable => ("disable", "disabled".into()),
        Action::Enable => ("enable", "enabled".into()),
        Action::Delete => ("delete-token", "deleted".into()),
    };
    // A token taken from its user (often: reported lost or stolen) must not stay
    // remembered as that user's second factor, as with `user reset`.
    let taken_from = match action {
        Action::Enable => None,
        Action::Assign if previous == owner => None,
        _ => previous.as_deref(),
    };
    // The token change is made: if forgetting fails, it is still audited, then reported.
    let forget_failed = match taken_from {
        Some(old) => forget_previous_owner(store, old, &mut what)
            .await
            .map(|e| (old.to_string(), e)),
        None => None,
    };
    let reason = match (&action, &previous) {
        (Action::Assign, Some(old)) if Some(old) != owner.as_ref() => {
            format!("token {serial} {what} (was {old}'s)")
        }
        _ => format!("token {serial} {what}"),
    };
    let mut recorded = audit(cfg, store, &who, result, &serial, Some(reason)).await;
    // Taken from someone (--force): their own history (`audit --user`) says so too.
    if let (Action::Assign, Some(old), true) =
        (&action, &previous, previous.as_ref() != owner.as_ref())
    {
        let lost = format!("token {serial} taken by token assign --force: {what}");
        if let Err(e) = audit(cfg, store, old, "unassign", &serial, Some(lost)).await {
            recorded = recorded.and(Err(e));
        }
    }
    if let Some((old, e)) = forget_failed {
        return Err(anyhow::Error::new(e).context(format!(
            "{serial}: {what}{}; run `radmfa user forget {}`",
            super::users::unaudited_note(&recorded),
            super::shell_arg(&old)
        )));
    }
    recorded?;
    println!("{serial}: {what}");
    if let (Action::Delete, Some(used)) = (&action, used_codes_warning(&before)) {
        // Deleted with --force: the counter it had is worth keeping where the admin sees it.
        eprintln!("note: {serial} was {used}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Why moving `before` to `owner` (assign) or to stock (unassign) is refused, if it is.
/// A seed enrolled for an app lives on its user's phone: given to someone else, that
/// phone's codes would log them in, so it is only ever deleted. A token someone holds goes
/// to another user only with --force: a mistyped serial must not silently take it away.
fn refuse_move(
    before: &TokenRecord,
    action: &Action,
    owner: Option<&str>,
    force: bool,
) -> Option<String> {
    let previous = before.token.user.as_deref();
    // A seed, once deleted, is back only from the vendor's file (or a new enrollment): a
    // mistyped serial, one digit off a colleague's, must not silently take theirs.
    if let (Action::Delete, false) = (action, force) {
        let held = previous.map(|h| format!("held by {}", super::printable(h)));
        return match (held, used_codes_warning(before)) {
            (Some(held), None) => Some(format!(
                "{held}; add --force to delete it and its secret for good (`radmfa token \
                 disable` stops it reversibly)"
            )),
            (held, Some(used)) => Some(format!(
                "{}{used}; `radmfa token disable` takes it out of use and keeps its counter. \
                 Add --force to delete it and its secret anyway",
                held.map(|h| h + "; ").unwrap_or_default()
            )),
            (None, None) => None,
        };
    }
    let moves = match action {
        Action::Assign => previous.is_some_and(|p| Some(p) != owner),
        Action::Unassign => previous.is_some(),
        _ => false,
    };
    // A stock app seed (returned to stock before this rule) goes to nobody either.
    let stock_app_seed =
        before.extra.enrolled && matches!(action, Action::Assign) && previous.is_none();
    if !moves && !stock_app_seed {
        return None;
    }
    let old = super::printable(previous.unwrap_or("(stock)"));
    if before.extra.enrolled {
        return Some(format!(
            "an authenticator-app seed enrolled for {old}; it exists on that phone, so it \
             is never given to another user or returned to stock. Use `radmfa token delete \
             --force` (or `radmfa user reset`) and enroll the new user afresh"
        ));
    }
    match action {
        Action::Assign if !force => Some(format!(
            "held by {old}; add --force to take it from them and give it to {}",
            super::printable(owner.unwrap_or_default())
        )),
        _ => None,
    }
}

/// What deleting `before` would lose, if it has used codes: an HOTP token's counter. Its
/// seed is back only from the vendor's file, whose counter (0, often) is behind it, and a
/// re-import starts there again, so every code it used would log in once more; `import
/// --replace` keeps the counter for the same seed, but a deleted token has none to keep.
/// A TOTP token's used codes go stale with the clock within `[totp] window` steps: nothing
/// to warn of. `None`: nothing used (or nothing known to be).
fn used_codes_warning(before: &TokenRecord) -> Option<String> {
    let t = &before.token;
    (t.kind == TokenKind::Hotp && t.counter > 0).then(|| {
        format!(
            "an HOTP token at counter {n}: deleted and imported again from the vendor's file, \
             it would start at the file's counter, and the codes it has used would log in \
             again (should it come back, import it with a `counter` column of {n})",
            n = t.counter
        )
    })
}

/// Why `before`, a token that cannot pass a code now, is not handed out without --force:
/// its new holder's logins would be refused ("Your second factor has expired", "is
/// disabled") with nothing said to the admin who assigned it. A token not valid yet is
/// given out (handed out ahead of its start date, say), as is one its holder already has.
fn refuse_unusable(before: &TokenRecord, now: i64) -> Option<String> {
    if !before.token.enabled {
        return Some(format!(
            "disabled (reported lost, say); nothing done. `radmfa token enable {}` first, \
             or add --force to assign it disabled",
            super::shell_arg(&before.token.serial)
        ));
    }
    match (
        crate::mfa::verify::validity_at(before, now),
        before.extra.valid_until,
    ) {
        (Some("expired"), Some(until)) => Some(format!(
            "expired (valid until {}): every code of it is refused; nothing done. Add --force \
             to assign it anyway, or import it again with new dates (`radmfa token import \
             --replace`)",
            crate::clock::fmt_time(until)
        )),
        _ => None,
    }
}

enum Action {
    Assign,
    Unassign,
    Disable,
    Enable,
    Delete,
}

/// A token taken from `old` no longer counts for their remembered logins: forgets them and
/// says so in `what` (the audit reason). An error is given back for the caller to report
/// once the change is audited.
pub(super) async fn forget_previous_owner(
    store: &dyn Store,
    old: &str,
    what: &mut String,
) -> Option<crate::store::StoreError> {
    match store.forget_logins(old, SystemClock.now()).await {
        Ok(0) => None,
        Ok(n) => {
            what.push_str(&format!("; {n} remembered login(s) of {old} forgotten"));
            None
        }
        Err(e) => {
            what.push_str(&format!(
                "; forgetting the remembered logins of {old} failed"
            ));
            Some(e)
        }
    }
}

pub(crate) async fn audit(
    cfg: &Config,
    store: &dyn Store,
    user: &str,
    result: &str,
    serial: &str,
    reason: Option<String>,
) -> anyhow::Result<()> {
    let rec = token_record(cfg, user, result, serial, reason);
    let what = if serial.is_empty() {
        result.to_string()
    } else {
        format!("{result} of token {serial}")
    };
    super::users::record_made_change(store, &rec, &what).await
}

/// The audit record of an admin's `result` on token `serial` (none if empty) for `user`.
pub(crate) fn token_record(
    cfg: &Config,
    user: &str,
    result: &str,
    serial: &str,
    reason: Option<String>,
) -> AuditRecord {
    let mut rec = super::users::admin_record(cfg, user, result, reason);
    rec.token_serial = (!serial.is_empty()).then(|| serial.to_string());
    rec
}

/// How to repair a token whose seed does not open. Not delete and import: a new row starts
/// at the file's HOTP counter, and used codes would log in again.
pub(super) fn broken_repair(r: &TokenRecord) -> String {
    if r.extra.enrolled {
        format!(
            "An app's token: `radmfa token delete {} --force`, then enroll its user again",
            super::shell_arg(&r.token.serial)
        )
    } else {
        "Import the vendor's file again with `radmfa token import --replace` (it keeps the \
         owner and the HOTP counter)"
            .to_string()
    }
}

pub(super) fn kind_str(k: TokenKind) -> &'static str {
    match k {
        TokenKind::Totp => "totp",
        TokenKind::Hotp => "hotp",
    }
}

pub(super) fn to_json(r: &TokenRecord, now: i64) -> serde_json::Value {
    let t = &r.token;
    let x = &r.extra;
    // As a login reads it: a first code older than this waits for nothing (the row keeps it
    // until the token's next code).
    let resync_pending = x
        .resync
        .is_some_and(|(_, at)| now.saturating_sub(at) <= crate::mfa::verify::RESYNC_PENDING_SECS);
    serde_json::json!({
        "serial": t.serial, "type": kind_str(t.kind), "algorithm": t.algorithm.as_str(),
        "digits": t.digits,
        "period": (t.kind == TokenKind::Totp).then_some(t.period),
        "counter": (t.kind == TokenKind::Hotp).then_some(t.counter),
        "user": t.user, "enabled": t.enabled,
        "manufacturer": x.manufacturer, "model": x.model,
        "valid_from": x.valid_from, "valid_until": x.valid_until,
        "drift": (t.kind == TokenKind::Totp).then_some(x.drift),
        "resync_pending": resync_pending,
        "created_at": t.created_at, "last_used_step": t.last_step,
        "seed_unreadable": x.unreadable_seed,
    })
}

async fn show(store: &dyn Store, serial: &str, json: bool) -> anyhow::Result<ExitCode> {
    let Some(r) = store.token_record(serial).await? else {
        eprintln!("{serial}: no such token");
        return Ok(ExitCode::from(1));
    };
    let v = to_json(&r, SystemClock.now());
    if json {
        println!(
            "{}",
            super::json_printable(serde_json::to_string_pretty(&v)?)
        );
        return Ok(ExitCode::SUCCESS);
    }
    let fmt_time = super::audit::fmt_time;
    for (k, val) in v.as_object().expect("object") {
        let shown = match (k.as_str(), val) {
            (_, serde_json::Value::Null) => continue,
            ("valid_from" | "valid_until" | "created_at", serde_json::Value::Number(n)) => {
                fmt_time(n.as_i64().unwrap_or(0))
            }
            // A step count says nothing to an admin asking when the token was last used.
            // The step is the token's own, drift included: by this server's clock its code
            // appeared `drift` steps earlier (or later), as far as the drift is known now.
            ("last_used_step", serde_json::Value::Number(n)) if r.token.kind == TokenKind::Totp => {
                let step = n.as_i64().unwrap_or(0);
                let at = step
                    .saturating_sub(r.extra.drift)
                    .saturating_mul(i64::from(r.token.period));
                format!("{step} (used at about {})", fmt_time(at))
            }
            // From an import file: serial, manufacturer, model, owner.
            (_, serde_json::Value::String(s)) => super::printable(s).into_owned(),
            (_, other) => other.to_string(),
        };
        println!("{:<15} {shown}", format!("{k}:"));
    }
    Ok(ExitCode::SUCCESS)
}

/// A TOTP resync whose codes are not after the token's last used step. Either a login used
/// them (or later ones) meanwhile, or the token's clock ran ahead, was resynchronised there,
/// and has since been put right: then every code it shows is at or before the last used
/// step and refused as used, for as long as it had been ahead. Saying "already used" there
/// sent the admin the wrong way; `--clock-went-back` moves the step back.
///
/// Only for codes of now (a drift within `[totp] window`): old codes, which whoever filmed
/// the token's display could give, would reopen every later code they saw.
async fn behind_last_used(
    store: &dyn Store,
    a: &ResyncArgs,
    id: i64,
    (step, drift, window): (i64, i64, u32),
    period: u32,
) -> anyhow::Result<Result<String, String>> {
    let last = store
        .token_record(&a.serial)
        .await?
        .filter(|r| r.token.id == id)
        .and_then(|r| r.token.last_step);
    let Some(last) = last else {
        return Ok(Err("the token changed meanwhile; try again".to_string()));
    };
    let behind = last - step;
    if drift.unsigned_abs() > u64::from(window) {
        return Ok(Err(format!(
            "these codes are {} step(s) of {period} s {} now and not after its last used \
             code: old codes, or a clock far off; not resynchronised (set the token's clock, \
             then give two codes it shows)",
            drift.unsigned_abs(),
            if drift < 0 { "before" } else { "after" },
        )));
    }
    if behind == 0 {
        return Ok(Err(
            "the second code is the last one the token used (by a login): give the next two"
                .to_string(),
        ));
    }
    if behind <= i64::from(window) {
        // Before the last used step: used or skipped, only the last one is known.
        return Ok(Err(format!(
            "those codes are older than the last one the token used ({behind} step(s) of \
             {period} s later, by a login): give the next two"
        )));
    }
    if !a.clock_went_back {
        return Ok(Err(format!(
            "its last used code is {behind} step(s) of {period} s later than these codes: \
             codes it showed with its clock ahead were used. If its clock has been put \
             right, run again with --clock-went-back (the codes it showed ahead work again \
             once their time comes); if not, these codes were used by a login"
        )));
    }
    Ok(if store.rewind_totp_step(id, last, step, drift).await? {
        Ok(format!(
            "clock drift set to {drift} step(s) of {period} s; its last used step moved back \
             {behind} step(s) (--clock-went-back)"
        ))
    } else {
        Err("the token changed meanwhile (a login used it); try again".to_string())
    })
}

/// The counter of `c1` when the two codes are consecutive and the first was already used
/// (the same resync run twice, codes read off an old note): said as such, not as codes
/// that are not consecutive.
fn used_pair(t: &crate::store::Token, c1: &str, c2: &str, window: u64) -> Option<u64> {
    let start = t.counter.saturating_sub(window);
    let earlier = crate::store::Token {
        counter: start,
        ..t.clone()
    };
    hotp::find_consecutive(&earlier, c1, c2, t.counter - start)
        .map(|second| second - 1)
        .filter(|first| *first < t.counter)
}

/// Why one of `codes` (which, and as typed, spaces and dashes taken out) cannot be a code
/// of a token showing `digits` digits: said before any search, which would only answer
/// "not consecutive codes within 1000 of counter N" and send the admin pressing the button
/// for codes of the length they already typed.
fn unfit_code(digits: u32, codes: [(&str, &str); 2]) -> Option<String> {
    codes.into_iter().find_map(|(which, code)| {
        if code.is_empty() || !code.bytes().all(|b| b.is_ascii_digit()) {
            Some(format!(
                "the {which} code {:?} is not a code (digits only)",
                super::printable(code)
            ))
        } else if code.len() != digits as usize {
            Some(format!(
                "the {which} code has {} digits, but this token shows {digits}",
                code.len()
            ))
        } else {
            None
        }
    })
}

async fn resync(cfg: &Config, store: &dyn Store, a: ResyncArgs) -> anyhow::Result<ExitCode> {
    let Some(r) = store.token_record(&a.serial).await? else {
        eprintln!("{}: no such token", a.serial);
        return Ok(ExitCode::from(1));
    };
    if let Some(why) = &r.extra.unreadable_seed {
        eprintln!(
            "{}: its seed does not open ({}); nothing to resynchronise. {}",
            super::printable(&a.serial),
            super::printable(why),
            broken_repair(&r)
        );
        return Ok(ExitCode::from(1));
    }
    let t = &r.token;
    // Typed as the token shows it ("123 456", "123-456"): no part of the code.
    let (c1, c2) = (otp::plain_code(&a.code1), otp::plain_code(&a.code2));
    let (c1, c2) = (c1.as_ref(), c2.as_ref());
    if let Some(why) = unfit_code(t.digits, [("first", c1), ("second", c2)]) {
        eprintln!("{}: not resynchronised: {why}", t.serial);
        return Ok(ExitCode::from(1));
    }
    let owner = t.user.clone().unwrap_or_default();
    let window = cfg.hotp.resync_window;
    let outcome = match t.kind {
        TokenKind::Hotp => match hotp::find_consecutive(t, c1, c2, window) {
            Some(c)
                if store
                    .advance_hotp_counter(t.id, t.counter, c + 1, None)
                    .await?
                    == CounterUse::Taken =>
            {
                // The counter has moved: that change gets its audit record whatever happens
                // to this tidy-up (a `?` here returned before the record was written).
                let left = match store.set_hotp_resync(t.id, None).await {
                    Ok(()) => String::new(),
                    Err(e) => format!(" (its pending resync could not be cleared: {e})"),
                };
                Ok(format!(
                    "counter moved from {} to {}{left}",
                    t.counter,
                    c + 1
                ))
            }
            Some(_) => Err("the token changed meanwhile (a login used it); try again".to_string()),
            None => Err(match used_pair(t, c1, c2, window) {
                // The counter last used: the same resync run twice, a login with that code.
                Some(first) if first + 1 == t.counter => format!(
                    "the first code is the one the token used last (counter {first}; the next \
                     is {}): press its button for two new codes",
                    t.counter
                ),
                // Before it: maybe skipped (a login further ahead), not necessarily used.
                Some(first) => format!(
                    "the first code is older than the last one the token used (counter \
                     {first}; the last used is {}, the next {}): press its button for two new \
                     codes",
                    t.counter - 1,
                    t.counter
                ),
                None => format!(
                    "the two codes are not consecutive codes within {window} of counter {}",
                    t.counter
                ),
            }),
        },
        TokenKind::Totp => {
            let now = SystemClock.now();
            match otp::find_consecutive_steps(t, c1, c2, now, window as i64) {
                Some(step)
                    if (step - otp::current_step(t, now)) * i64::from(t.period)
                        < -SLOW_CLOCK_LIMIT_SECS
                        && !a.clock_behind =>
                {
                    // The first code's age (`step` is the second's), to the nearest
                    // minute: the second's, rounded down, said 24 min of codes 25 min old.
                    let behind = (otp::current_step(t, now) - (step - 1)) * i64::from(t.period);
                    Err(format!(
                        "these codes are {} min old: the token's clock would be that slow, or \
                         the codes were seen on its display that long ago (filmed, say), and a \
                         drift set to them would let the codes that came after them in. Check \
                         the token's clock; if it is that slow, run again with --clock-behind",
                        (behind + 30) / 60
                    ))
                }
                Some(step) => {
                    let drift = step - otp::current_step(t, now);
                    if store
                        .consume_totp_step_with_drift(t.id, step, drift)
                        .await?
                    {
                        Ok(format!(
                            "clock drift set to {drift} step(s) of {} s",
                            t.period
                        ))
                    } else {
                        let near = (step, drift, cfg.totp.window);
                        behind_last_used(store, &a, t.id, near, t.period).await?
                    }
                }
                None => Err(format!(
                    "the two codes are not consecutive codes within {window} time steps of now"
                )),
            }
        }
    };
    match outcome {
        Ok(what) => {
            audit(cfg, store, &owner, "resync", &t.serial, Some(what.clone())).await?;
            println!("{}: resynchronised; {what}", t.serial);
            // A drifted token's wrong codes are what most often locked its holder: the
            // resync alone leaves the lock, and the helpdesk read "resynchronised" as done.
            if !owner.is_empty() {
                let status = store.user_status(&owner).await?;
                if let Some(until) = status
                    .locked_until
                    .filter(|&until| until > SystemClock.now())
                {
                    println!(
                        "note: {user} is locked until {} (wrong codes, perhaps this token's \
                         drift): `radmfa user unlock {quoted}` lets them in now",
                        super::audit::fmt_time(until),
                        user = super::printable(&owner),
                        quoted = super::shell_arg(&owner)
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(why) => {
            eprintln!("{}: not resynchronised: {why}", t.serial);
            refused_resync(cfg, store, &owner, &t.serial, why).await;
            Ok(ExitCode::from(1))
        }
    }
}

/// The audit record of a `token resync` the token's codes refused: each one tried two codes
/// against the seed, as a login does, so the admin reviewing a token (or a helpdesk account
/// used to guess) finds them. `why` names counters, never the codes. Written after the
/// refusal is said: a failed write is a warning, not another reason the command failed.
async fn refused_resync(cfg: &Config, store: &dyn Store, owner: &str, serial: &str, why: String) {
    let rec = token_record(cfg, owner, "resync-refused", serial, Some(why));
    if let Err(e) = store.append_audit(&rec).await {
        eprintln!("warning: the refusal's audit record could not be written: {e}");
    }
}
