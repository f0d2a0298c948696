//! Second-factor-only clients (`second_factor_only = true`), i.e. RD Gateway through NPS.
//! The gateway has already checked the password; its Access-Request carries no
//! User-Password (NAS-Port-Type = Virtual (5), Called-Station-Id = "UserAuthType:PW" or
//! ":SC"), and the RDP client cannot show a prompt. So: no LDAP bind, only a search that
//! the user exists; then the phone call, held within the client's budget.

use super::aliases::OtherName;
use super::groups::{self, Membership};
use super::login::{capabilities, LOCKED_MESSAGE};
use super::methods::{self, blocked, Subject};
use super::second_factor::is_locked;
use super::{aliases, bypass, networks, oob, remembered, Fault, RequestContext, Verdict};
use crate::app::AppState;
use crate::config::NoFactorPolicy;
use crate::mfa::method::{available, Method};
use crate::radius::{Reply, Request};

/// RFC 2865 §5.41 NAS-Port-Type "Virtual", what RD Gateway's NPS sends.
pub const NAS_PORT_TYPE_VIRTUAL: u32 = 5;
/// RFC 2865 §5.2.
const USER_PASSWORD: u8 = 2;

pub async fn start(
    app: &AppState,
    ctx: &RequestContext,
    req: &Request,
    user: &str,
) -> Result<Verdict, Fault> {
    // The gateway checked the password itself and sends none. A request that carries one
    // (or CHAP, any part of MS-CHAP including its password change, EAP, ARAP, Digest) is a
    // password login that nobody here would check: NPS often
    // forwards VPN or Wi-Fi policies from the same address as RD Gateway's, and a phone
    // call alone must not let those in.
    let rd_gateway_shape = req.nas_port_type() == Some(NAS_PORT_TYPE_VIRTUAL)
        && req
            .called_station_id()
            .is_some_and(|c| c.starts_with("UserAuthType:"));
    // An empty User-Password is let through only on RD Gateway's own requests (a proxy
    // hop may add one there). Anywhere else it is what a VPN sends for a user who typed
    // no password, which must not become a login by phone call alone; so is one that does
    // not decrypt (a length not a multiple of 16, a leading NUL the decoder cuts at).
    let password = match req.user_password(ctx.client.secret.expose()) {
        Some(p) if p.expose().is_empty() => !rd_gateway_shape,
        Some(_) => true,
        None => req.raw_attribute(USER_PASSWORD).is_some() && !rd_gateway_shape,
    };
    if password || req.carries_other_credentials() {
        return Ok(Verdict::reject(
            "a password login sent to a second-factor-only client (it checks no password): \
             give that NAS or NPS policy a client entry of its own",
        ));
    }
    tracing::debug!(rd_gateway_shape, "second-factor-only request");
    // Which credential the gateway checked, for the helpdesk reading the audit: NPS says
    // "UserAuthType:PW" or ":SC" and the record would not tell them apart otherwise.
    if let Some(how) = req.called_station_id().as_deref().and_then(gateway_logon) {
        ctx.note(format!("RD Gateway logon by {how}"));
    }
    let Some(info) = ctx.primary.lookup(user).await? else {
        return Ok(Verdict::reject("unknown user (second-factor-only client)"));
    };
    // The whole snapshot, not only the profile: a name with tokens of its own is not
    // another name of someone else's entry.
    let snapshot = app.store.user_snapshot(user).await?;
    let own_state = aliases::holds_state(!snapshot.tokens.is_empty(), &snapshot.profile);
    let mut locked_as = None;
    match aliases::enrolled_under_another_name(app, user, own_state, &info).await? {
        Some(OtherName::Enrolled(other)) => return Ok(aliases::refused(other, info)),
        Some(OtherName::Locked(other)) => locked_as = Some(other),
        Some(OtherName::Blocked(other)) => return Ok(aliases::blocked_as(&other, info)),
        None => {}
    }
    let profile = snapshot.profile;
    if let Some((reason, reply)) = blocked(&profile) {
        return Ok(Verdict::reject(reason)
            .with_info(Some(info))
            .with_reply(reply));
    }
    // The gateway checked the password; an exempt user needs nothing more.
    match groups::check(app, ctx, user, &info).await? {
        Membership::Allowed => {}
        Membership::NotAllowed => return Ok(groups::not_allowed(ctx, info)),
        Membership::Exempt(group) => return Ok(groups::exempt(group, info)),
    }
    // RD Gateway sends no Calling-Station-Id; any other second-factor-only NAS that does is
    // checked as a normal one is.
    if let Some(ip) = networks::exempt_station(ctx, req) {
        return Ok(networks::exempt(ip, info));
    }
    let locked = locked_as.is_some() || is_locked(app, user).await?;
    // Each new RDP connection or RemoteApp asks again: a remembered call spares the user
    // one call per connection. As in `login`: not past a lockout, and before the bypass.
    // Remembered for any station ("" — RD Gateway sends none) only for RD Gateway's own
    // shape: a request of another NPS policy with no station and no credential at all (a
    // bare User-Name) was let in on it, where no_factor = "allow" already refuses it.
    let station = req
        .calling_station_id()
        .is_some_and(|s| !s.trim().is_empty());
    if !locked && (station || rd_gateway_shape) {
        if let Some(v) = remembered::take(app, ctx, req, user, &info, &snapshot.tokens).await? {
            return Ok(v);
        }
    }
    let phone = oob::phone_for(app, &profile, &info);
    // Only the call can finish a login without a prompt.
    let usable = available(
        &[Method::Voice],
        capabilities(app, ctx, false, phone.is_some()),
    );
    // Never enrolled (no token, no number anywhere, not even one the directory holds that
    // cannot be used): `no_factor` decides, as on a password client. Azure MFA Server's
    // "User match required" unticked let such users through RD Gateway. Only on RD
    // Gateway's own shape: a password-less request of another policy NPS forwards from the
    // same address (a VPN's) needed a call before, and must not be let in on nothing.
    let primary_only = usable.is_empty()
        && phone.is_none()
        && snapshot.tokens.is_empty()
        && profile.phone.is_none()
        && oob::unused_directory_number(app, &info).is_none()
        && rd_gateway_shape
        && ctx.client.no_factor == NoFactorPolicy::Allow;
    // As in `login`: a login let in without a factor anyway does not spend a waiting bypass.
    // Nor does a request of no known shape (neither RD Gateway's nor with a station: a
    // bare User-Name another NPS policy forwards, which nobody checked a password for),
    // as for a remembered approval above.
    if (!primary_only || locked) && (station || rd_gateway_shape) {
        if let Some(v) = bypass::take(app, user, &profile, &info).await? {
            return Ok(v);
        }
    }
    if locked {
        return Ok(
            Verdict::reject(aliases::locked_reason(locked_as.as_deref()))
                .with_info(Some(info))
                .with_reply(Reply::reject().with_message(LOCKED_MESSAGE)),
        );
    }
    if usable.is_empty() {
        if primary_only {
            return Ok(Verdict::accept(
                "primary-only",
                Some(
                    "no second factor enrolled; client policy allows the gateway's check only"
                        .into(),
                ),
                info,
            ));
        }
        // Why there is no number, where something else decided it: the helpdesk saw a
        // mobile in the directory, or a user with nothing enrolled let in on another
        // request, and read only "no phone number".
        let why = if phone.is_some() {
            "calls are not configured".to_string()
        } else if let Some(unused) = oob::unused_directory_number(app, &info) {
            format!(
                "no phone number for the approval call: {}",
                super::login::unused_number_reason(unused)
            )
        } else if !snapshot.tokens.is_empty() {
            "no phone number for the approval call (the user's tokens cannot answer the \
             gateway, which sends no code)"
                .to_string()
        } else if ctx.client.no_factor == NoFactorPolicy::Allow && !rd_gateway_shape {
            "no phone number for the approval call; no_factor = \"allow\" lets a user with \
             nothing enrolled in only on RD Gateway's own requests (NAS-Port-Type Virtual, \
             Called-Station-Id UserAuthType:), and this is not one"
                .to_string()
        } else {
            "no phone number for the approval call".to_string()
        };
        return Ok(Verdict::reject(why).with_info(Some(info)));
    }
    let subject = Subject {
        user,
        info,
        phone,
        available: usable,
        client_ip: req.calling_station_id(),
        from: super::audit::Source::of(ctx, req),
        // Only the call is offered here; no code prompt.
        oath_mode: "totp",
        started_at: None,
        earlier_sms: Vec::new(),
        sends_limited: None,
        sends_limited_at: None,
    };
    let v = methods::begin(
        app,
        ctx,
        &oob::request_key(ctx, req),
        &subject,
        Method::Voice,
    )
    .await?;
    Ok(oob::no_other_method(v))
}

/// The credential RD Gateway checked, from its Called-Station-Id.
fn gateway_logon(called: &str) -> Option<&'static str> {
    match called.strip_prefix("UserAuthType:")? {
        "PW" => Some("password"),
        "SC" => Some("smart card"),
        _ => None,
    }
}
