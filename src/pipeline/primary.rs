//! The password check of a fresh login, by whoever the client names: the directory (a bind
//! as the user) or an upstream RADIUS server, after which the directory still supplies the
//! user's entry — name, phone, groups — exactly as after a bind.

use super::{Fault, RequestContext};
use crate::app::AppState;
use crate::auth::upstream::{self, Answer, Check, FORWARDED};
use crate::auth::{AuthError, Denial, PrimaryOutcome};
use crate::config::Primary;
use crate::radius::Request;
use crate::secret::Secret;
use ::radius::core::rfc2865;

pub async fn check(
    app: &AppState,
    ctx: &RequestContext,
    req: &Request,
    user: &str,
    password: &Secret,
) -> Result<PrimaryOutcome, Fault> {
    if let Some(denial) = refused_unasked(&ctx.client.primary, password) {
        return Ok(PrimaryOutcome::Denied(denial));
    }
    match &ctx.client.primary {
        Primary::Ldap => Ok(ctx.primary.authenticate(user, password).await?),
        Primary::Upstream(group) => {
            Box::pin(by_upstream(app, ctx, req, group, user, password)).await
        }
    }
}

/// What OpenSSH's PAM code (auth-pam.c, `fake_password`) repeats, cut to the typed
/// password's length, to hand PAM in place of that password when it will not let the login
/// succeed whatever PAM says: no local account for the name, root where `PermitRootLogin`
/// refuses it, a user `AllowUsers` leaves out. pam_radius_auth sends it on as the password
/// (a 16-character password arrives as `\b\n\r\x7fINCORRECT\b\n\r`); asked, the directory
/// counts a failed bind against the account's lockout (AD, ppolicy) for a login that could
/// never have succeeded.
const SSH_PLACEHOLDER: &[u8] = b"\x08\n\r\x7fINCORRECT";

/// Whether `password` is sshd's placeholder: [`SSH_PLACEHOLDER`] repeated and cut to some
/// length. No typed password starts with a backspace and a line break.
pub fn is_ssh_placeholder(password: &[u8]) -> bool {
    !password.is_empty()
        && password
            .iter()
            .zip(SSH_PLACEHOLDER.iter().cycle())
            .all(|(a, b)| a == b)
}

/// A password refused whoever the user is, before anything is asked (or, for a login
/// refused without asking, before it imitates the time asking takes: `login::start`):
/// empty, holding a NUL, sshd's placeholder, or on a directory client not UTF-8. Answered
/// at once for every name alike, so nothing about the name shows.
pub fn refused_unasked(primary: &Primary, password: &Secret) -> Option<Denial> {
    if is_ssh_placeholder(password.expose()) {
        return Some(Denial::SshPlaceholder);
    }
    if password.is_empty() {
        // An empty simple bind is an anonymous bind that "succeeds"; an upstream server
        // would only be asked to refuse it.
        return Some(Denial::EmptyPassword);
    }
    // A NUL cannot be part of a real password, and where it ends one (an upstream server
    // strips PAP's NUL padding; C-string code in a directory) "\0" is an empty password.
    if password.expose().contains(&0) {
        return Some(Denial::BadPassword);
    }
    // A simple bind carries UTF-8 (RFC 4513 §5.1.1).
    if matches!(primary, Primary::Ldap) && password.expose_str().is_none() {
        return Some(Denial::PasswordNotText);
    }
    None
}

