//! Remembered second factors (`remember_second_factor_secs`), the caching rules of the
//! product radmfa replaces. Some NAS boxes ask again minutes after a login: a VPN client
//! reconnecting with the credentials it kept (its code already used), RD Gateway for each
//! new connection or RemoteApp (each one a phone call). On a client with the setting, a
//! second factor that passes is remembered for the user, the client and the request's
//! Calling-Station-Id; until it expires, the same user from the same station needs the
//! password alone (on a second-factor-only client, nothing beyond the gateway's check).
//!
//! What it never skips: the password, a fraud block, a group rule, a second-factor lockout.
//! The period runs from the login in which the second factor passed (from its password
//! check: see [`to_remember`]) and a remembered login does not renew it, so it ends when
//! it says; a setting lowered or turned off by a reload or a restart (or the client taken
//! out) applies to what is already remembered, for good ([`fit_to_clients`]). The rows
//! live in the store, so every node honours them; `radmfa user forget` (`--all`), `user
//! reset` and taking a token from its user clear them. A remembered code (TOTP, HOTP)
//! counts only while the user still holds a token that could pass now: one that expired
//! (PSKC ExpiryDate) ends it as disabling it would ([`holds_a_usable_token`]).
//!
//! Without a Calling-Station-Id a remembered factor would hold for the user from anywhere.
//! That is what RD Gateway needs (it sends none, and it is one gateway in front of its own
//! users), so second-factor-only clients allow it; on every other client a request without
//! one is neither remembered nor spared: a VPN whose NAS sends no station would otherwise
//! let a phished password in from the internet for the rest of the period.

use super::{Fault, RequestContext, Verdict};
use crate::app::AppState;
use crate::auth::UserInfo;
use crate::clock::fmt_time;
use crate::config::ClientConfig;
use crate::mfa::verify::valid_at;
use crate::radius::{ReplyCode, Request};
use crate::store::{RememberedLogin, Store, TokenRecord};

/// Verdict modes that are a second factor passing, and so may be remembered. Never a
/// bypass, an exemption, an app password, a fail-open or a remembered login itself.
const SECOND_FACTORS: &[&str] = &["totp", "hotp", "sms", "voice"];

/// An Accept if this client remembers second factors and this user passed one here from
/// this station, still valid. Call it only once everything it must not skip has passed.
/// `tokens`: the user's tokens as this request read them (disabled ones may be among them).
pub async fn take(
    app: &AppState,
    ctx: &RequestContext,
    req: &Request,
    user: &str,
    info: &UserInfo,
    tokens: &[TokenRecord],
) -> Result<Option<Verdict>, Fault> {
    let Some(period) = ctx.client.factors.remember else {
        return Ok(None);
    };
    let Some(station) = station_of(ctx, req.calling_station_id()) else {
        return Ok(None);
    };
    let now = app.clock.now();
    let Some(r) = app
        .store
        .remembered_login(user, &ctx.client.name, &station, now)
        .await?
    else {
        return Ok(None);
    };
    if r.verified_at > now + crate::clock::FUTURE_SLACK_SECS {
        // Stamped by a clock that ran ahead: its end is as far off as the clock was wrong.
        // The user logs in with a second factor again, which writes a sound row. Forgotten,
        // not only passed over: left, it was used again once the clock caught up with its
        // stamp, for its whole period (a 5-minute one, an hour after it was written).
        let forgotten = app.store.forget_logins(user, now).await?;
        tracing::warn!(
            user,
            verified_at = %fmt_time(r.verified_at),
            now = %fmt_time(now),
            forgotten,
            "a remembered login is stamped ahead of this server's clock: not used, and the \
             user's remembered logins are forgotten; this clock or the one that wrote it is \
             wrong (check NTP)"
        );
        return Ok(None);
    }
    // The row's end was set by the period in force then; a period shortened since (by a
    // reload) applies to it too, so an admin who lowers the setting gets what it says.
    let until = r.expires_at.min(r.verified_at + period.as_secs() as i64);
    if now >= until {
        return Ok(None);
    }
    // A method a reload took off the client since (SMS dropped after an SMS-pumping
    // incident): what passed by it is no longer a second factor this client takes.
    let method = match r.mode.as_str() {
        "totp" | "hotp" => Some(crate::mfa::method::Method::Totp),
        other => crate::mfa::method::Method::parse(other),
    };
    if method.is_some_and(|m| !ctx.client.factors.methods.contains(&m)) {
        tracing::info!(
            user,
            "a remembered {} login not used: the client's methods no longer include it",
            r.mode
        );
        return Ok(None);
    }
    if !holds_a_usable_token(&r.mode, tokens, now) {
        // The login goes on as one without a remembered factor, and is told why its code
        // cannot pass ("Your second factor has expired").
        tracing::info!(
            user,
            "a remembered {} login not used: none of the user's tokens can pass now \
             (expired or not yet valid)",
            r.mode
        );
        return Ok(None);
    }
    // The caller read the lockout before the password check; wrong codes counted since (on
    // another node, or another request of this user's) may have locked the second factor,
    // and a remembered one is no way around that. One read, only when something is
    // remembered.
    if super::second_factor::is_locked(app, user).await? {
        return Ok(None);
    }
    // The station as remembered (and as `user show` lists it), which may differ from the
    // Calling-Station-Id in the record by a port or a MAC's spelling.
    let station = if station.is_empty() {
        "any station".to_string()
    } else {
        format!("station {station}")
    };
    let reason = format!(
        "{} passed in a login begun at {} from {station}; remembered until {}",
        r.mode,
        fmt_time(r.verified_at),
        fmt_time(until)
    );
    Ok(Some(Verdict::accept(
        "remembered",
        Some(reason),
        info.clone(),
    )))
}

