//! A `[[client]]` entry's own settings for the code prompts it is sent: whether its NAS
//! should hide what the user types (`challenge_echo`), and how many codes one prompt takes
//! (`max_attempts`, over `[challenge] max_attempts`).

use super::{ConfigError, OtpMode};

/// Checked per client in `validate::client_config`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientChallenge {
    /// RFC 2869 §5.10 Prompt on every Access-Challenge: `Some(false)` No-Echo (0),
    /// `Some(true)` Echo (1). `None`: no Prompt, as radmfa always sent (how NASes other than
    /// pam_radius_auth with `prompt_attribute` treat one is not known).
    pub echo: Option<bool>,
    /// Codes one prompt takes; `None`: `[challenge] max_attempts`.
    pub max_attempts: Option<u32>,
}

impl ClientChallenge {
    /// The prompt's attempts on this client.
    pub fn max_attempts(&self, global: u32) -> u32 {
        self.max_attempts.unwrap_or(global)
    }
}

/// `challenge_echo` and `max_attempts` of the entry whose keys `key` names. Only a
/// challenge client's NAS is sent prompts: on any other entry either key would change
/// nothing, and is refused rather than read as working.
pub(super) fn client_challenge(
    key: &dyn Fn(&str) -> String,
    otp_mode: &OtpMode,
    second_factor_only: bool,
    echo: Option<bool>,
    max_attempts: Option<u32>,
) -> Result<ClientChallenge, ConfigError> {
    let prompts = *otp_mode == OtpMode::Challenge && !second_factor_only;
    for (name, set) in [
        ("challenge_echo", echo.is_some()),
        ("max_attempts", max_attempts.is_some()),
    ] {
        if set && !prompts {
            return Err(ConfigError::invalid(
                key(name),
                "is for the code prompts (Access-Challenge) of an otp_mode = \"challenge\" \
                 client, and this entry's NAS is sent none (otp_mode \"inline\" or \
                 \"code_only\", or second_factor_only)",
            ));
        }
    }
    if let Some(n) = max_attempts.filter(|n| !(1..=10).contains(n)) {
        return Err(ConfigError::invalid(
            key("max_attempts"),
            format!("must be between 1 and 10, as [challenge] max_attempts; it is {n}"),
        ));
    }
    Ok(ClientChallenge { echo, max_attempts })
}
