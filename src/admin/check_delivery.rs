//! `config check --connect`: the SMS and call providers, reached without sending anything.
//! Twilio answers its Account resource only to the right SID and auth token, so those are
//! checked too; a generic HTTP gateway has no such resource, so only its server is reached
//! (name, route, proxy, certificate), and its path, key and template wait for the first
//! text.

use crate::config::Config;
use crate::delivery::ProviderError;

pub(super) async fn check(cfg: &Config, line: &mut impl FnMut(bool, String)) {
    if let Some(twilio) = &cfg.delivery.twilio {
        match crate::delivery::twilio::account(twilio).await {
            Ok(account) if account.status == "active" => {
                line(
                    true,
                    format!(
                        "twilio: account {} accepted the auth token ({}, {} account; nothing \
                         sent)",
                        twilio.account_sid,
                        account.status,
                        shown(&account.kind)
                    ),
                );
                if account.kind.eq_ignore_ascii_case("trial") {
                    warn(
                        "twilio: a trial account texts and calls only the numbers verified in \
                         its console, and its texts begin \"Sent from your Twilio trial \
                         account\": upgrade it before users rely on it",
                    );
                }
            }
            Ok(account) => line(
                false,
                format!(
                    "twilio: account {} is {}: it sends no texts and places no calls (Twilio \
                     console)",
                    twilio.account_sid,
                    shown(&account.status)
                ),
            ),
            Err(e @ ProviderError::Status { status: 401, .. }) => line(
                false,
                format!(
                    "{e} (the account SID or the auth token is wrong: [twilio] account_sid, \
                     auth_token)"
                ),
            ),
            Err(e) => line(false, e.to_string()),
        }
    }
    if let Some(http) = &cfg.delivery.http_sms {
        // A proxy may answer for the gateway (plain http), or refuse radmfa: named, so
        // that a failure is not looked for at the gateway alone.
        let proxies = crate::delivery::proxy_variables()
            .into_iter()
            .filter(|v| !v.eq_ignore_ascii_case("no_proxy"))
            .collect::<Vec<_>>();
        let through = if proxies.is_empty() {
            String::new()
        } else {
            format!(" (through the proxy set in {})", proxies.join(", "))
        };
        match crate::delivery::http::reach(http).await {
            Ok((_, status, Some(said))) if status != 407 => line(
                false,
                format!(
                    "http sms: a proxy answered HTTP {status} ({said}){through}, not the \
                     gateway: it did not pass the request on (an egress proxy's allow list, \
                     or one in front of the gateway that could not reach it)"
                ),
            ),
            Ok((_, 407, _)) => line(
                false,
                format!(
                    "http sms: the egress proxy refused radmfa (HTTP 407 Proxy Authentication \
                     Required){through}: check the user and password in the proxy's URL"
                ),
            ),
            // Not the gateway's answer, or the gateway saying it cannot serve: any
            // proxy's, or a load balancer's, with the gateway down behind it (review: "ok"
            // for a 502 from a proxy whose gateway was down).
            Ok((origin, status @ (502..=504), _)) => line(
                false,
                format!(
                    "http sms: HTTP {status} to an OPTIONS request at {origin}{through}: a \
                     proxy or load balancer could not reach the gateway, or the gateway is \
                     unavailable"
                ),
            ),
            Ok((origin, status, _)) => line(
                true,
                format!(
                    "http sms: reached {origin}{through} (HTTP {status} to an OPTIONS \
                     request; nothing sent). The url's path, the key and the template are \
                     tried only by a real text: log in once as a user with a phone (`radmfa \
                     client login`)"
                ),
            ),
            Err(e) => line(false, format!("{e}{through}")),
        }
    }
}

/// A value the provider wrote, or a word for none.
fn shown(v: &str) -> &str {
    if v.is_empty() {
        "(not given)"
    } else {
        v
    }
}

fn warn(what: &str) {
    println!("WARN {}", super::printable(what));
}
