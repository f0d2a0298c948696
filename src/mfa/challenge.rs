//! The State attribute of an Access-Challenge: a fresh unguessable value per challenge.
//! The store keeps only its SHA-256, so a copy of the database cannot answer a challenge.

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::radius::reply_attr::ReplyAttr;

/// Bytes of randomness in a State (RFC 2865 leaves the size to us; ≥ 16 is the requirement).
pub const STATE_LEN: usize = 32;

pub fn new_state() -> Vec<u8> {
    let mut s = vec![0u8; STATE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut s);
    s
}

pub fn state_hash(state: &[u8]) -> Vec<u8> {
    Sha256::digest(state).to_vec()
}

/// What the first request carried that the follow-up may lack, kept with the challenge.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChallengeContext {
    pub client_ip: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    /// What this prompt waits for; absent (older challenges) means TOTP.
    #[serde(default)]
    pub method: Option<crate::mfa::method::Method>,
    /// The SMS or call transaction the prompt belongs to.
    #[serde(default)]
    pub oob: Option<String>,
    /// The E.164 number in use, so a switch or resend needs no directory search.
    #[serde(default)]
    pub phone: Option<String>,
    /// Methods the user may switch to at this prompt (allowed by the client and usable).
    #[serde(default)]
    pub methods: Vec<crate::mfa::method::Method>,
    /// The user's directory entry, for the client's group_attributes at the accept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dn: Option<String>,
    /// The user's name as the directory spells it, for `{user}` in group_filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What an upstream RADIUS server's Access-Accept granted at the password check, for
    /// the accept at the end of the prompt: (type, value in hex).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub granted: Vec<(u8, String)>,
    /// When the password was checked (Unix seconds): a resend or a switch of method opens
    /// a new prompt, and this bounds how long such a chain can go on without the password.
    /// Absent in prompts stored before it existed: their own creation time counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<i64>,
    /// The entry's other names (a multi-valued `uid`): their wrong answers count toward
    /// this name's lock, so that the names of one entry share one allowance of guesses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_names: Vec<String>,
    /// The client's allow_groups when the password was checked ([`groups_fingerprint`]):
    /// a reload that changes them sends the answer through the group check again, so a
    /// prompt opened before a group was taken away cannot finish under the old rule.
    /// Absent in prompts stored before it existed: not checked again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_groups: Option<String>,
    /// The addresses of the client entry the prompt was opened through, as they were then
    /// (CIDRs): an answer is taken only from an address they covered. An entry of the same
    /// name put in for another device (by a reload, or a restart no reload saw) does not
    /// finish the old one's prompts; a member added to a NAS cluster's entry, or the same
    /// addresses written otherwise, or a node whose file has not caught up, change nothing
    /// for the members that were there. Not the secret, whose rotation open prompts
    /// outlive. Absent in prompts stored before it existed: not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_addresses: Option<Vec<String>>,
    /// This login's earlier SMS transactions, before a "resend" (oldest first, at most
    /// [`EARLIER_SMS_KEPT`]): users type resend because the first text is slow, and then it
    /// arrives and is typed. Its code is taken until it expires, as the newest one is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier_sms: Vec<String>,
    /// A send limit refused a text or call asked for at this prompt. Texts and calls share
    /// the limits, so its re-prompts (all of them, not only the refusal's) offer no other
    /// text or call, and after the day's cap no resend either; typed, they are still tried.
    /// Absent in prompts stored before it existed, and where no limit was met.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sends_limited: Option<SendsLimited>,
    /// When that limit last refused (Unix seconds): the window's lapses a window later
    /// ([`ChallengeContext::sends_limited_now`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sends_limited_at: Option<i64>,
    /// This prompt's text was not confirmed by the provider (it may still come): its
    /// re-prompts say so too, not that a code was sent. Absent where it was confirmed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unconfirmed: bool,
}

/// What a prompt for `current` offers of `methods` after `limit` refused a text or call
/// at the login: no other text or call (they share the limits), and no resend past the
/// day's cap. Every prompt's hint goes through this, or one of them offered them again.
pub fn offered_under(
    limit: Option<SendsLimited>,
    methods: &[crate::mfa::method::Method],
    current: crate::mfa::method::Method,
) -> Vec<crate::mfa::method::Method> {
    use crate::mfa::method::Method;
    methods
        .iter()
        .copied()
        .filter(|m| match limit {
            None => true,
            Some(limit) => *m == Method::Totp || (*m == current && limit == SendsLimited::Window),
        })
        .collect()
}

/// Which send limit refused a text or call at a prompt ([`ChallengeContext::sends_limited`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SendsLimited {
    /// The window's (`[sms] max_per_user` and the others): waiting may bring sends back.
    Window,
    /// The day's cap: not before tomorrow.
    Day,
}

