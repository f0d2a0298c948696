//! The primary factor: is this the user's password? `LdapAuth` answers it against
//! LDAP/Active Directory; `upstream` asks another RADIUS server, for clients that say so
//! (the directory then still supplies the user's entry).

pub mod ad_codes;
pub mod ldap;
mod ldap_cache;
mod ldap_check;
mod ldap_conn;
mod ldap_diagnose;
mod ldap_entry;
mod ldap_groups;
pub(crate) mod ldap_hints;
pub mod ldap_now;
mod ldap_pool;
mod ldap_return;
mod ldap_service_hold;
mod ldap_tls;
mod no_directory;
mod ppolicy;
pub mod upstream;
mod upstream_health;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::secret::Secret;

pub use ldap::LdapAuth;
pub use ldap_check::ServerCheck;
pub use ldap_groups::{membership_attributes, GroupView};
pub use no_directory::directory;

/// What the directory told us about a user, read during the search. Names of the LDAP
/// attributes are configurable (`[ldap.attributes]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    pub dn: String,
    pub display_name: Option<String>,
    pub given_name: Option<String>,
    pub surname: Option<String>,
    pub mail: Option<String>,
    pub mobile: Option<String>,
    pub telephone: Option<String>,
    /// The user's name as the directory spells it (the attribute `user_filter` matches):
    /// posixGroup's memberUid compares case exactly, and the name typed (or its case-folded
    /// key) may differ in case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The entry's other values of that attribute (`uid: jdoe` and `uid: john.doe`): names
    /// the directory finds this same person by, which radmfa would key apart.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_names: Vec<String>,
    /// The entry's own identity, which outlives renames and is never reused: `entryUUID`
    /// (RFC 4530: OpenLDAP, 389 DS), `objectGUID` (Active Directory, Samba, in hex) or
    /// `nsUniqueId`, as `attribute:value`. A DN is not that: a leaver's entry deleted and a
    /// new hire's made under the same name get the same DN. None when the directory shows
    /// none of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_id: Option<String>,
    /// Attributes an upstream RADIUS server's Access-Accept granted (`[upstream]
    /// pass_through`), for radmfa's Access-Accept. Carried with a challenge, not here.
    #[serde(skip)]
    pub granted: Vec<crate::radius::reply_attr::ReplyAttr>,
}

/// Why a password check said no. A decision, not a fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    UnknownUser,
    EmptyPassword,
    BadPassword,
    /// The User-Password did not decode as text, which a directory client's passwords
    /// must be: most often the NAS hides it with another shared secret than this client
    /// entry's (with no Message-Authenticator to show that first).
    PasswordNotText,
    /// The search matched more than one entry: refuse rather than guess.
    AmbiguousUser,
    /// Active Directory said why (sub-code from the bind error text).
    Directory(ad_codes::AdReason),
    /// This upstream RADIUS server (its name in the file) answered Access-Reject.
    UpstreamReject(String),
    /// The upstream server accepted the password, but the directory has no such user.
    NotInDirectory,
    /// The password binds, but the directory's password policy says it must be changed
    /// first: an admin reset it (not yet the user's password), or it expired and the bind
    /// was one of its grace logins (meant for changing it).
    MustChangePassword,
    /// A directory other than AD refused this account's bind for its state, with a result
    /// code of its own: 389-ds/FreeIPA answer a policy lockout with 19 (constraintViolation,
    /// "Exceed password retry limit") and an inactivated account with 53
    /// (unwillingToPerform), as eDirectory does a disabled or expired one. The directory's
    /// own words, shortened, for the audit record. OpenLDAP's ppolicy answers a locked
    /// account and an expired password with 49 and says which in the password policy
    /// control (its words are radmfa's then).
    AccountRefused {
        rc: u32,
        text: String,
    },
    /// OpenSSH's placeholder for a password it will not let PAM check (see
    /// `pipeline::primary::SSH_PLACEHOLDER`): refused without asking anyone.
    SshPlaceholder,
}

impl Denial {
    /// Short reason for the audit record.
    pub fn reason(&self) -> String {
        match self {
            Denial::UnknownUser => "unknown user".into(),
            Denial::EmptyPassword => "empty password".into(),
            Denial::BadPassword => "bad password".into(),
            // `login` adds the likelier cause, which depends on the request.
            Denial::PasswordNotText => "the password did not decode as text (UTF-8)".into(),
            Denial::AmbiguousUser => "user filter matched several entries".into(),
            Denial::Directory(r) => r.to_string(),
            // Which server: its own log says why, and with several, the admin must know
            // whose log to read.
            Denial::UpstreamReject(server) => {
                format!("rejected by the upstream RADIUS server {server}")
            }
            Denial::NotInDirectory => {
                "password accepted upstream, but the user is not in the directory".into()
            }
            Denial::AccountRefused { rc, text } => {
                format!("the directory refused this account's bind (LDAP result {rc}: {text})")
            }
            Denial::MustChangePassword => {
                "the directory's password policy says this password must be changed first \
                 (reset by an admin, or expired and let in on a grace login)"
                    .into()
            }
            Denial::SshPlaceholder => "the SSH server sent its placeholder password: no local \
                 account for this name on the SSH host, or sshd refused it (the directory was \
                 not asked)"
                .into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
// Made once per login and moved a few times: boxing the entry would cost an allocation on
// every accepted password to save copying 200-odd bytes.
#[allow(clippy::large_enum_variant)]
pub enum PrimaryOutcome {
    Accepted(UserInfo),
    Denied(Denial),
}

/// The backend failed; the policy stage turns this into a reject, never an accept.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no LDAP server reachable: {0}")]
    Unavailable(String),
    #[error("LDAP operation timed out after {0} ms")]
    Timeout(u64),
    /// A server was reached, and the connection ended (closed or reset) before a search's
    /// answer came, on a new connection or a second time.
    #[error("{url}: the directory's answer to the search was lost ({cause})")]
    SearchAnswerLost { url: String, cause: String },
    /// A user's bind was handed to a connection that ended before its answer came: it may
    /// have reached the directory, so it is not asked again (see `LdapAuth::bind_on_pooled`).
    #[error(
        "{url}: the directory's answer to the user's bind was lost ({cause}): not asked \
         again, as the bind may have counted towards the account's lockout"
    )]
    BindAnswerLost { url: String, cause: String },
    /// A user's bind got no answer within `op_timeout_ms`: as with [`Self::BindAnswerLost`],
    /// it may have reached the directory and counted towards the account's lockout.
    #[error("LDAP operation timed out after {0} ms")]
    BindTimeout(u64),
    #[error("service account bind failed: {0}")]
    ServiceBind(String),
    #[error("LDAP error: {0}")]
    Ldap(String),
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("upstream RADIUS: {0}")]
    Upstream(String),
    /// A configured group's entry is not in the directory (a typo, a group renamed or
    /// moved). Nobody is its member for allow_groups and exempt_groups; a login whose
    /// group_attributes name it is refused (see `pipeline::accept_attributes`).
    #[error("group {0} is not in the directory")]
    NoSuchGroup(String),
    /// A failure met in a step that is not the login's own search or bind: `what` names
    /// the step (a group's search: which group), so that the audit reason "timed out"
    /// says of what.
    #[error("{what}: {cause}")]
    During { what: String, cause: Box<AuthError> },
}

