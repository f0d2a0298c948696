//! `radmfa user app-password add | list | delete | delete-all`. The password is printed once
//! at `add` and stored only as a keyed hash ([`app_password`]); `delete-all` (lost phone) takes effect for
//! the very next request, on every node.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::audit::fmt_time;
use super::users::{admin_audit, write_admin_audit};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::mfa::app_password;
use crate::store::Store;

#[derive(Debug, Subcommand)]
pub enum AppPasswordCommand {
    /// Create an app password for USER and print it (only now).
    Add(AddArgs),
    /// List USER's app passwords (ids, labels, dates; never the passwords).
    List(ListArgs),
    /// Delete one app password by id.
    Delete(DeleteArgs),
    /// Delete all of USER's app passwords (lost phone or laptop).
    DeleteAll(UserOnly),
}

#[derive(Debug, Args)]
pub struct AddArgs {
    #[arg(value_parser = super::user_name)]
    pub user: String,
    /// What it is for, e.g. "mail on old phone" (at most 100 bytes, no control characters:
    /// other admins' terminals show it).
    #[arg(long, value_parser = label)]
    pub label: Option<String>,
    /// Go ahead although the directory ([ldap]) has no such user (yet).
    #[arg(long)]
    pub force: bool,
}

fn label(s: &str) -> Result<String, String> {
    if s.len() > 100 || s.chars().any(char::is_control) {
        return Err(format!(
            "{s:?} is longer than 100 bytes or has control characters"
        ));
    }
    Ok(s.to_string())
}

#[derive(Debug, Args)]
pub struct ListArgs {
    pub user: String,
    /// JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    pub user: String,
    pub id: i64,
}

#[derive(Debug, Args)]
pub struct UserOnly {
    pub user: String,
}

impl AppPasswordCommand {
    pub fn user_mut(&mut self) -> &mut String {
        match self {
            AppPasswordCommand::Add(a) => &mut a.user,
            AppPasswordCommand::List(a) => &mut a.user,
            AppPasswordCommand::Delete(a) => &mut a.user,
            AppPasswordCommand::DeleteAll(a) => &mut a.user,
        }
    }
}

/// Whether `p` is stored in a form from before app passwords were bound to their user
/// (see [`app_password::Form`]).
fn old_form(p: &crate::store::AppPassword) -> bool {
    app_password::form(&p.hash) == app_password::Form::Legacy
}

