//! The approval call: the TwiML the callee hears and what the keys they press mean.
//! "Press # to approve": Twilio's <Gather finishOnKey="#"> then reports `Digits` = "" (only
//! the finish key). The fraud digits (default "0", so "0#") report a call the user did not
//! expect; anything else declines.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallDecision {
    Approve,
    Deny,
    Fraud,
}

pub fn interpret_digits(digits: &str, fraud_digits: &str) -> CallDecision {
    let d = digits.trim().trim_end_matches('#');
    if d.is_empty() {
        CallDecision::Approve
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

/// The call's script: the greeting inside a <Gather> whose result goes to `action_url`.
/// Without `actionOnEmptyResult`, a timeout falls through to the goodbye instead of posting
/// an empty `Digits`, so silence can never look like "#".
pub fn call_twiml(greeting: &str, action_url: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>\
         <Gather input=\"dtmf\" finishOnKey=\"#\" timeout=\"15\" method=\"POST\" action=\"{}\">\
         <Say>{}</Say></Gather><Say>No key was pressed. Goodbye.</Say><Hangup/></Response>",
        xml_escape(action_url),
        xml_escape(greeting)
    )
}

/// What the callee hears after pressing keys.
pub fn outcome_twiml(decision: CallDecision) -> String {
    let text = match decision {
        CallDecision::Approve => "Thank you. Your sign-in is approved.",
        CallDecision::Deny => "Your sign-in was not approved. Goodbye.",
        CallDecision::Fraud => {
            "Thank you. The sign-in was blocked and your administrator will be told."
        }
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Say>{text}</Say><Hangup/></Response>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits() {
        assert_eq!(interpret_digits("", "0"), CallDecision::Approve);
        assert_eq!(interpret_digits("#", "0"), CallDecision::Approve);
        assert_eq!(interpret_digits("0", "0"), CallDecision::Fraud);
        assert_eq!(interpret_digits("0#", "0"), CallDecision::Fraud);
        assert_eq!(interpret_digits("1", "0"), CallDecision::Deny);
        assert_eq!(interpret_digits("00", "0"), CallDecision::Deny);
        assert_eq!(interpret_digits("*9", "*9"), CallDecision::Fraud);
    }

    #[test]
    fn twiml_escapes() {
        let t = call_twiml("Press <#> & go", "https://x/a?b=1&c=2");
        assert!(t.contains("Press &lt;#&gt; &amp; go"));
        assert!(t.contains("action=\"https://x/a?b=1&amp;c=2\""));
        assert!(t.contains("finishOnKey=\"#\""));
        assert!(!t.contains("actionOnEmptyResult"));
    }
}