/// Earlier SMS transactions a prompt keeps: the per-user send limit (5 in 5 minutes by
/// default) stops a login sooner.
pub const EARLIER_SMS_KEPT: usize = 4;

/// A short fingerprint of a client's allow_groups (compared, never shown).
pub fn groups_fingerprint(groups: &[String]) -> String {
    let mut h = Sha256::new();
    for g in groups {
        h.update(g.to_ascii_lowercase().as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..16])
}

impl ChallengeContext {
    /// [`Self::sends_limited`] as it stands at `now`: the window's limit, refused at
    /// `sends_limited_at`, has lapsed once `window_secs` have passed (the prompt then offers
    /// texts and calls again: after "wait a few minutes, then try again" it never did,
    /// though they worked: review); the day's cap outlives any prompt.
    pub fn sends_limited_now(&self, now: i64, window_secs: i64) -> Option<SendsLimited> {
        match (self.sends_limited, self.sends_limited_at) {
            (Some(SendsLimited::Window), Some(at)) if now >= at.saturating_add(window_secs) => None,
            (limit, _) => limit,
        }
    }

    /// Whether `ip` may answer this prompt: covered by the entry's addresses when it was
    /// opened (or the prompt predates the record). An address that does not parse covers
    /// nothing.
    pub fn answerable_from(&self, ip: std::net::IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.client_addresses.as_ref().is_none_or(|nets| {
            nets.iter()
                .filter_map(|n| n.parse::<ipnet::IpNet>().ok())
                .any(|n| n.contains(&ip))
        })
    }

    /// The entry's addresses as [`ChallengeContext::client_addresses`] keeps them.
    pub fn addresses_of(networks: &[ipnet::IpNet]) -> Vec<String> {
        networks.iter().map(|n| n.to_string()).collect()
    }

    /// `granted` in the form it is kept in.
    pub fn keep_granted(attrs: &[ReplyAttr]) -> Vec<(u8, String)> {
        attrs
            .iter()
            .map(|a| (a.typ, hex::encode(&a.value)))
            .collect()
    }

    /// `granted` back as attributes; a value that is not hex (nothing radmfa wrote) is left
    /// out.
    pub fn granted(&self) -> Vec<ReplyAttr> {
        self.granted
            .iter()
            .filter_map(|(typ, v)| {
                Some(ReplyAttr {
                    typ: *typ,
                    value: hex::decode(v).ok()?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A prompt is answered from an address its entry covered when it was opened: any
    /// spelling of it, an IPv4-mapped one too; a prompt from before the record, from any.
    #[test]
    fn a_prompt_is_answered_from_the_addresses_it_was_opened_for() {
        let nets: Vec<ipnet::IpNet> = vec![
            "10.0.0.0/24".parse().unwrap(),
            "10.0.0.1/32".parse().unwrap(),
            "2001:db8::5/128".parse().unwrap(),
        ];
        let c = ChallengeContext {
            client_addresses: Some(ChallengeContext::addresses_of(&nets)),
            ..Default::default()
        };
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        for from in ["10.0.0.7", "::ffff:10.0.0.7", "2001:db8::5"] {
            assert!(c.answerable_from(ip(from)), "{from}");
        }
        for from in ["10.0.1.7", "2001:db8::6", "127.0.0.1"] {
            assert!(!c.answerable_from(ip(from)), "{from}");
        }
        assert!(ChallengeContext::default().answerable_from(ip("192.0.2.1")));
        // Kept and read back as the store keeps it.
        let back: ChallengeContext =
            serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert!(back.answerable_from(ip("10.0.0.200")));
        assert!(!back.answerable_from(ip("10.0.1.1")));
    }

    #[test]
    fn states_are_unique_and_long() {
        let a = new_state();
        let b = new_state();
        assert_eq!(a.len(), STATE_LEN);
        assert_ne!(a, b);
        assert_eq!(state_hash(&a).len(), 32);
        assert_ne!(state_hash(&a), a);
    }

    #[test]
    fn granted_attributes_survive_the_round_trip() {
        let attrs = vec![
            ReplyAttr {
                typ: 25,
                value: b"vpn".to_vec(),
            },
            ReplyAttr {
                typ: 8,
                value: vec![10, 0, 0, 7],
            },
        ];
        let ctx = ChallengeContext {
            granted: ChallengeContext::keep_granted(&attrs),
            ..Default::default()
        };
        let back: ChallengeContext =
            serde_json::from_str(&serde_json::to_string(&ctx).unwrap()).unwrap();
        assert_eq!(back.granted(), attrs);
        // Challenges written before the field existed read as none granted.
        let old: ChallengeContext = serde_json::from_str("{\"client_ip\":null}").unwrap();
        assert!(old.granted().is_empty());
    }
}