/// `granted`: the user's directory entry as `add` found it, which a new app password is
/// bound to from the start.
pub async fn run(
    cfg: &Config,
    store: &dyn Store,
    cmd: AppPasswordCommand,
    granted: &super::directory_name::Granted,
) -> anyhow::Result<ExitCode> {
    // The name is already folded (`users::fold_user_name`); folding again would strip a
    // second listed domain (CORP\CORP\bob → bob) that logins keep (corp\bob).
    match cmd {
        AppPasswordCommand::Add(a) => {
            let pw = app_password::generate();
            let hash = app_password::hash_keyed(store.sms_code_key(), &a.user, &pw);
            let id = store
                // Bound to the entry found now: bound at its first login, one issued to a
                // leaver and not yet used passed to the next account given the name (red
                // team). Unbound only where the directory was not asked (--force, no
                // [ldap], unreachable): then its first login binds it.
                .add_app_password(
                    &a.user,
                    a.label.as_deref(),
                    &hash,
                    SystemClock.now(),
                    (granted.dn.as_deref(), granted.entry_id.as_deref()),
                )
                .await?;
            let label = a.label.clone().unwrap_or_default();
            // A password that gets around the second factor does not stay without its audit
            // record; nobody has seen it, so taking it back loses nothing.
            if let Err(e) = write_admin_audit(
                cfg,
                store,
                &a.user,
                "app-password-add",
                Some(format!("id {id} {label}").trim().to_string()),
            )
            .await
            {
                let e = anyhow::Error::new(e).context("writing audit record");
                return Err(match store.delete_app_password(&a.user, id).await {
                    Ok(_) => e.context(format!("app password for {} undone", a.user)),
                    Err(undo) => e.context(format!(
                        "app password {id} was stored for {user} but not shown, and it could \
                         not be removed ({undo}); run `radmfa user app-password delete {quoted} \
                         {id}`",
                        user = a.user,
                        quoted = super::shell_arg(&a.user)
                    )),
                });
            }
            eprintln!(
                "App password {id} for {}. It is shown only now; type it instead of the \
                 password on clients that allow app passwords.",
                a.user
            );
            // Logins check a fraud block before app passwords, as `user bypass` says too; on
            // stderr, as stdout is the password alone (scripts read it).
            // Under any name of the entry: logins check them all.
            let others = crate::pipeline::aliases::entry_names_of(
                &cfg.user_names,
                &a.user,
                &granted.other_names,
            );
            let names = std::iter::once(a.user.clone()).chain(others.into_iter().map(|(_, k)| k));
            for name in names {
                if store.user_profile(&name).await?.blocked_at.is_some() {
                    eprintln!(
                        "note: {} is blocked (a fraud report): every login of {} is refused, \
                         with this app password too, until `radmfa user unblock {}`",
                        super::printable(&name),
                        super::printable(&a.user),
                        super::shell_arg(&name)
                    );
                }
            }
            // Shown once: one that could not be (a closed pipe, a full disk) is one nobody
            // has, taken back as enroll-totp takes back a token whose secret was not shown.
            let shown =
                super::output::write_out(&format!("{}\n", pw.expose_str().unwrap_or_default()));
            if let Err(e) = shown {
                let e = anyhow::Error::new(e).context("showing the new app password");
                let undone = store.delete_app_password(&a.user, id).await;
                let record = format!("id {id}: undone, it could not be shown");
                let recorded =
                    write_admin_audit(cfg, store, &a.user, "app-password-delete", Some(record))
                        .await;
                return Err(match (undone, recorded) {
                    (Ok(_), Ok(())) => e.context(format!("app password for {} undone", a.user)),
                    (Ok(_), Err(r)) => e.context(format!(
                        "app password for {} undone; its record could not be written: {r}",
                        a.user
                    )),
                    (Err(undo), _) => e.context(format!(
                        "app password {id} was stored for {user} but not shown, and it could \
                         not be removed ({undo}); run `radmfa user app-password delete {quoted} \
                         {id}`",
                        user = a.user,
                        quoted = super::shell_arg(&a.user)
                    )),
                });
            }
            Ok(ExitCode::SUCCESS)
        }
        AppPasswordCommand::List(a) => {
            let list = store.app_passwords(&a.user).await?;
            // An empty list under a name the store knows nothing of is most often a
            // mistyped one: said, as `delete-all` says it, not an empty table and success.
            let now = SystemClock.now();
            if list.is_empty() && !super::users::has_state(store, &a.user, now).await? {
                eprintln!(
                    "{}: no app passwords, nor anything else, under this name; check the \
                     spelling",
                    super::printable(&a.user)
                );
                return Ok(ExitCode::from(1));
            }
            if a.json {
                let rows: Vec<_> = list
                    .iter()
                    .map(|p| {
                        serde_json::json!({
                            "id": p.id, "label": p.label, "created_at": p.created_at,
                            "last_used_at": p.last_used_at, "old_form": old_form(p),
                        })
                    })
                    .collect();
                println!(
                    "{}",
                    super::json_printable(serde_json::to_string_pretty(&rows)?)
                );
            } else {
                println!("{:>5}  {:<20}  {:<20}  LABEL", "ID", "CREATED", "LAST USED");
                for p in list {
                    println!(
                        "{:>5}  {:<20}  {:<20}  {}{}",
                        p.id,
                        fmt_time(p.created_at),
                        p.last_used_at
                            .map(fmt_time)
                            .unwrap_or_else(|| "never".into()),
                        super::printable(p.label.as_deref().unwrap_or_default()),
                        if old_form(&p) {
                            "  (old form: refused unless [store] legacy_app_passwords; \
                             re-issue it)"
                        } else {
                            ""
                        }
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        AppPasswordCommand::Delete(a) => {
            let gone = store.delete_app_password(&a.user, a.id).await?;
            if !gone {
                eprintln!(
                    "{}: no app password with id {}",
                    super::printable(&a.user),
                    a.id
                );
                return Ok(ExitCode::from(1));
            }
            admin_audit(
                cfg,
                store,
                &a.user,
                "app-password-delete",
                Some(format!("id {}", a.id)),
            )
            .await?;
            println!(
                "{}: app password {} deleted",
                super::printable(&a.user),
                a.id
            );
            Ok(ExitCode::SUCCESS)
        }
        AppPasswordCommand::DeleteAll(a) => {
            // The lost-laptop revocation is of the person: the other names of their
            // directory entry (a second uid) may hold app passwords too, each checked under
            // the name it was made for. Revoked under one name, the other's kept working.
            let others = match super::directory_name::other_names(cfg, &a.user).await {
                Ok(names) => names,
                Err(e) => {
                    eprintln!(
                        "warning: {}: the directory could not be asked for the entry's \
                         other names ({e}); app passwords made under one of them, if any, \
                         are not deleted: run this again once it answers",
                        super::printable(&a.user)
                    );
                    Vec::new()
                }
            };
            let mut total = 0;
            let names = std::iter::once((a.user.clone(), a.user.clone())).chain(others);
            for (i, (shown, key)) in names.enumerate() {
                let n = store.delete_app_passwords(&key).await?;
                if n == 0 {
                    continue;
                }
                total += n;
                let why = match i {
                    0 => format!("{n} deleted"),
                    _ => format!(
                        "{n} deleted with those of {} (another name of its directory entry)",
                        a.user
                    ),
                };
                admin_audit(cfg, store, &key, "app-password-delete-all", Some(why)).await?;
                let whose = match i {
                    0 => String::new(),
                    _ => " (another name of this directory entry)".to_string(),
                };
                println!(
                    "{}{whose}: {n} app password(s) deleted",
                    super::printable(&shown)
                );
            }
            // The lost-laptop revocation: on a mistyped name, "0 deleted" and success would
            // let a runbook report done while the real user's app passwords still work.
            if total == 0 {
                eprintln!(
                    "{}: no app passwords under this name; check the spelling",
                    super::printable(&a.user)
                );
                return Ok(ExitCode::from(1));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
