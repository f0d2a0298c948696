//! The second round of a challenge: the request carries our State and the code as
//! User-Password. The pending challenge may have been issued by any node sharing the store.

use super::login::LOCKED_MESSAGE;
use super::second_factor::{check_code, is_locked, CodeCheck};
use super::{Fault, RequestContext, Verdict};
use crate::app::AppState;
use crate::auth::UserInfo;
use crate::mfa::challenge::{state_hash, ChallengeContext};
use crate::radius::{Reply, Request};
use crate::store::{ChallengeAttempt, PendingChallenge};

const EXPIRED_MESSAGE: &str = "The code prompt has expired. Please log in again.";

pub async fn answer(
    app: &AppState,
    ctx: &RequestContext,
    req: &Request,
    user: &str,
    state: &[u8],
) -> Result<Verdict, Fault> {
    let now = app.clock.now();
    let hash = state_hash(state);
    let Some(pending) = app.store.challenge(&hash, now).await? else {
        return Ok(Verdict::reject("unknown, used or expired State")
            .with_reply(Reply::reject().with_message(EXPIRED_MESSAGE)));
    };
    // A State is bound to the user and NAS it was issued to; someone else's State must not
    // finish this login (nor be burned by it).
    if pending.user != user || pending.nas != ctx.client.name {
        return Ok(Verdict::reject("State was issued to another user or NAS"));
    }
    let carried = carried_context(&pending);
    let info = Some(UserInfo {
        given_name: carried.first_name.clone(),
        surname: carried.last_name.clone(),
        mail: carried.email.clone(),
        ..Default::default()
    });
    let with_context = |mut v: Verdict| {
        v.info = info.clone();
        v.client_ip = carried.client_ip.clone();
        v
    };

    if is_locked(app, user).await? {
        app.store.consume_challenge(&hash).await?;
        return Ok(with_context(
            Verdict::reject("second factor locked")
                .with_reply(Reply::reject().with_message(LOCKED_MESSAGE)),
        ));
    }
    let code = req
        .user_password(ctx.client.secret.expose())
        .and_then(|c| c.expose_str().map(|s| s.trim().to_string()))
        .unwrap_or_default();
    let tokens: Vec<_> = app
        .store
        .tokens_for_user(user)
        .await?
        .into_iter()
        .filter(|t| t.enabled)
        .collect();

    match check_code(app, user, &tokens, &code).await? {
        CodeCheck::Valid { serial, mode } => {
            // Single use: only the caller that deletes the challenge may accept.
            if !app.store.consume_challenge(&hash).await? {
                return Ok(with_context(Verdict::reject("State already used")));
            }
            Ok(with_context(Verdict {
                reply: Reply::accept(),
                mode,
                reason: None,
                token_serial: Some(serial),
                info: None,
                client_ip: None,
            }))
        }
        CodeCheck::Invalid { reason, locked } => {
            if locked {
                app.store.consume_challenge(&hash).await?;
                return Ok(with_context(
                    Verdict::reject(reason)
                        .with_reply(Reply::reject().with_message(LOCKED_MESSAGE)),
                ));
            }
            let max = app.config.challenge.max_attempts;
            match app.store.fail_challenge(&hash, max).await? {
                ChallengeAttempt::StillOpen(n) => {
                    let left = max.saturating_sub(n);
                    let mut reply = Reply::challenge(
                        state.to_vec(),
                        format!(
                            "Wrong code. {left} attempt(s) left. {}",
                            app.config.challenge.prompt
                        ),
                    );
                    reply.session_timeout = Some((pending.expires_at - now).max(1) as u32);
                    let mut v = Verdict::reject(reason).with_reply(reply);
                    v.mode = "totp";
                    Ok(with_context(v))
                }
                ChallengeAttempt::Closed => Ok(with_context(Verdict::reject(reason))),
            }
        }
    }
}

fn carried_context(p: &PendingChallenge) -> ChallengeContext {
    serde_json::from_str(&p.context).unwrap_or_default()
}
