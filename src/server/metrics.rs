//! Counters for what the server did with each datagram. Dropped packets are never answered,
//! so these counters are the only trace they leave; `radmfa serve` logs them at shutdown and a
//! metrics endpoint can export them later.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($name:ident),* $(,)?) => {
        #[derive(Debug, Default)]
        pub struct Metrics { $(pub $name: AtomicU64,)* }

        impl Metrics {
            /// (name, value) pairs, for logs and tests.
            pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name.load(Ordering::Relaxed)),)*]
            }
        }
    };
}

counters!(
    received,
    unknown_client,
    malformed,
    not_a_request,
    missing_message_authenticator,
    bad_message_authenticator,
    proxy_state_without_message_authenticator,
    duplicate_replayed,
    duplicate_in_flight,
    duplicate_mismatch,
    overloaded,
    deadline_exceeded,
    accepts,
    rejects,
    challenges,
    status_server,
);

impl Metrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self, name: &str) -> u64 {
        self.snapshot()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
            .unwrap_or(0)
    }
}