tokio::task_local! {
    /// The login's user binds sent and not answered yet (see [`BindOut`]), read by the
    /// pipeline when its deadline cuts the login short.
    pub static BINDS_OUT: std::sync::Arc<std::sync::atomic::AtomicU32>;
}

/// A user's bind on its way to the directory, counted in the login's [`BINDS_OUT`] from
/// just before it is sent until its answer comes. Dropped unanswered (the request's
/// deadline dropped the login mid-bind, or the bind timed out), it stays counted: the
/// password may have reached the directory and counted towards the account's lockout, so a
/// `no_reply` client's retransmit must not bind it again.
pub struct BindOut(Option<std::sync::Arc<std::sync::atomic::AtomicU32>>);

impl BindOut {
    pub fn sent() -> Self {
        let counter = BINDS_OUT.try_with(|c| c.clone()).ok();
        if let Some(c) = &counter {
            c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        BindOut(counter)
    }

    /// Its answer came (or it was surely never sent).
    pub fn answered(self) {
        if let Some(c) = &self.0 {
            c.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

impl AuthError {
    /// The user's password reached a directory server that gave no answer (its bind timed
    /// out, or its answer was lost): the server may be slow rather than down, and have
    /// counted the try. A `no_reply` client's retransmits of the request then get silence
    /// rather than the password bound again (`pipeline::answer`).
    pub fn password_unanswered(&self) -> bool {
        matches!(
            self,
            AuthError::BindTimeout(_) | AuthError::BindAnswerLost { .. }
        )
    }
}

#[async_trait]
pub trait PrimaryAuth: Send + Sync + 'static {
    /// Search the user, then bind as them with `password`.
    async fn authenticate(
        &self,
        user: &str,
        password: &Secret,
    ) -> Result<PrimaryOutcome, AuthError>;
    /// Search only: does the user exist (used by second-factor-only clients).
    async fn lookup(&self, user: &str) -> Result<Option<UserInfo>, AuthError>;
    /// [`lookup`](Self::lookup), with the entry's lasting identity ([`UserInfo::entry_id`])
    /// where the directory shows one: for what stays with an entry (app passwords). Asked
    /// for only there: the operational attributes cost the directory about a fifth more
    /// per search, measured on slapd.
    async fn lookup_with_identity(&self, user: &str) -> Result<Option<UserInfo>, AuthError> {
        self.lookup(user).await
    }
    /// Takes about as long as [`authenticate`](Self::authenticate) with a wrong password,
    /// without a bind: for a refusal that must not be told apart by its time from one the
    /// directory made (an unknown user), and that must not count against the account's
    /// lockout there. Its errors are the check's: a directory that fails a check must fail
    /// this too, or a client that gets no reply when the directory is down (`no_reply`)
    /// would hear a Reject for enrolled users only, and silence for everyone else.
    async fn imitate_check(&self, user: &str) -> Result<(), AuthError> {
        let _ = user;
        Ok(())
    }
    /// Is the user (`info` from authenticate or lookup) a member of the group `group_dn`?
    /// A group the directory does not have has no members.
    async fn is_member(
        &self,
        user: &str,
        info: &UserInfo,
        group_dn: &str,
    ) -> Result<bool, AuthError>;
    /// Forgets a refusal that holds tries off (a reload: the admin may have fixed the
    /// account in the directory, with nothing in radmfa's config to change).
    fn forget_refusals(&self) {}
    /// `serve`'s check at start: each server tried as `config check --connect` tries it,
    /// a warning for each that fails (the directory's; nothing to check without one).
    async fn warn_at_start(&self) {}
    /// Empties the directory's entry cache (a reload); `false` when there is none.
    fn empty_entry_cache(&self) -> bool {
        false
    }
    /// Each directory server's URL, and whether it answered the last operation asked of it
    /// (or has not been asked yet): `radmfa_ldap_answering`. None without a directory.
    fn servers_answering(&self) -> Vec<(String, bool)> {
        Vec::new()
    }
}
