//! Making a quick refusal take about as long as the slower one it could be told apart from.
//!
//! An unknown user costs the directory a search but no bind; an enrolled user on an inline
//! client who typed no code is refused before the directory is asked at all. Answered at
//! once, either would tell a caller which names exist (or have a token). So such a refusal
//! sleeps for about as long as the work it skipped recently took: a moving average of it,
//! ±25 % jitter, under a cap.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::Rng;

/// Pads shorter than this sleep on a blocking-pool thread (precise to the microsecond);
/// longer ones on tokio's timer, whose millisecond ticks matter little against them. A 300
/// µs bind imitated by tokio's timer would take 1-2 ms, and make the padded path *slower*.
const PRECISE_BELOW: Duration = Duration::from_millis(5);

/// Precise pads sleeping at once, each on a blocking-pool thread. A flood of refusals must
/// not fill that pool (512 threads, shared with SQLite and the app-password hash); past this
/// many, pads take tokio's timer, which under such load is no worse than the noise around it.
const PRECISE_AT_ONCE: usize = 64;

/// A blocking thread's slot for a pad this short, if one of `slots` is free.
fn precise_slot(
    slots: &std::sync::Arc<tokio::sync::Semaphore>,
    pad: Duration,
) -> Option<tokio::sync::OwnedSemaphorePermit> {
    if pad < PRECISE_BELOW {
        slots.clone().try_acquire_owned().ok()
    } else {
        None
    }
}

fn precise_slots() -> &'static std::sync::Arc<tokio::sync::Semaphore> {
    static SLOTS: std::sync::OnceLock<std::sync::Arc<tokio::sync::Semaphore>> =
        std::sync::OnceLock::new();
    SLOTS.get_or_init(|| std::sync::Arc::new(tokio::sync::Semaphore::new(PRECISE_AT_ONCE)))
}

/// The moving average of one kind of work, and a sleep that imitates it.
#[derive(Debug, Default)]
pub struct Pad {
    /// Microseconds; 0 = no sample yet.
    avg_us: AtomicU64,
}

impl Pad {
    /// One more sample of the work's duration (weight 1/8).
    pub fn record(&self, sample: Duration) {
        let sample = sample.as_micros().min(u64::MAX as u128) as u64;
        let old = self.avg_us.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample.max(1)
        } else {
            (old - old / 8 + sample / 8).max(1)
        };
        self.avg_us.store(new, Ordering::Relaxed);
    }

    /// Whether the work has been timed at least once.
    pub fn has_sample(&self) -> bool {
        self.avg_us.load(Ordering::Relaxed) != 0
    }

    /// Sleeps about as long as the work takes, at most `cap`; not at all before a sample.
    pub async fn sleep(&self, cap: Duration) {
        self.sleep_or(Duration::ZERO, cap).await
    }

    /// [`Pad::sleep`], taking `fallback` for the work's time while there is no sample yet
    /// (after a start or a reload, until the work is first done).
    pub async fn sleep_or(&self, fallback: Duration, cap: Duration) {
        self.sleep_rest_or(fallback, Duration::ZERO, cap).await
    }

    /// What is left of [`Pad::sleep`] after `spent` went on other work already: a floor
    /// under that work's time. Not at all before a sample.
    pub async fn sleep_rest(&self, spent: Duration, cap: Duration) {
        self.sleep_rest_or(Duration::ZERO, spent, cap).await
    }

    async fn sleep_rest_or(&self, fallback: Duration, spent: Duration, cap: Duration) {
        let avg = match self.avg_us.load(Ordering::Relaxed) {
            0 => fallback.as_micros().min(u64::MAX as u128) as u64,
            avg => avg,
        };
        if avg == 0 {
            return;
        }
        // avg * 3 / 4 and avg + avg / 4 without overflow, for any average.
        let jittered = rand::thread_rng().gen_range(avg / 4 * 3..=avg.saturating_add(avg / 4));
        let pad = Duration::from_micros(jittered)
            .min(cap)
            .saturating_sub(spent);
        if pad.is_zero() {
            return;
        }
        match precise_slot(precise_slots(), pad) {
            Some(slot) => {
                let _ = tokio::task::spawn_blocking(move || {
                    let _slot = slot;
                    std::thread::sleep(pad)
                })
                .await;
            }
            None => tokio::time::sleep(pad).await,
        }
    }
}

/// A [`Pad`] per name (an upstream group), made on first use.
#[derive(Default)]
pub struct PadsByName {
    pads: std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<Pad>>>,
}

