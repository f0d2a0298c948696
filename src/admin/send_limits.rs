//! What `user show` and `user unlock` say of the send limits (`[sms]`/`[voice]` texts and
//! calls): the user's own, and its number's, which other names' logins can fill. Two
//! accounts of one person, or colleagues at one desk phone, share a number; when one used
//! up its day, the other was refused "Try again tomorrow, or ask your administrator" while
//! `user show` said "no second-factor state" and `user unlock` "was not locked".

use crate::auth::UserInfo;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::store::{Store, UserProfile};

const DAY: i64 = 86_400;

/// Sends counted against one limit in its window, by the user whose login made them.
#[derive(Debug, Default)]
pub(super) struct Counted {
    pub day: u64,
    pub window: u64,
    /// By user (entry key; "" for an earlier release's sends), over the day.
    pub by: Vec<(String, u64)>,
}

impl Counted {
    fn any(&self) -> bool {
        self.day > 0 || self.window > 0
    }
}

/// The user's sends (under each of its entry's names' keys) and its number's.
#[derive(Debug, Default)]
pub(super) struct SendState {
    pub own: Counted,
    /// The number logins would text and call, with its sends.
    pub number: Option<(String, Counted)>,
}

/// The number a login would text or call: the stored one, or the directory's, as
/// `[phone] sources` orders them.
pub(super) fn number_of(
    cfg: &Config,
    profile: &UserProfile,
    entry: Option<&UserInfo>,
) -> Option<String> {
    let none = UserInfo::default();
    crate::delivery::phone::phone_from(&cfg.delivery.phone, profile, entry.unwrap_or(&none))
        .map(|(_, p)| p)
}

async fn counted(store: &dyn Store, keys: &[String], window: i64) -> anyhow::Result<Counted> {
    let now = SystemClock.now();
    let mut c = Counted::default();
    for key in keys {
        let day = store.sends_since(key, now - DAY, now).await?;
        c.day += day.iter().map(|(_, n)| n).sum::<u64>();
        c.window += store
            .sends_since(key, now - window, now)
            .await?
            .iter()
            .map(|(_, n)| n)
            .sum::<u64>();
        for (who, n) in day {
            match c.by.iter_mut().find(|(w, _)| *w == who) {
                Some(e) => e.1 += n,
                None => c.by.push((who, n)),
            }
        }
    }
    Ok(c)
}

/// Forgets the sends under `key` ([`Store::forget_sends`]) and returns how many of them
/// counted: those of the last day. An older one that housekeeping has not purged yet (it
/// keeps them 25 hours) counted against no limit, and was said forgotten with the rest.
pub(super) async fn forget_counted(store: &dyn Store, key: &str) -> anyhow::Result<u64> {
    let now = SystemClock.now();
    let counted = store.sends_since(key, now - DAY, now).await?;
    store.forget_sends(key).await?;
    Ok(counted.iter().map(|(_, n)| n).sum())
}

/// `names`: the store keys of the user and of its entry's other names.
pub(super) async fn read(
    cfg: &Config,
    store: &dyn Store,
    names: &[String],
    number: Option<String>,
) -> anyhow::Result<SendState> {
    let window = cfg.delivery.send_limits.window.as_secs() as i64;
    let keys: Vec<String> = names.iter().map(|n| format!("user-day:{n}")).collect();
    // Each send has a `user:` and a `user-day:` event at one time: the latter, counted
    // over the window, is the window's count.
    let own = counted(store, &keys, window).await?;
    let number = match number {
        Some(p) => {
            let c = counted(store, &[format!("phone-day:{p}")], window).await?;
            Some((p, c))
        }
        None => None,
    };
    Ok(SendState { own, number })
}

/// Whether `c` is at either limit: the next send is refused.
pub(super) fn full(cfg: &Config, c: &Counted) -> bool {
    let l = &cfg.delivery.send_limits;
    c.day >= u64::from(l.max_per_user_per_day) || c.window >= u64::from(l.max_per_user)
}

impl SendState {
    /// Anything for `user show` to say.
    pub fn any(&self, cfg: &Config) -> bool {
        self.own.any() || self.number.as_ref().is_some_and(|(_, c)| full(cfg, c))
    }
}

/// "alice 6, bob 1": whose logins made a number's sends.
pub(super) fn by_whom(by: &[(String, u64)]) -> String {
    by.iter()
        .map(|(who, n)| match who.as_str() {
            "" => format!("an earlier release's {n}"),
            w => format!("{} {n}", super::printable(w)),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `user show`'s lines (text).
pub(super) fn lines(cfg: &Config, user: &str, s: &SendState) -> Vec<String> {
    let l = &cfg.delivery.send_limits;
    let counts = |c: &Counted| {
        format!(
            "{} of {} a day, {} of {} per {} s",
            c.day,
            l.max_per_user_per_day,
            c.window,
            l.max_per_user,
            l.window.as_secs()
        )
    };
    let mut out = Vec::new();
    if s.own.any() {
        out.push(format!(
            "sends:    {} (texts and calls){}",
            counts(&s.own),
            if full(cfg, &s.own) {
                format!(
                    ": refused until the oldest leaves its window; `radmfa user unlock {}` \
                     forgets them",
                    super::shell_arg(user)
                )
            } else {
                String::new()
            }
        ));
    }
    if let Some((phone, c)) = &s.number {
        if c.any() {
            out.push(format!(
                "number:   {phone}: {} (by {}){}",
                counts(c),
                by_whom(&c.by),
                if full(cfg, c) {
                    format!(
                        ": texts and calls to it are refused; `radmfa user unlock {}` forgets \
                         them in the number's limits",
                        super::shell_arg(user)
                    )
                } else {
                    String::new()
                }
            ));
        }
    }
    out
}

/// `user show --json`'s fields.
pub(super) fn json(cfg: &Config, s: &SendState) -> serde_json::Value {
    let counted = |c: &Counted| {
        serde_json::json!({
            "day": c.day, "window": c.window, "refused": full(cfg, c),
            "by": c.by.iter().map(|(w, n)| serde_json::json!({ "user": w, "sends": n }))
                .collect::<Vec<_>>(),
        })
    };
    serde_json::json!({
        "own": counted(&s.own),
        "number": s.number.as_ref().map(|(p, c)| {
            let mut v = counted(c);
            v["phone"] = serde_json::json!(p);
            v
        }),
    })
}
