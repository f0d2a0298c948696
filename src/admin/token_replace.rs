//! `token import --replace` over tokens already in the inventory. A file overwrites the
//! token's definition (seed, algorithm, owner if it names one), not what radmfa learned
//! about it since: a token disabled as lost stays disabled, the last TOTP step used stays
//! used, and an HOTP counter re-imported with the same seed does not go back (the codes
//! below it were used, or skipped past) — all that in the store's import transaction. Here:
//! a token given to someone else by the file no longer counts for its previous owner's
//! remembered logins, as with `token assign`, and each replaced token is audited (in the
//! import's transaction).

use std::collections::{BTreeMap, HashMap};

use crate::config::Config;
use crate::import::{ImportedToken, Problem};
use crate::store::{AuditRecord, Store, TokenRecord};

/// A stored token the file replaces.
pub struct Replaced {
    serial: String,
    /// The owner now, after the import.
    owner: Option<String>,
    /// The owner before, when the file gave the token to someone else.
    taken_from: Option<String>,
}

impl Replaced {
    pub fn serial(&self) -> &str {
        &self.serial
    }

    pub fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }
}

/// The stored tokens `ready` replaces.
pub fn replaced(ready: &[ImportedToken], stored: &HashMap<String, TokenRecord>) -> Vec<Replaced> {
    let mut replaced = Vec::new();
    for t in ready {
        let Some(old) = stored.get(&t.token.serial) else {
            continue;
        };
        let (new, old) = (&t.token, &old.token);
        let taken_from = match (&old.user, &new.user) {
            (Some(before), Some(now)) if before != now => Some(before.clone()),
            _ => None,
        };
        replaced.push(Replaced {
            serial: new.serial.clone(),
            owner: new.user.clone().or_else(|| old.user.clone()),
            taken_from,
        });
    }
    replaced
}

/// Takes out of `ready` the replacements `token assign` would refuse, and says why: a seed
/// enrolled for someone's authenticator app is never replaced (the phone's codes would go
/// on logging in whoever the token then belongs to, or the user loses it unasked), and a
/// token someone holds goes to another user only with `force` (a mistyped serial in a map
/// must not silently take someone's token away), as does a disabled or expired one.
pub fn refuse_moves(
    ready: &mut Vec<ImportedToken>,
    stored: &HashMap<String, TokenRecord>,
    force: bool,
    now: i64,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    ready.retain(|t| {
        let Some(old) = stored.get(&t.token.serial) else {
            return true;
        };
        let holder = old.token.user.as_deref();
        let who = |u: Option<&str>| super::printable(u.unwrap_or("(stock)")).into_owned();
        // Escaped as `token list` shows it: a right-to-left override in a serial would
        // reorder the rest of the problem's line.
        let serial = super::printable(&t.token.serial);
        let message = if old.extra.enrolled {
            format!(
                "serial {} is an authenticator-app seed enrolled for {}; an import does not \
                 replace it (delete it first: `radmfa token delete {} --force`)",
                serial,
                who(holder),
                super::shell_arg(&t.token.serial)
            )
        } else {
            match (holder, t.token.user.as_deref()) {
                (Some(h), Some(new)) if h != new && !force => format!(
                    "serial {} is held by {}; the file gives it to {} (add --force to move it)",
                    serial,
                    who(Some(h)),
                    who(Some(new))
                ),
                // A replacement keeps the token disabled, and its dates where the file
                // gives none: its new holder's every login would be refused, with nothing
                // said (`token assign`'s rule).
                (h, Some(new)) if h != Some(new) && !old.token.enabled && !force => format!(
                    "serial {} is disabled (reported lost, say); the file gives it to {}: \
                     `radmfa token enable {}` first, or add --force to give it disabled",
                    serial,
                    who(Some(new)),
                    super::shell_arg(&t.token.serial)
                ),
                (h, Some(new))
                    if h != Some(new)
                        && !force
                        && t.extra.valid_from.is_none()
                        && t.extra.valid_until.is_none()
                        && crate::mfa::verify::validity_at(old, now) == Some("expired") =>
                {
                    format!(
                        "serial {} is expired (valid until {}), and the file gives it to {} \
                         with no new dates: every code of it would be refused. Import it \
                         with new dates (a PSKC file's ExpiryDate), or add --force to give \
                         it anyway",
                        serial,
                        crate::clock::fmt_time(old.extra.valid_until.unwrap_or_default()),
                        who(Some(new))
                    )
                }
                _ => return true,
            }
        };
        problems.push(Problem {
            origin: t.origin.clone(),
            message,
        });
        false
    });
    problems
}

/// A replaced token's new owner as an audit reason names it.
fn printable_owner(owner: &str) -> String {
    if owner.is_empty() {
        "stock".into()
    } else {
        super::printable(owner).into_owned()
    }
}

/// The audit records of the replaced tokens, written in the import's own transaction: each
/// replaced token under its owner (`replace`), and one taken from someone under the previous
/// owner too (`unassign`), who lost it. Written one commit each after the import, 50,000
/// replacements took minutes, and a kill midway left most of them without a record.
pub fn records(cfg: &Config, replaced: &[Replaced], file: &str) -> Vec<AuditRecord> {
    let record = super::tokens::token_record;
    let mut records = Vec::with_capacity(replaced.len());
    for r in replaced {
        let mut what = format!("token {} replaced from {file}", r.serial);
        if let Some(old) = &r.taken_from {
            what.push_str(&format!(" (was {old}'s)"));
        }
        let owner = r.owner.as_deref().unwrap_or_default();
        // Taken from someone: their own history (`audit --user`) says so too.
        if let Some(old) = r.taken_from.as_deref().filter(|old| *old != owner) {
            let lost = format!("{what}, and given to {}", printable_owner(owner));
            records.push(record(cfg, old, "unassign", &r.serial, Some(lost)));
        }
        records.push(record(cfg, owner, "replace", &r.serial, Some(what)));
    }
    records
}

/// After the import: forgets the remembered logins of the previous owners of tokens the
/// file gave to someone else, as `token assign` does, once per owner, with a `forget` record
/// under each whose logins went. After the tokens moved, not before: a login remembered in
/// between would outlast the move. Every owner is tried; the first error is returned.
pub async fn after_import(
    cfg: &Config,
    store: &dyn Store,
    replaced: &[Replaced],
    file: &str,
) -> anyhow::Result<()> {
    let mut taken: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for r in replaced {
        if let Some(old) = r.taken_from.as_deref() {
            taken.entry(old).or_default().push(&r.serial);
        }
    }
    let mut first_error = None;
    for (old, serials) in taken {
        let mut what = String::new();
        let failed = super::tokens::forget_previous_owner(store, old, &mut what).await;
        if let Some(e) = failed {
            first_error.get_or_insert(anyhow::Error::new(e).context(format!(
                "run `radmfa user forget {}`",
                super::shell_arg(old)
            )));
            continue;
        }
        if what.is_empty() {
            continue;
        }
        let shown: Vec<&str> = serials.iter().take(SHOW_SERIALS).copied().collect();
        let more = match serials.len().saturating_sub(SHOW_SERIALS) {
            0 => String::new(),
            n => format!(" and {n} more"),
        };
        let reason = format!(
            "{}: token(s) {}{more} given to someone else by token import --replace from {file}",
            what.trim_start_matches("; "),
            shown.join(", ")
        );
        if let Err(e) = super::users::admin_audit(cfg, store, old, "forget", Some(reason)).await {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Serials a `forget` record names before "and N more".
const SHOW_SERIALS: usize = 20;
