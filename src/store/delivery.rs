//! Store types for the out-of-band factors (issue 4): per-user phone, default method and
//! fraud block; app passwords; send rate limits; and the SMS/call transactions every node
//! can see, so any node can finish a login and a retransmit never sends twice.

use serde::{Deserialize, Serialize};

/// Per-user settings beyond tokens. All `None` for a user nobody configured.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserProfile {
    pub user: String,
    /// E.164 number stored in radmfa; preferred over the directory's number.
    pub phone: Option<String>,
    /// Default second factor: "totp", "sms" or "voice".
    pub method: Option<String>,
    /// Set when a call reported fraud; logins are refused until an admin unblocks.
    pub blocked_at: Option<i64>,
    pub blocked_reason: Option<String>,
    /// `radmfa user bypass`: the next login with the right password until then needs no
    /// second factor (once).
    pub bypass_until: Option<i64>,
}

/// The longest a one-time bypass waits (`user bypass --for`, at most 24 h).
pub const BYPASS_LONGEST_SECS: i64 = 24 * 3600;

/// The bypass a change of it expects to find ([`super::Store::set_bypass_audited`]): a
/// change made on what an admin read must not overwrite what another admin or a login did
/// meanwhile, nor report it wrongly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BypassWas {
    /// Whatever is there.
    Anything,
    /// Only this end time (`None`: no bypass, or no profile row yet).
    Exactly(Option<i64>),
}

/// The latest end a bypass found at `now` may have and still be used: one set for longer
/// than [`BYPASS_LONGEST_SECS`] from now was set while the clock ran ahead (an NTP step
/// back since, a VM resumed), or on a node whose clock does. Trusted, it lasted as long as
/// the clock's error: a 5-minute bypass set a day ahead waited a day and 5 minutes. The
/// stores take it only under this bound too.
pub fn bypass_latest_end(now: i64) -> i64 {
    now.saturating_add(BYPASS_LONGEST_SECS + crate::clock::FUTURE_SLACK_SECS)
}

impl UserProfile {
    /// Until when a one-time bypass waits, if one is waiting at `now` (see
    /// [`bypass_latest_end`]).
    pub fn pending_bypass(&self, now: i64) -> Option<i64> {
        self.bypass_until
            .filter(|&t| t > now && t <= bypass_latest_end(now))
    }

    /// Until when a one-time bypass is set at `now`, usable by a login now or not (one
    /// ending beyond [`bypass_latest_end`] is not, yet): what the admin commands show,
    /// cancel and reset, so none is left there unseen.
    pub fn bypass_set(&self, now: i64) -> Option<i64> {
        self.bypass_until.filter(|&t| t > now)
    }

    /// Whether a one-time bypass is waiting at `now`.
    pub fn bypass_pending(&self, now: i64) -> bool {
        self.pending_bypass(now).is_some()
    }
}

/// A stored app password: never the password, only its hash (keyed, or argon2id from earlier releases).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppPassword {
    pub id: i64,
    pub user: String,
    pub label: Option<String>,
    pub hash: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    /// The directory entry that first used it (see `Store::touch_app_password`).
    pub dn: Option<String>,
    /// That entry's lasting identity ([`crate::auth::UserInfo::entry_id`]).
    #[serde(default)]
    pub entry_id: Option<String>,
}

/// One sliding-window limit for [`super::Store::take_send_slot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendLimit {
    /// e.g. `user:alice`, `nas:vpn`.
    pub key: String,
    pub max: u32,
    pub window_secs: i64,
}

/// Which of a send's events [`super::Store::forget_sends`] forgets, as an SQL condition on
/// `send_events.key`: those of the user's limits and the number's (`user:`, `user-day:`,
/// `phone:`, `phone-day:`, see `pipeline::oob::rate_limits`). Not the NAS's (nor any other
/// key added later): that cap bounds what a stolen password list costs in calls and texts
/// over all users, and a helpdesk unlocking user after user during an incident would
/// otherwise top it up each time. The number's are forgotten with the user's because they
/// allow as many: kept, they alone would refuse the unlocked user's next send.
/// [`super::Store::sends_since`]'s query, for both dialects (`?1`… are rewritten to `$1`…
/// for PostgreSQL): a send's `user-day:` event names whose it was. Joined on the slot, so a
/// row of an earlier release (no slot) counts under "".
pub(super) const SENDS_SINCE: &str = "SELECT COALESCE(substr(u.key, 10), '') AS who, \
     COUNT(*) AS n FROM send_events p \
     LEFT JOIN send_events u ON u.slot = p.slot AND u.key LIKE 'user-day:%' \
     WHERE p.key = ?1 AND p.at > ?2 AND p.at <= ?3 GROUP BY who ORDER BY who";