/// Asks the client's upstream group about a made-up name with a random password, through
/// the same servers in the same order as a login: what a refusal that must not send the
/// user's field upstream does instead of a check (`login::start`). Its answer decides
/// nothing; a group that does not answer fails it as it fails a login. Upstream servers
/// log it as a failed login of `radmfa-timing-check`.
pub async fn imitate_upstream(
    app: &AppState,
    ctx: &RequestContext,
    req: &Request,
    group: &str,
) -> Result<(), Fault> {
    let cfg = app.config();
    let Some(upstream_cfg) = cfg.upstream_group(group) else {
        return Err(AuthError::Upstream(format!("no upstream group {group:?}")).into());
    };
    // Dressed as the real request would be: the typed name's domain or realm (a server may
    // route or refuse by it), and the NAS's attributes its policies may match on.
    let typed = req
        .raw_attribute(rfc2865::USER_NAME_TYPE)
        .unwrap_or_default();
    let name = upstream::made_up_name(&typed);
    let forwarded = FORWARDED
        .iter()
        .filter_map(|t| Some((*t, req.raw_attribute(*t)?)))
        .collect();
    let accepted = Box::pin(upstream::imitate(
        upstream_cfg,
        &app.upstream_health,
        &cfg.server.name,
        &name,
        forwarded,
        &ctx.upstream,
    ))
    .await?;
    if accepted {
        // Refused all the same (nothing rests on its answer); but a server that lets in a
        // made-up name with a random password lets in anyone.
        tracing::error!(
            group,
            "an upstream server accepted a made-up user with a random password: it accepts \
             anyone; check it (radmfa config check --connect asks the same)"
        );
    }
    Ok(())
}

/// Boxed above: a future with a socket and a packet buffer in it is not what every LDAP
/// login should carry (`a_requests_future_stays_small`).
async fn by_upstream(
    app: &AppState,
    ctx: &RequestContext,
    req: &Request,
    group: &str,
    user: &str,
    password: &Secret,
) -> Result<PrimaryOutcome, Fault> {
    let cfg = app.config();
    // Checked when the file is read; only a request that took its client from the old
    // table and the configuration from a reloaded file can miss it (refused, never let in).
    let Some(upstream_cfg) = cfg.upstream_group(group) else {
        return Err(AuthError::Upstream(format!("no upstream group {group:?}")).into());
    };
    // The name as the user typed it: the upstream server may want the domain radmfa strips.
    // Its octets, not the text radmfa reads from them: a lossy re-encoding of a name that is
    // not UTF-8 grows (each bad octet becomes three) past what one attribute can carry.
    // Less the trailing NULs some NASes end strings with, as radmfa reads the name.
    let mut typed = req
        .raw_attribute(rfc2865::USER_NAME_TYPE)
        .unwrap_or_else(|| user.as_bytes().to_vec());
    while typed.len() > 1 && typed.last() == Some(&0) {
        typed.pop();
    }
    let check = Check {
        user_name: &typed,
        password,
        nas_identifier: &cfg.server.name,
        forwarded: FORWARDED
            .iter()
            .filter_map(|t| Some((*t, req.raw_attribute(*t)?)))
            .collect(),
        progress: Some(&ctx.upstream),
    };
    match upstream::check(upstream_cfg, &app.upstream_health, &check).await? {
        (Answer::Reject, server) => Ok(PrimaryOutcome::Denied(Denial::UpstreamReject(
            server.name.clone(),
        ))),
        // Refused as a Reject is, whatever on_backend_failure says: the server answered.
        (Answer::Refused(why), server) => Ok(PrimaryOutcome::Denied(Denial::UpstreamReject(
            format!("{} ({why})", server.name),
        ))),
        (Answer::Accept(granted), _) => Ok(match ctx.primary.lookup(user).await? {
            Some(mut info) => {
                info.granted = granted;
                PrimaryOutcome::Accepted(info)
            }
            None => PrimaryOutcome::Denied(Denial::NotInDirectory),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::is_ssh_placeholder;

    #[test]
    fn sshds_placeholder_is_known_at_any_length() {
        assert!(is_ssh_placeholder(b"\x08\n\r\x7fINCORRECT"));
        // As a 16-character password comes from OpenSSH 9.2, and a 3-character one.
        assert!(is_ssh_placeholder(b"\x08\n\r\x7fINCORRECT\x08\n\r"));
        assert!(is_ssh_placeholder(b"\x08\n\r"));
        assert!(!is_ssh_placeholder(b""));
        assert!(!is_ssh_placeholder(b"INCORRECT"));
        assert!(!is_ssh_placeholder(b"\x08\n\r\x7fINCORRECT!"));
    }
}
