//! Which second factor a login uses: the user's default, limited to what the client allows
//! and what can work for this user (a token, a phone number, a configured provider), and what
//! the user may type at a prompt to switch ("sms", "call", "resend", or the code).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Totp,
    Sms,
    Voice,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Totp => "totp",
            Method::Sms => "sms",
            Method::Voice => "voice",
        }
    }

    /// Config and CLI spelling; "call" is accepted for voice.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "totp" => Some(Method::Totp),
            "sms" => Some(Method::Sms),
            "voice" | "call" => Some(Method::Voice),
            _ => None,
        }
    }

    /// The word a user types at a prompt to pick this method.
    pub fn keyword(self) -> &'static str {
        match self {
            Method::Totp => "app",
            Method::Sms => "sms",
            Method::Voice => "call",
        }
    }
}

/// What a user typed at a challenge prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptInput {
    Switch(Method),
    Resend,
    /// Anything else: a code (or, for a call in challenge mode, just Enter).
    Answer(String),
}

pub fn parse_input(text: &str) -> PromptInput {
    let t = text.trim();
    match t.to_ascii_lowercase().as_str() {
        "sms" | "text" => PromptInput::Switch(Method::Sms),
        "call" | "voice" | "phone" => PromptInput::Switch(Method::Voice),
        "app" | "totp" => PromptInput::Switch(Method::Totp),
        "resend" => PromptInput::Resend,
        _ => PromptInput::Answer(t.to_string()),
    }
}

/// What could work for this user on this client.
#[derive(Debug, Clone, Copy, Default)]
pub struct Capabilities {
    pub has_token: bool,
    pub has_phone: bool,
    pub sms_configured: bool,
    pub voice_configured: bool,
    /// The client can show an Access-Challenge prompt.
    pub can_prompt: bool,
    /// The client holds the request for a call (voice_mode = "hold").
    pub holds_calls: bool,
}

/// The methods usable here, in the client's order of preference.
pub fn available(client_methods: &[Method], c: Capabilities) -> Vec<Method> {
    client_methods
        .iter()
        .copied()
        .filter(|m| match m {
            // Inline clients take TOTP in the password field; challenge clients prompt.
            Method::Totp => c.has_token,
            Method::Sms => c.has_phone && c.sms_configured && c.can_prompt,
            Method::Voice => c.has_phone && c.voice_configured && (c.can_prompt || c.holds_calls),
        })
        .collect()
}

/// The user's default if usable, else the first usable one.
pub fn choose(available: &[Method], preferred: Option<Method>) -> Option<Method> {
    preferred
        .filter(|p| available.contains(p))
        .or_else(|| available.first().copied())
}

/// The prompt's tail offering the other usable methods, e.g. ", or type sms or call".
/// Only what the client allows (and can work) is ever named.
pub fn switch_hint(available: &[Method], current: Method) -> String {
    let mut words: Vec<&str> = available
        .iter()
        .filter(|m| **m != current)
        .map(|m| m.keyword())
        .collect();
    // A resend only where texts are still offered (a send limit's day cap, a reload that
    // took them from the client, leave the prompt without it).
    if current == Method::Sms && available.contains(&Method::Sms) {
        words.insert(0, "resend");
    }
    match words.len() {
        0 => String::new(),
        1 => format!(", or type {}", words[0]),
        _ => {
            let last = words.pop().unwrap_or_default();
            format!(", or type {} or {last}", words.join(", "))
        }
    }
}

/// `prompt` with `hint` ([`switch_hint`]) added, and ": " after it: pam_radius_auth and
/// SSH show the prompt as it is, and the user types right after it. A closing colon of the
/// prompt's own (and the spaces after it) goes, so that "Code: " reads "Code, or type sms: "
/// rather than "Code: , or type sms", and "Verification code" reads "Verification code, or
/// type sms: " rather than leaving the cursor glued to "sms". No hint: the prompt as written.
pub fn with_hint(prompt: &str, hint: &str) -> String {
    if hint.is_empty() {
        return prompt.to_string();
    }
    let body = prompt.trim_end();
    let head = body.strip_suffix(':').unwrap_or(body).trim_end();
    format!("{head}{hint}: ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hint_goes_before_a_closing_colon() {
        assert_eq!(with_hint("Code: ", ", or type sms"), "Code, or type sms: ");
        assert_eq!(with_hint("Code:", ", or type sms"), "Code, or type sms: ");
        assert_eq!(
            with_hint("Code :  ", ", or type sms"),
            "Code, or type sms: "
        );
        // A prompt of the admin's without a colon: the words it offers still end in one, or
        // the code typed is glued to "sms".
        assert_eq!(
            with_hint("Verification code", ", or type sms or call"),
            "Verification code, or type sms or call: "
        );
        // Nothing offered: as written.
        assert_eq!(with_hint("Code: ", ""), "Code: ");
        assert_eq!(with_hint("Verification code", ""), "Verification code");
        // The default prompt.
        assert_eq!(
            with_hint(
                "Enter the code from your authenticator app or token: ",
                ", or type sms or call"
            ),
            "Enter the code from your authenticator app or token, or type sms or call: "
        );
    }

    const ALL: [Method; 3] = [Method::Totp, Method::Sms, Method::Voice];

    fn caps() -> Capabilities {
        Capabilities {
            has_token: true,
            has_phone: true,
            sms_configured: true,
            voice_configured: true,
            can_prompt: true,
            holds_calls: false,
        }
    }

    #[test]
    fn availability_follows_client_and_user() {
        assert_eq!(available(&ALL, caps()), ALL.to_vec());
        assert_eq!(
            available(&[Method::Totp, Method::Sms], caps()),
            vec![Method::Totp, Method::Sms]
        );
        let no_phone = Capabilities {
            has_phone: false,
            ..caps()
        };
        assert_eq!(available(&ALL, no_phone), vec![Method::Totp]);
        let inline = Capabilities {
            can_prompt: false,
            ..caps()
        };
        assert_eq!(available(&ALL, inline), vec![Method::Totp]);
        let inline_hold = Capabilities {
            holds_calls: true,
            ..inline
        };
        assert_eq!(
            available(&ALL, inline_hold),
            vec![Method::Totp, Method::Voice]
        );
    }

    #[test]
    fn choice_and_hints() {
        let av = vec![Method::Totp, Method::Sms];
        assert_eq!(choose(&av, Some(Method::Sms)), Some(Method::Sms));
        assert_eq!(choose(&av, Some(Method::Voice)), Some(Method::Totp));
        assert_eq!(choose(&[], Some(Method::Voice)), None);
        assert_eq!(switch_hint(&av, Method::Totp), ", or type sms");
        assert_eq!(switch_hint(&ALL, Method::Totp), ", or type sms or call");
        assert_eq!(
            switch_hint(&ALL, Method::Sms),
            ", or type resend, app or call"
        );
        assert_eq!(switch_hint(&[Method::Totp], Method::Totp), "");
        assert_eq!(switch_hint(&[Method::Totp], Method::Sms), ", or type app");
    }

    #[test]
    fn prompt_input() {
        assert_eq!(parse_input(" SMS "), PromptInput::Switch(Method::Sms));
        assert_eq!(parse_input("call"), PromptInput::Switch(Method::Voice));
        assert_eq!(parse_input("resend"), PromptInput::Resend);
        assert_eq!(parse_input("123456"), PromptInput::Answer("123456".into()));
        assert_eq!(parse_input(""), PromptInput::Answer(String::new()));
    }
}