/// Whether a login remembered for `mode` still stands on a token of the user's: for a code
/// (TOTP, HOTP), one enabled and within its validity dates at `now`. Disabling, deleting or
/// reassigning a token forgets the rows; a token's expiry is no event that could, so it is
/// checked here, and a user whose only token expired was still let in on the password
/// alone for the rest of the period. SMS and calls reach a phone, which has no such date:
/// they stand (`user set-phone` and a fraud block forget them).
fn holds_a_usable_token(mode: &str, tokens: &[TokenRecord], now: i64) -> bool {
    !matches!(mode, "totp" | "hotp") || tokens.iter().any(|r| r.token.enabled && valid_at(r, now))
}

/// After the verdict: a second factor that passed on a client that remembers them is to be
/// remembered (a newer one replaces an older one for the same station). Only what to
/// write: it is written once the Accept is certain — recorded and on disk — so a login the
/// NAS was refused (its audit record or commit failed) is never remembered.
pub fn to_remember(
    app: &AppState,
    ctx: &RequestContext,
    req: &Request,
    user: &str,
    v: &Verdict,
) -> Option<RememberedLogin> {
    let period = ctx.client.factors.remember?;
    if v.reply.code != ReplyCode::Accept || !SECOND_FACTORS.contains(&v.mode) {
        return None;
    }
    // The station the password came from: on a later round, the first round's, which the
    // prompt carries (`started_at` is set only there); else this request's. The code sent
    // from another station than the password, or from a station when the password came
    // from none, is remembered for neither: the code round's alone bound the period to a
    // device that never typed the password.
    let here = req.calling_station_id().filter(|s| !s.trim().is_empty());
    let first = v.client_ip.clone().filter(|s| !s.trim().is_empty());
    if let (Some(here), Some(first)) = (&here, &first) {
        if station_of(ctx, Some(here.clone())) != station_of(ctx, Some(first.clone())) {
            return None;
        }
    }
    let password_from = if v.started_at.is_some() {
        first
    } else {
        first.or(here)
    };
    let station = station_of(ctx, password_from)?;
    // Stamped with when the login began, not now: the store writes the row only if no
    // forget of this user's remembered logins (`token disable`, `user set-phone`, a fraud
    // block, ...) is marked at or after this second. Stamped now, after the code check, the
    // group searches and the audit record, a forget made in between (its DELETE finding no
    // row yet) was older than the stamp, and the row it was meant to stop outlived it for
    // the whole period. The arrival's second is rounded down, so a forget in the same
    // second counts.
    let began = v.started_at.unwrap_or_else(|| {
        let elapsed = ctx.received.elapsed();
        let whole = elapsed.as_secs() + u64::from(elapsed.subsec_nanos() > 0);
        app.clock.now() - whole as i64
    });
    Some(RememberedLogin {
        user: user.to_string(),
        nas: ctx.client.name.clone(),
        station,
        mode: v.mode.to_string(),
        verified_at: began,
        expires_at: began + period.as_secs() as i64,
    })
}

