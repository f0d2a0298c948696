//! An inline code typed with the password of a login that needs none: an exempt group or
//! network, a remembered station, a waiting bypass. The login goes ahead without it, but a
//! code the user's token would take is used up all the same: left unused, the same field
//! (password and code, seen over a shoulder at the office or logged by a keylogger on a
//! remembered laptop) logged in from any other station within the code's time, as a full
//! second factor, which that station then remembered. RFC 6238 §5.2: a code is used once.

use super::second_factor::{check_code, UserView, Via};
use super::Fault;
use crate::app::AppState;
use crate::auth::UserInfo;
use crate::mfa::otp;
use crate::mfa::verify::{self, VerifyOptions};
use crate::secret::Secret;

/// Uses `code` up if one of the user's tokens takes it now. A code no token takes, or one
/// used already, changes nothing: the login needed none, and a mistyped one is no guess
/// to count toward the lockout.
pub async fn use_up(
    app: &AppState,
    via: Via<'_>,
    user: &str,
    view: &UserView,
    code: Option<&Secret>,
    info: &UserInfo,
) -> Result<(), Fault> {
    let Some(code) = code.and_then(|c| c.expose_str()) else {
        return Ok(());
    };
    let plain = otp::plain_code(code);
    let (opts, now) = (VerifyOptions::of(&app.config()), app.clock.now());
    let fresh = view.tokens().iter().any(|t| {
        verify::fits(&opts, t, plain.as_ref(), now)
            && !verify::is_replay(&opts, t, plain.as_ref(), now)
    });
    if fresh {
        // Valid, so it counts nothing; a race that used it meanwhile is refused there, and
        // changes nothing here either.
        let _ = check_code(app, user, &info.other_names, view, code, via).await?;
    }
    Ok(())
}