impl PadsByName {
    pub fn get(&self, name: &str) -> std::sync::Arc<Pad> {
        let mut pads = self.pads.lock().unwrap_or_else(|p| p.into_inner());
        pads.entry(name.to_string()).or_default().clone()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_name_has_its_own_average() {
        let pads = super::PadsByName::default();
        pads.get("fast").record(std::time::Duration::from_millis(2));
        pads.get("slow")
            .record(std::time::Duration::from_millis(50));
        assert!(std::sync::Arc::ptr_eq(&pads.get("fast"), &pads.get("fast")));
        let avg = |n: &str| {
            pads.get(n)
                .avg_us
                .load(std::sync::atomic::Ordering::Relaxed)
        };
        assert_eq!((avg("fast"), avg("slow"), avg("new")), (2_000, 50_000, 0));
    }

    #[tokio::test]
    async fn the_rest_is_slept_after_work_already_spent() {
        let pad = super::Pad::default();
        pad.record(std::time::Duration::from_millis(200));
        let cap = std::time::Duration::from_secs(1);
        let t = std::time::Instant::now();
        pad.sleep_rest(std::time::Duration::from_millis(140), cap)
            .await;
        let slept = t.elapsed();
        // 150-250 ms in all, 140 of them spent before: 10-110 ms left. Not subtracting
        // what was spent would sleep at least 150, so the two ranges cannot meet.
        assert!(
            slept >= std::time::Duration::from_millis(5)
                && slept < std::time::Duration::from_millis(145),
            "{slept:?}"
        );
        let t = std::time::Instant::now();
        pad.sleep_rest(std::time::Duration::from_millis(400), cap)
            .await;
        assert!(
            t.elapsed() < std::time::Duration::from_millis(20),
            "nothing left"
        );
    }

    #[tokio::test]
    async fn before_a_sample_the_fallback_is_slept() {
        let pad = super::Pad::default();
        let cap = std::time::Duration::from_secs(1);
        let t = std::time::Instant::now();
        pad.sleep_or(std::time::Duration::from_millis(40), cap)
            .await;
        // ±25 % jitter around 40 ms.
        assert!(
            t.elapsed() >= std::time::Duration::from_millis(30),
            "{:?}",
            t.elapsed()
        );
        pad.record(std::time::Duration::from_millis(1));
        let t = std::time::Instant::now();
        pad.sleep_or(std::time::Duration::from_millis(400), cap)
            .await;
        assert!(
            t.elapsed() < std::time::Duration::from_millis(200),
            "the sample wins"
        );
    }

    /// Short pads take a blocking thread only while one of PRECISE_AT_ONCE slots is free;
    /// the rest, and long pads, sleep on tokio's timer.
    #[test]
    fn short_pads_take_at_most_the_precise_slots() {
        let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(super::PRECISE_AT_ONCE));
        let short = std::time::Duration::from_millis(1);
        let held: Vec<_> = (0..super::PRECISE_AT_ONCE)
            .map(|_| super::precise_slot(&slots, short).expect("a free slot"))
            .collect();
        assert!(super::precise_slot(&slots, short).is_none(), "all taken");
        drop(held);
        assert!(super::precise_slot(&slots, short).is_some(), "given back");
        let long = std::time::Duration::from_millis(20);
        assert!(super::precise_slot(&slots, long).is_none(), "tokio's timer");
    }

    /// Every pad still sleeps about its time when no precise slot is free.
    #[tokio::test]
    async fn with_no_precise_slot_free_a_pad_still_sleeps() {
        let pad = super::Pad::default();
        pad.record(std::time::Duration::from_millis(4));
        let all = super::precise_slots()
            .clone()
            .acquire_many_owned(super::PRECISE_AT_ONCE as u32)
            .await
            .unwrap();
        let t = std::time::Instant::now();
        pad.sleep(std::time::Duration::from_secs(1)).await;
        assert!(t.elapsed() >= std::time::Duration::from_millis(3));
        drop(all);
    }

    use super::*;
    use std::time::Instant;

    #[tokio::test]
    async fn sleeps_about_as_long_as_the_work_took() {
        // Wide margins: a loaded CI machine can pause a thread for tens of milliseconds.
        let pad = Pad::default();
        let t = Instant::now();
        pad.sleep(Duration::from_secs(1)).await;
        // Tighter than the margins below: a default pad of 100 ms would otherwise pass.
        assert!(
            t.elapsed() < Duration::from_millis(50),
            "no sample, no sleep"
        );
        for _ in 0..4 {
            pad.record(Duration::from_millis(200));
        }
        let t = Instant::now();
        pad.sleep(Duration::from_secs(1)).await;
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(150), "{took:?}");
        let t = Instant::now();
        pad.sleep(Duration::from_millis(2)).await;
        assert!(t.elapsed() < Duration::from_millis(100), "capped");
    }
}