/// Writes what [`to_remember`] gave, after the Accept is on disk, before `by` (the reply's
/// deadline). A failure costs the user a second factor next time, nothing more: logged.
pub async fn keep(app: &AppState, login: &RememberedLogin, by: tokio::time::Instant) {
    // The login ran under the configuration of its arrival. A reload since then that
    // lowered the period (or turned it off) has cut the rows already written; this one is
    // held to it too, or it would outlive the cut with the old period.
    let Some(login) = within_current_period(app, login) else {
        return;
    };
    match tokio::time::timeout_at(by, app.store.remember_login(&login)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, user = login.user.as_str(), "second factor not remembered");
            return;
        }
        Err(_) => {
            tracing::warn!(
                user = login.user.as_str(),
                "second factor not remembered: the reply's deadline came first"
            );
            return;
        }
    }
    // A reload may have come between the check above and the write, its own cut finding
    // no row yet: cut again what it lowered (the reload swaps the configuration before
    // it cuts, so one of the two sees this row).
    if within_current_period(app, &login).as_ref() != Some(&login) {
        let period = current_period(app, &login.nas).map(|p| p.as_secs() as i64);
        if let Err(e) = app.store.cut_remembered(&login.nas, period).await {
            warn_unfitted(&e, &format!("client {:?}", login.nas));
        }
    }
}

/// The period of client `nas` in the configuration now in force (None: off, or the client
/// is gone).
fn current_period(app: &AppState, nas: &str) -> Option<std::time::Duration> {
    app.config()
        .clients
        .iter()
        .find(|c| c.name == nas)
        .and_then(|c| c.factors.remember)
}

/// `login` ending no later than the current configuration allows, or None if it no longer
/// remembers for that client.
fn within_current_period(app: &AppState, login: &RememberedLogin) -> Option<RememberedLogin> {
    let period = current_period(app, &login.nas)?.as_secs() as i64;
    let mut login = login.clone();
    login.expires_at = login.expires_at.min(login.verified_at + period);
    Some(login)
}

/// Cuts what the store remembers to `clients`' periods in force: the remembered logins of
/// a client whose period was lowered end at the new one for good, and those of a client
/// with the setting off (or taken out of the file) are deleted. [`take`] honours only the
/// shorter of the two anyway, but the row kept its old end, and a period raised again
/// brought back logins the admin had ended. Run at start-up and after each reload; a
/// failure is logged, and the logins it left stay bounded by [`take`] meanwhile.
pub async fn fit_to_clients(store: &dyn Store, clients: &[ClientConfig]) {
    let names = match store.remembered_clients().await {
        Ok(names) => names,
        Err(e) => {
            warn_unfitted(&e, "any client");
            return;
        }
    };
    for name in names {
        let client = clients.iter().find(|c| c.name == name);
        let period = client.and_then(|c| c.factors.remember);
        match store
            .cut_remembered(&name, period.map(|p| p.as_secs() as i64))
            .await
        {
            Ok(0) => {}
            Ok(n) => match (client, period) {
                (None, _) => tracing::info!(
                    "{n} remembered login(s) of client {name:?}, no longer in the \
                     configuration, forgotten"
                ),
                (Some(_), None) => tracing::info!(
                    "{n} remembered login(s) of client {name:?} forgotten: its \
                     remember_second_factor_secs is 0"
                ),
                (Some(_), Some(p)) => tracing::info!(
                    "{n} remembered login(s) of client {name:?} cut to its \
                     remember_second_factor_secs = {}",
                    p.as_secs()
                ),
            },
            Err(e) => warn_unfitted(&e, &format!("client {name:?}")),
        }
    }
}

fn warn_unfitted(e: &crate::store::StoreError, whose: &str) {
    tracing::warn!(
        error = %e,
        "the remembered logins of {whose} could not be cut to remember_second_factor_secs \
         as configured (they are honoured only as long as it says meanwhile, but would \
         count again if it were raised); `radmfa user forget --all` ends them"
    );
}

/// The station a remembered factor is bound to: the Calling-Station-Id in one form per
/// address or MAC ([`station_key`](super::networks::station_key): `ip:port` from a NAS
/// that sends a new port each time is the address alone), or "" (anywhere) on a
/// second-factor-only client only. None: nothing is remembered for this request. A blank
/// one (" ") names no station: it was remembered as one, for every device whose NAS sends
/// it so.
fn station_of(ctx: &RequestContext, station: Option<String>) -> Option<String> {
    match station.as_deref().map(str::trim) {
        Some(s) if !s.is_empty() => Some(super::networks::station_key(s)),
        _ if ctx.client.factors.second_factor_only => Some(String::new()),
        _ => None,
    }
}
