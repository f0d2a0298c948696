//! The approval call: the TwiML the callee hears and what the keys they press mean.
//! "Press # to approve". Twilio's <Gather> does not call its action URL when the finish key
//! is pressed before any digit, nor on a timeout; it falls through to the next verb. So the
//! gather sets `actionOnEmptyResult="true"`: both then post an empty `Digits`, and
//! `FinishedOnKey` tells them apart ("#" for the key, empty for silence). Only `#` approves.
//! The fraud digits (default "0", so "0#") report a call the user did not expect; anything
//! else declines.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallDecision {
    Approve,
    Deny,
    Fraud,
}

/// The decision for a gather result: `digits` as Twilio posts them (without the finish key)
/// and `finished_on_key`, the key that ended the gather (empty or absent: it timed out).
pub fn interpret_digits(
    digits: &str,
    finished_on_key: Option<&str>,
    fraud_digits: &str,
) -> CallDecision {
    let d = digits.trim().trim_end_matches('#');
    if d.is_empty() {
        // Silence must never look like "#": no finish key, no approval.
        if finished_on_key == Some("#") {
            CallDecision::Approve
        } else {
            CallDecision::Deny
        }
    } else if d == fraud_digits {
        CallDecision::Fraud
    } else {
        CallDecision::Deny
    }
}

/// Escapes text for an XML attribute or element.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// The call's script: the greeting inside a <Gather> whose result goes to `action_url`,
/// also when it is only the finish key or nothing (see the module comment).
pub fn call_twiml(greeting: &str, action_url: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>\
         <Gather input=\"dtmf\" finishOnKey=\"#\" actionOnEmptyResult=\"true\" \
         timeout=\"{GATHER_TIMEOUT_SECS}\" method=\"POST\" action=\"{}\">\
         <Say>{}</Say></Gather><Say>No key was pressed. Goodbye.</Say><Hangup/></Response>",
        xml_escape(action_url),
        xml_escape(greeting)
    )
}

/// How long the keypad waits for a key once the greeting has played (`<Gather timeout>`).
pub const GATHER_TIMEOUT_SECS: u64 = 15;

/// The most characters of TwiML Twilio takes inline with a call (its `Twiml` parameter;
/// error 32018 above).
pub const MAX_TWIML_CHARS: usize = 4000;

/// What the callee hears after pressing keys.
/// What the callee hears after pressing a key. `taken` is whether the key decided the call:
/// one pressed after the login gave up (its budget ran out while the phone rang) decided
/// nothing, and "approved" would tell the user a rejected sign-in went through.
pub fn outcome_twiml(decision: CallDecision, taken: bool) -> String {
    let text = match decision {
        CallDecision::Approve if !taken => {
            "This sign-in has already ended without approval. Please sign in again. Goodbye."
        }
        CallDecision::Approve => "Thank you. Your sign-in is approved.",
        CallDecision::Deny => "Your sign-in was not approved. Goodbye.",
        CallDecision::Fraud => "Thank you. The sign-in was blocked and reported.",
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Say>{text}</Say><Hangup/></Response>"
    )
}

/// The start of the reason a call is given when the user, at its prompt, chose another
/// method (`pipeline::followup`): a key pressed on it later is told so.
pub const ABANDONED_FOR: &str = "abandoned: the user chose ";

/// What the callee hears after pressing a key on a call the login gave up for another
/// method (typed `app` at the call's prompt). The call is left ringing on purpose (its
/// owner may still report fraud), but "ended without approval, please sign in again" told
/// a user who had signed in with the app that it failed.
pub fn abandoned_twiml() -> String {
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Say>This call is no longer \
     needed: another way to sign in was chosen. Goodbye.</Say><Hangup/></Response>"
        .to_string()
}

/// What the callee hears when their fraud report could not be recorded (the store failed
/// through every try): Twilio will not send it again, so a person has to act on it.
pub fn fraud_not_recorded_twiml() -> String {
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Say>Thank you. The sign-in was \
     refused, but your report could not be recorded. Please tell your administrator at once. \
     Goodbye.</Say><Hangup/></Response>"
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits() {
        let hash = Some("#");
        assert_eq!(interpret_digits("", hash, "0"), CallDecision::Approve);
        assert_eq!(interpret_digits("#", hash, "0"), CallDecision::Approve);
        // A timeout (actionOnEmptyResult posts it too) is not an approval.
        assert_eq!(interpret_digits("", Some(""), "0"), CallDecision::Deny);
        assert_eq!(interpret_digits("", None, "0"), CallDecision::Deny);
        assert_eq!(interpret_digits("0", hash, "0"), CallDecision::Fraud);
        assert_eq!(interpret_digits("0", Some(""), "0"), CallDecision::Fraud);
        assert_eq!(interpret_digits("0#", hash, "0"), CallDecision::Fraud);
        assert_eq!(interpret_digits("1", hash, "0"), CallDecision::Deny);
        assert_eq!(interpret_digits("00", hash, "0"), CallDecision::Deny);
        assert_eq!(interpret_digits("*9", hash, "*9"), CallDecision::Fraud);
    }

    #[test]
    fn twiml_escapes() {
        let t = call_twiml("Press <#> & go", "https://x/a?b=1&c=2");
        assert!(t.contains("Press &lt;#&gt; &amp; go"));
        assert!(t.contains("action=\"https://x/a?b=1&amp;c=2\""));
        assert!(t.contains("finishOnKey=\"#\""));
        // Without it Twilio never reports "#" alone, and no call could be approved.
        assert!(t.contains("actionOnEmptyResult=\"true\""));
    }
}
