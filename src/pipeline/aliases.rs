//! A directory entry may answer to several names (a multi-valued `uid`: `jdoe` and
//! `john.doe`). radmfa keys tokens, phones, blocks and lockouts by the name logged in with,
//! so each name would be a user of its own, and one that nobody enrolled has no second
//! factor: with `no_factor = "allow"` it would pass on the password alone, and a fraud block
//! on the enrolled name would not apply to it. So a name with no second-factor state of its
//! own, whose entry has another name that has some, is refused: log in as that one.

use super::second_factor::UserView;
use crate::app::AppState;
use crate::auth::UserInfo;
use crate::store::StoreError;

/// The entry's other name that holds second-factor state (tokens, a stored phone, a fraud
/// block) when the name logged in with (`user`, whose state is `view`) holds none.
pub async fn enrolled_under_another_name(
    app: &AppState,
    user: &str,
    view: &UserView,
    info: &UserInfo,
) -> Result<Option<String>, StoreError> {
    let own_state = !view.tokens.is_empty()
        || view.has_disabled_tokens
        || view.profile.phone.is_some()
        || view.profile.blocked_at.is_some();
    if own_state || info.other_names.is_empty() {
        return Ok(None);
    }
    let names = &app.config().user_names;
    for other in &info.other_names {
        let key = names.key(other);
        if key == user {
            continue;
        }
        let snap = app.store.user_snapshot(&key).await?;
        if !snap.tokens.is_empty()
            || snap.profile.phone.is_some()
            || snap.profile.blocked_at.is_some()
        {
            return Ok(Some(other.clone()));
        }
    }
    Ok(None)
}
