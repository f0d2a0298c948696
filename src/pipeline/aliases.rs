//! A directory entry may answer to several names (a multi-valued `uid`: `jdoe` and
//! `john.doe`). radmfa keys tokens, phones, blocks and lockouts by the name logged in with,
//! so each name would be a user of its own, and one that nobody enrolled has no second
//! factor: with `no_factor = "allow"` it would pass on the password alone, and a fraud block
//! on the enrolled name would not apply to it. So a name with no second-factor state of its
//! own, whose entry has another name that has some, is refused: log in as that one.

use super::Verdict;
use crate::app::AppState;
use crate::auth::UserInfo;
use crate::radius::Reply;
use crate::store::{StoreError, UserProfile};

/// Whether a user with (enabled or disabled) tokens or not, and this profile, has
/// second-factor state of their own.
pub fn holds_state(has_tokens: bool, profile: &UserProfile) -> bool {
    has_tokens || profile.phone.is_some() || profile.blocked_at.is_some()
}

/// Why a login is refused, or treated as locked, for another name of its entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OtherName {
    /// That name holds the second factor (tokens, a stored phone, a fraud block), and this
    /// one holds none.
    Enrolled(String),
    /// That name is locked for wrong codes. Both names may reach the same factor (the
    /// directory's mobile number, which is nobody's stored state): without this, each name
    /// would bring its own allowance of guesses, and a locked user would still get codes
    /// sent under the other name.
    Locked(String),
    /// That name is blocked by a fraud report, and this one has state of its own: the
    /// report was about the person, whichever name they log in with.
    Blocked(String),
}

/// The entry's other names that are names of this entry to radmfa, with their store keys:
/// not `user` itself, each once, and not a value a listed domain was taken off. Such a
/// value (`alice@corp.example.org` as bob's userPrincipalName) logs in as whichever account
/// its bare name (`alice`) is, so it is that account's name, not this entry's.
pub fn entry_names(app: &AppState, user: &str, other_names: &[String]) -> Vec<(String, String)> {
    entry_names_of(&app.config().user_names, user, other_names)
}

/// [`entry_names`] under `names` (`[users]`), for the admin commands, which have no
/// [`AppState`].
pub fn entry_names_of(
    names: &crate::config::UserNames,
    user: &str,
    other_names: &[String],
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for other in other_names {
        let key = names.key(other);
        let stripped = key != crate::store::user_key(other.trim());
        if key != user && !stripped && !out.iter().any(|(_, k)| *k == key) {
            out.push((other.clone(), key));
        }
    }
    out
}

/// The entry's other name that holds second-factor state while `user` (`own_state` from
/// [`holds_state`]) holds none, or that is blocked or locked now.
pub async fn enrolled_under_another_name(
    app: &AppState,
    user: &str,
    own_state: bool,
    info: &UserInfo,
) -> Result<Option<OtherName>, StoreError> {
    other_names_standing(app, user, own_state, &info.other_names).await
}

/// [`enrolled_under_another_name`] from the names alone. Every name is read before
/// deciding: a block under one must not hide behind a lock under another (a lock lets
/// exempt groups, exempt networks and a bypass through).
async fn other_names_standing(
    app: &AppState,
    user: &str,
    own_state: bool,
    other_names: &[String],
) -> Result<Option<OtherName>, StoreError> {
    if other_names.is_empty() {
        return Ok(None);
    }
    let now = app.clock.now();
    let (mut blocked, mut locked) = (None, None);
    for (other, key) in entry_names(app, user, other_names) {
        let snap = app.store.user_snapshot(&key).await?;
        if !own_state && holds_state(!snap.tokens.is_empty(), &snap.profile) {
            return Ok(Some(OtherName::Enrolled(other)));
        }
        if snap.profile.blocked_at.is_some() {
            blocked.get_or_insert(OtherName::Blocked(other));
        } else if snap.status.locked_until.is_some_and(|until| until > now) {
            locked.get_or_insert(OtherName::Locked(other));
        }
    }
    Ok(blocked.or(locked))
}

/// The entry's other name that is blocked by a fraud report, if one is (for logins that
/// skip the second factor's state but not a block: app passwords).
pub async fn blocked_under_another_name(
    app: &AppState,
    user: &str,
    other_names: &[String],
) -> Result<Option<String>, StoreError> {
    for (other, key) in entry_names(app, user, other_names) {
        if app.store.user_profile(&key).await?.blocked_at.is_some() {
            return Ok(Some(other));
        }
    }
    Ok(None)
}

/// The answer to a login under a name whose entry's second factor is under `other`.
pub fn refused(other: String, info: UserInfo) -> Verdict {
    Verdict::reject(format!(
        "the directory entry is also named {other:?}, whose second factor this name would go \
         without"
    ))
    .with_info(Some(info))
    .with_reply(
        Reply::reject()
            .with_message("Log in with the user name your second factor is enrolled under."),
    )
}

/// The answer to a login whose entry is blocked under its other name `other`.
pub fn blocked_as(other: &str, info: UserInfo) -> Verdict {
    Verdict::reject(blocked_reason(other))
        .with_info(Some(info))
        .with_reply(Reply::reject().with_message(super::methods::BLOCKED_MESSAGE))
}

/// The audit reason of a refusal for a block under the entry's other name.
pub fn blocked_reason(other: &str) -> String {
    format!("user blocked under the entry's other name {other:?}")
}

/// The audit reason of a refusal for a lock: the name's own, or (`locked_as`) another
/// name's of its entry. Such a lock is checked where the name's own is, so exempt groups,
/// exempt networks and a bypass apply as they would to a locked user.
pub fn locked_reason(locked_as: Option<&str>) -> String {
    match locked_as {
        None => "second factor locked".into(),
        Some(other) => format!("second factor locked under the entry's other name {other:?}"),
    }
}

/// The entry's other name that is locked or blocked now, if one is. Asked when an open
/// prompt is answered: the names share one allowance of guesses and reach the same phone,
/// so a lock or a block that landed on the other name since the prompt opened ends this
/// name's prompts as its own would (and no more codes go out, nor calls ring, from them).
pub async fn stopped_under_another_name(
    app: &AppState,
    user: &str,
    other_names: &[String],
) -> Result<Option<OtherName>, StoreError> {
    // A prompt is open, so this name holds what it needs: only blocks and locks count.
    other_names_standing(app, user, true, other_names).await
}

/// One key for the whole directory entry, whichever of its names the login came under: the
/// least store key among `user` (a store key) and the entry's names ([`entry_names`]).
/// For what is counted per person rather than per name: the SMS and call limit, which both
/// names would otherwise get in full, to the same directory mobile number.
pub fn entry_key(app: &AppState, user: &str, other_names: &[String]) -> String {
    entry_names(app, user, other_names)
        .into_iter()
        .map(|(_, key)| key)
        .chain(std::iter::once(user.to_string()))
        .min()
        .unwrap_or_else(|| user.to_string())
}