pub(super) const USER_SEND_KEYS: &str = "(key LIKE 'user:%' OR key LIKE 'user-day:%' \
                                          OR key LIKE 'phone:%' OR key LIKE 'phone-day:%')";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OobKind {
    Sms,
    Voice,
}

/// How the reasons given to `Store::cancel_oob` begin (an admin's change, a fraud report):
/// calls failed that way are hung up, unlike those a user switched away from.
pub const OOB_CANCELLED: &str = "cancelled: ";

/// What `Store::cancel_oob` failed: how many transactions, and the provider's references of
/// the calls among them (to hang up: the phone rings on otherwise).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CancelledOob {
    pub count: u64,
    pub calls: Vec<String>,
}

impl CancelledOob {
    pub(crate) fn from_rows(rows: impl IntoIterator<Item = (String, Option<String>)>) -> Self {
        let mut c = CancelledOob::default();
        for (kind, provider_ref) in rows {
            c.count += 1;
            if kind == OobKind::Voice.as_str() {
                c.calls.extend(provider_ref);
            }
        }
        c
    }
}

impl OobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OobKind::Sms => "sms",
            OobKind::Voice => "voice",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "sms" => Some(OobKind::Sms),
            "voice" => Some(OobKind::Voice),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OobStatus {
    /// SMS sent and not yet answered, or call placed and not yet decided.
    Pending,
    Approved,
    Denied,
    Fraud,
    /// The provider could not deliver, the call was not answered, or time ran out.
    Failed,
}

impl OobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OobStatus::Pending => "pending",
            OobStatus::Approved => "approved",
            OobStatus::Denied => "denied",
            OobStatus::Fraud => "fraud",
            OobStatus::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => OobStatus::Pending,
            "approved" => OobStatus::Approved,
            "denied" => OobStatus::Denied,
            "fraud" => OobStatus::Fraud,
            "failed" => OobStatus::Failed,
            _ => return None,
        })
    }
}

/// Where the login that sent an SMS or placed a call came from, as its audit records say:
/// for the records its outcome writes later, on any node, with no request at hand (a fraud
/// report from the callee must name the attacker's station and NAS). All None in rows
/// written before these were kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoginOrigin {
    /// Calling-Station-Id, or the NAS address when there is none (`AuditRecord::client_ip`).
    pub client_ip: Option<String>,
    /// The address the request came from (`AuditRecord::nas_ip`).
    pub nas_ip: Option<String>,
    /// What the NAS calls itself (`AuditRecord::nas_identifier`).
    pub nas_identifier: Option<String>,
}

/// An SMS sent or a call placed for one RADIUS request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OobTransaction {
    /// Random, unguessable; appears in the provider callback URL.
    pub id: String,
    /// Identical for every retransmit of the request, on any node (see `pipeline::oob`).
    pub request_key: String,
    pub user: String,
    pub nas: String,
    pub kind: OobKind,
    /// E.164 number the SMS or call went to.
    pub phone: String,
    /// SMS: salt (16 bytes) ‖ HMAC-SHA256(salt, code). Never the code itself.
    pub code_hash: Option<Vec<u8>>,
    pub status: OobStatus,
    pub reason: Option<String>,
    /// The provider's id (Twilio's SID), for support cases.
    pub provider_ref: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    /// Boxed: a request's future holds a transaction across awaits, and its size is paid
    /// per request (`pipeline::tests::a_requests_future_stays_small`).
    pub origin: Box<LoginOrigin>,
}

/// Result of [`super::Store::begin_oob`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OobBegin {
    /// This caller owns the transaction: it sends the SMS or places the call.
    Created,
    /// A transaction for the same request exists (a retransmit reached another node, or the
    /// request is being answered again): do not send; follow this one.
    Existing(Box<OobTransaction>),
}

/// A second factor that passed through a client with `remember_second_factor_secs`: until
/// `expires_at`, the same user from the same station needs only the password there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RememberedLogin {
    pub user: String,
    /// The client's configured name.
    pub nas: String,
    /// The Calling-Station-Id of the login that passed; empty when it carried none.
    pub station: String,
    /// The second factor that passed: totp, hotp, sms, voice.
    pub mode: String,
    pub verified_at: i64,
    pub expires_at: i64,
}
