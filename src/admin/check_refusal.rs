//! `config check --connect --user`: the clients on which the user's login would be refused
//! for want of a second factor it can use there, or for want of a group, and why. Every other line of the check can
//! read "ok" for a user who cannot log in anywhere (no token, no number, every client
//! `no_factor = "reject"`), and the first to hear of it would be the user.
//!
//! The rules are the login's (`pipeline::login`, from `available` on): a factor the client
//! can use passes, and so does an app password where the client takes them; a token, a
//! stored number, or texts or calls chosen for the user (user set-method) with a number to
//! go to, that the client cannot use, is refused whatever `no_factor` says; nothing at all
//! is refused where `no_factor = "reject"`.

use super::check::{Groups, Held};
use crate::config::delivery::VoiceMode;
use crate::config::{Config, NoFactorPolicy, OtpMode};
use crate::delivery::phone::{phone_from, unused_number};
use crate::mfa::method::{available, Capabilities};

/// One line per reason, naming the clients it holds for.
pub(super) fn refusals(
    cfg: &Config,
    user: &str,
    held: &Held<'_>,
    groups: &[Groups],
) -> Vec<String> {
    let empty = crate::auth::UserInfo::default();
    let info = held.entry.unwrap_or(&empty);
    let has_phone = phone_from(&cfg.delivery.phone, held.profile, info).is_some();
    let has_token = held
        .tokens
        .iter()
        .any(|t| t.enabled && !held.out_of_dates.contains(&t.serial));
    let enabled = held.tokens.iter().any(|t| t.enabled);
    let mut by_reason: Vec<(String, Vec<&str>)> = Vec::new();
    for (client, standing) in cfg.clients.iter().zip(groups) {
        if *standing == Groups::NotAllowed {
            let reason = "not a member of any of the client's allow_groups".to_string();
            match by_reason.iter_mut().find(|(r, _)| *r == reason) {
                Some((_, clients)) => clients.push(&client.name),
                None => by_reason.push((reason, vec![&client.name])),
            }
            continue;
        }
        if *standing != Groups::Decide {
            continue;
        }
        // Behind RD Gateway only the approval call can finish a login (pipeline::rdg).
        let calls_only = client.factors.second_factor_only;
        let caps = Capabilities {
            has_token: has_token && !calls_only,
            has_phone,
            sms_configured: cfg.delivery.sms.is_some() && !calls_only,
            voice_configured: cfg.delivery.voice.is_some(),
            can_prompt: matches!(client.otp_mode, OtpMode::Challenge) && !calls_only,
            holds_calls: client.factors.voice_mode == VoiceMode::Hold || calls_only,
        };
        if !available(&client.factors.methods, caps).is_empty()
            || (held.app_passwords && client.factors.app_passwords)
        {
            continue;
        }
        let reason = if calls_only && (has_phone || !held.tokens.is_empty()) {
            if has_phone {
                "its number cannot be called from there ([voice] is not set up)".to_string()
            } else {
                "its tokens cannot be used there (a second-factor-only client only calls: \
                 store a number, user set-phone)"
                    .to_string()
            }
        } else if calls_only && client.no_factor == NoFactorPolicy::Reject {
            "no number an approval call could use (a second-factor-only client only calls), \
             and the client has no_factor = \"reject\"; store one (user set-phone)"
                .to_string()
        } else if calls_only && held.profile.phone.is_some() {
            "its stored number cannot be called (said above)".to_string()
        } else if calls_only && unused_number(&cfg.delivery.phone, info).is_some() {
            "the directory's number is not one calls could use (said above)".to_string()
        } else if calls_only {
            // no_factor = "allow": the gateway's own check alone.
            continue;
        } else if has_token {
            "its tokens cannot be used there (the client's methods leave out totp)".to_string()
        } else if enabled {
            "its tokens are outside their validity dates (expired, or not yet valid: radmfa \
             token list shows which; every code is refused)"
                .to_string()
        } else if !held.tokens.is_empty() {
            "its tokens are disabled (radmfa token enable)".to_string()
        } else if held.profile.phone.is_some() {
            "its stored number cannot be used there (the client cannot prompt, its methods leave out \
             sms and voice, or [sms] and [voice] are not set up)"
                .to_string()
        } else if let Some(method) = held
            .profile
            .method
            .as_deref()
            .filter(|m| has_phone && matches!(*m, "sms" | "voice"))
        {
            // Texts or calls chosen by an admin, and a number for them: a second factor.
            format!(
                "its chosen method {method} (user set-method) cannot be used there (the client \
                 cannot prompt, its methods leave it out, or its section is not set up)"
            )
        } else if unused_number(&cfg.delivery.phone, info).is_some()
            && !available(
                &client.factors.methods,
                Capabilities {
                    has_phone: true,
                    ..caps
                },
            )
            .is_empty()
        {
            "the directory's number is not one texts or calls could use (said above)".to_string()
        } else if client.no_factor == NoFactorPolicy::Reject {
            "no second factor: no token and no number texts or calls could use, and the \
             client has no_factor = \"reject\"; enroll one (user enroll-totp) or store a \
             number (user set-phone)"
                .to_string()
        } else {
            // no_factor = "allow": the password alone.
            continue;
        };
        match by_reason.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, clients)) => clients.push(&client.name),
            None => by_reason.push((reason, vec![&client.name])),
        }
    }
    by_reason
        .into_iter()
        .map(|(reason, clients)| {
            let names: Vec<String> = clients.iter().map(|c| format!("{c:?}")).collect();
            format!(
                "user {user}: would be refused on client(s) {}: {reason}",
                names.join(", ")
            )
        })
        .collect()
}
