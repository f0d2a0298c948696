//! `radmfa user set-phone | set-method | unblock`: the per-user settings of the out-of-band
//! factors. Each change is audited.

use std::process::ExitCode;

use anyhow::bail;
use clap::Args;

use super::users::admin_audit;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::delivery::phone::{dialable, mask};
use crate::mfa::method::Method;
use crate::store::Store;

#[derive(Debug, Args)]
pub struct SetPhoneArgs {
    #[arg(value_parser = super::user_name)]
    pub user: String,
    /// E.164 (+15550100123), or a national number when [phone] default_country_code is set;
    /// "none" removes the stored number (the directory's mobile or telephoneNumber is used
    /// then only where [phone] sources lists it; by default the user has no number).
    pub phone: String,
    /// Go ahead although the directory ([ldap]) has no such user (yet).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct SetMethodArgs {
    #[arg(value_parser = super::user_name)]
    pub user: String,
    /// totp, sms or voice; "none" removes the preference.
    pub method: String,
    /// Go ahead although the directory ([ldap]) has no such user (yet).
    #[arg(long)]
    pub force: bool,
}

pub async fn set_phone(
    cfg: &Config,
    store: &dyn Store,
    a: SetPhoneArgs,
) -> anyhow::Result<ExitCode> {
    let e164 = if a.phone.eq_ignore_ascii_case("none") {
        None
    } else {
        match dialable(&a.phone, &cfg.delivery.phone) {
            Ok(p) => Some(p),
            Err(e) => bail!("phone number {e}"),
        }
    };
    // "none" with no number stored: what hangs on the phone (remembered logins, open
    // prompts, calls) is still taken away: the number may come from the directory, or this
    // is the retry an earlier run's failure asked for. With nothing at all to take, it is
    // said (exit 1) and not audited: a mistyped name is not reported as a lost phone dealt
    // with.
    let nothing_stored = e164.is_none() && store.user_profile(&a.user).await?.phone.is_none();
    if !nothing_stored {
        store.set_phone(&a.user, e164.as_deref()).await?;
    }
    // The number is changed from here on: whatever follows fails, the change is audited.
    let forgot = forget_logins(store, &a.user).await;
    if nothing_stored && matches!(&forgot, Ok((note, calls)) if note.is_empty() && calls.is_empty())
    {
        eprintln!(
            "{}: no phone number stored here, and no remembered login, open prompt or call to \
             end; nothing changed (check the spelling; a number from the directory, where \
             [phone] sources lists it, is changed there)",
            super::printable(&a.user)
        );
        return Ok(ExitCode::from(1));
    }
    // The audit record masks the number; the admin who typed it sees it whole.
    let (audited, said) = match &e164 {
        None if nothing_stored => (
            "no stored number".to_string(),
            "no stored phone number".to_string(),
        ),
        None => (
            "removed".to_string(),
            "stored phone number removed".to_string(),
        ),
        Some(p) => (mask(p), format!("phone set to {p}")),
    };
    let note = match &forgot {
        Ok((note, _)) => note.clone(),
        Err(_) => "; forgetting the remembered logins or closing open prompts failed".to_string(),
    };
    let recorded = admin_audit(
        cfg,
        store,
        &a.user,
        "set-phone",
        Some(format!("{audited}{note}")),
    )
    .await;
    let forgot = match forgot {
        Ok((note, calls)) => {
            // After the record: a slow provider, or an admin's Ctrl-C while it answers,
            // must not leave the change unaudited. And whether or not it was written: the
            // calls are cancelled already, and running the command again would not find
            // them to hang up.
            let hung_up = hang_up(cfg, &calls).await;
            recorded?;
            format!("{note}{hung_up}")
        }
        Err(e) => {
            return Err(e.context(format!(
                "{said} for {}, but its remembered logins could not be forgotten or its open \
                 prompts closed{}; run this command again",
                a.user,
                super::users::unaudited_note(&recorded)
            )))
        }
    };
    println!("{}: {said}{forgot}", super::printable(&a.user));
    // Kept, and audited, but never dialled: said, as "phone set" alone promised texts.
    if e164.is_some()
        && !cfg
            .delivery
            .phone
            .sources
            .contains(&crate::config::delivery::PhoneSource::Store)
    {
        eprintln!(
            "warning: [phone] sources does not list \"store\": texts and calls do not use \
             numbers stored here; add \"store\" to it"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Asks the provider to hang up the calls just cancelled (a lost phone must stop ringing for
/// a login that can no longer be approved on it); a note for the command's output. A
/// provider that does not answer changes nothing the command did: the calls are failed
/// already, and a # pressed on one approves nothing.
pub(super) async fn hang_up(cfg: &Config, calls: &[String]) -> String {
    if calls.is_empty() {
        return String::new();
    }
    let Some(voice) = crate::delivery::Delivery::from_config(&cfg.delivery).voice else {
        return String::new();
    };
    // At once, not one after another: each may take the provider's whole timeout.
    let ended = futures_util::future::join_all(calls.iter().map(|sid| voice.end_call(sid))).await;
    let failed: Vec<String> = ended
        .into_iter()
        // The provider's words: no terminal escapes from them reach the admin's screen.
        .filter_map(|r| {
            r.err()
                .map(|e| super::printable(&e.to_string()).into_owned())
        })
        .collect();
    match failed.first() {
        None => format!("; {} call(s) hung up", calls.len()),
        Some(e) => format!(
            "; {} of {} call(s) could not be hung up: {e}",
            failed.len(),
            calls.len()
        ),
    }
}

/// A number is changed most often because the old phone was lost, stolen or given away: a
/// login remembered after a code sent to it must not outlive it (as with a token taken away),
/// and a prompt opened before must not resend a code to it (or switch to a call to it).
/// What was done, for the record and the output, and the cancelled calls to hang up.
async fn forget_logins(store: &dyn Store, user: &str) -> anyhow::Result<(String, Vec<String>)> {
    let n = store.forget_logins(user, SystemClock.now()).await?;
    let closed = store.close_challenges(user).await?;
    // A login held while the old phone rings (voice_mode = "hold") has no prompt to close:
    // its call is failed, so a # pressed on the lost phone approves nothing.
    let cancelled = store
        .cancel_oob(
            user,
            None,
            &format!(
                "{}the phone number was changed",
                crate::store::OOB_CANCELLED
            ),
        )
        .await?;
    let mut note = String::new();
    if n > 0 {
        note.push_str(&format!("; {n} remembered login(s) forgotten"));
    }
    if closed > 0 {
        note.push_str(&format!("; {closed} open prompt(s) closed"));
    }
    if cancelled.count > 0 {
        note.push_str(&format!(
            "; {} pending SMS code(s) or call(s) cancelled",
            cancelled.count
        ));
    }
    Ok((note, cancelled.calls))
}

pub async fn set_method(
    cfg: &Config,
    store: &dyn Store,
    a: SetMethodArgs,
) -> anyhow::Result<ExitCode> {
    let method = if a.method.eq_ignore_ascii_case("none") {
        None
    } else {
        match Method::parse(&a.method) {
            Some(m) => Some(m.as_str()),
            None => bail!("method {:?}: use totp, sms, voice or none", a.method),
        }
    };
    if method.is_none() && store.user_profile(&a.user).await?.method.is_none() {
        eprintln!(
            "{}: no default method stored; nothing changed (check the spelling)",
            super::printable(&a.user)
        );
        return Ok(ExitCode::from(1));
    }
    store.set_method(&a.user, method).await?;
    admin_audit(
        cfg,
        store,
        &a.user,
        "set-method",
        Some(method.unwrap_or("none").into()),
    )
    .await?;
    println!(
        "{}: default method {}",
        super::printable(&a.user),
        method.unwrap_or("none")
    );
    // Stored either way (the section may come with the next reload, the token tomorrow),
    // but a setting that changes nothing yet is said: logins fall back meanwhile.
    let unusable = match method {
        Some("sms") if cfg.delivery.sms.is_none() => {
            Some("this config has no [sms] section".to_string())
        }
        Some("voice") if cfg.delivery.voice.is_none() => {
            Some("this config has no [voice] section".to_string())
        }
        Some("totp") if store.tokens_for_user(&a.user).await?.is_empty() => Some(format!(
            "{} holds no token (user enroll-totp, token assign)",
            super::printable(&a.user)
        )),
        // A number as logins find it ([phone] sources): a bulk script from an export left
        // users without one at "default method sms", and nothing said so.
        Some("sms" | "voice") => match number_for(cfg, store, &a.user).await? {
            Ok(Some(_)) => None,
            Ok(None) => Some(format!(
                "{} has no number texts or calls could use (user set-phone; `config check \
                 --connect --user {}` says why)",
                super::printable(&a.user),
                super::printable(&a.user)
            )),
            Err(why) => {
                // Not known to be missing: no "until then" for it.
                eprintln!(
                    "note: {}'s number was not checked: the directory did not answer ({why})",
                    super::printable(&a.user)
                );
                None
            }
        },
        _ => None,
    };
    if let Some(why) = unusable {
        eprintln!(
            "note: {why}: until then logins use the user's other methods, as if none were set"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The number logins would text or call for `user`: the first of `[phone] sources` that
/// holds a dialable one. The directory is asked only where the sources name it; the inner
/// error says why it could not be (then the number is unknown, not missing).
async fn number_for(
    cfg: &Config,
    store: &dyn Store,
    user: &str,
) -> anyhow::Result<Result<Option<String>, String>> {
    use crate::auth::PrimaryAuth;
    use crate::config::delivery::PhoneSource;
    use crate::delivery::phone::phone_from;
    let profile = store.user_profile(user).await?;
    let phone = &cfg.delivery.phone;
    let none = crate::auth::UserInfo::default();
    let info = match &cfg.ldap {
        Some(settings) if phone.sources.iter().any(|s| *s != PhoneSource::Store) => {
            let looked_up = match crate::auth::LdapAuth::new(settings.clone()) {
                Ok(ldap) => ldap.lookup(user).await,
                Err(e) => Err(e),
            };
            match looked_up {
                Ok(info) => info.unwrap_or_default(),
                // A stored number, listed first, needs no directory.
                Err(_) if phone_from(phone, &profile, &none).is_some() => none,
                Err(e) => return Ok(Err(e.to_string())),
            }
        }
        _ => none,
    };
    Ok(Ok(phone_from(phone, &profile, &info).map(|(_, n)| n)))
}

pub async fn unblock(cfg: &Config, store: &dyn Store, user: &str) -> anyhow::Result<ExitCode> {
    let was = store.unblock_user(user).await?;
    let note = (!was).then(|| "was not blocked".to_string());
    admin_audit(cfg, store, user, "unblock", note).await?;
    println!(
        "{user}: {}",
        if was { "unblocked" } else { "was not blocked" }
    );
    Ok(ExitCode::SUCCESS)
}
