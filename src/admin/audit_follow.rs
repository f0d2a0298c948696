//! `radmfa audit --follow`: the matching records as they are written, until Ctrl-C or
//! SIGTERM. It reads the store, not a log file, so with PostgreSQL it shows every node's
//! logins in one place.

use std::collections::{BTreeSet, VecDeque};
use std::io::Write;
use std::time::{Duration, Instant};

use super::audit::Table;
use crate::store::audit_reader::AuditReader;
use crate::store::{AuditFilter, AuditRecord, StoreError};

/// How often the store is asked for new records.
const POLL: Duration = Duration::from_secs(1);
/// How long a record may take to become visible after a record with a larger id: on
/// PostgreSQL, ids are handed out at insert and transactions commit in any order, so a
/// record can appear after a later one was printed. Ids are re-read for this long.
const SETTLE: Duration = Duration::from_secs(5);
/// New records read per query; more are read at once in the next.
const BATCH: u32 = 1000;
/// The narrowest table column, for values not seen yet.
const MIN_WIDTH: usize = 12;

/// `shared`: the store is one several nodes write (PostgreSQL), so the table names the node.
pub async fn follow(
    store: &AuditReader,
    filter: AuditFilter,
    json: bool,
    shared: bool,
) -> anyhow::Result<()> {
    // First the last --limit records, oldest first, as `tail -f` does; with --limit 0 none,
    // as `tail -n 0 -f` (it printed the store's default 100). The newest ones are still
    // read, to start the window at them: shown or not, they are not new. The last written
    // (by id), so that every record above the window's floor is among them: taken by time,
    // a record stamped ahead kept the floor at its id, and each record written after it
    // was printed as new (2,035 old records for `--limit 0` in one store).
    let history = AuditFilter {
        limit: if filter.limit == 0 {
            BATCH
        } else {
            filter.limit
        },
        newest_by_id: true,
        ..filter.clone()
    };
    let mut first = store.audit(&history).await?;
    first.reverse();
    let shown = if filter.limit == 0 {
        &[][..]
    } else {
        &first[..]
    };
    let table = Table::fitting(shown)
        .with_server(shared)
        .at_least(MIN_WIDTH);
    let print = |r: &AuditRecord| -> std::io::Result<()> {
        let line = if json {
            super::json_printable(serde_json::to_string(r)?)
        } else {
            table.row(r)
        };
        writeln!(std::io::stdout(), "{line}")
    };
    if !json {
        println!("{}", table.header());
    }
    let first_ids: Vec<i64> = first.iter().map(|r| r.id).collect();
    let mut window = Window::starting_with(&first_ids, Instant::now());
    for r in shown {
        if print(r).is_err() {
            return Ok(());
        }
    }
    let stop = super::serve::StopSignals::catch().recv();
    tokio::pin!(stop);
    // A store that fails while followed (PostgreSQL restarting, a failover) is reported once
    // and asked again each second: the admin watching a login keeps watching.
    let mut failing = false;
    loop {
        match poll(store, &filter, &mut window, &print).await {
            // Whoever read our output has gone (`| head`): done, as `tail -f` would be.
            Err(Poll::Output(_)) => return Ok(()),
            Ok(()) if failing => {
                eprintln!("radmfa audit --follow: the store answers again");
                failing = false;
            }
            Ok(()) => {}
            Err(e) if !failing => {
                eprintln!("radmfa audit --follow: {e}; asking again every second");
                failing = true;
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = &mut stop => return Ok(()),
            _ = tokio::time::sleep(POLL) => {}
        }
        if output_gone() {
            return Ok(());
        }
    }
}

/// Whether whoever reads our standard output has gone (`| head` has exited): poll(2)
/// reports POLLERR on a pipe whose reader closed and POLLHUP on a hung-up terminal, without
/// writing; a file never. Without it, `--follow | head` would end only when one more record
/// arrived to fail writing. `tail -f` checks the same way.
fn output_gone() -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let stdout = std::io::stdout();
    let mut fds = [PollFd::new(&stdout, PollFlags::empty())];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    matches!(poll(&mut fds, Some(&now)), Ok(n) if n > 0)
        && fds[0].revents().intersects(PollFlags::ERR | PollFlags::HUP)
}

/// Why a poll stopped short.
#[derive(Debug, thiserror::Error)]
enum Poll {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("writing the records: {0}")]
    Output(std::io::Error),
}

/// Prints the records that arrived since the last poll, each once.
async fn poll(
    store: &AuditReader,
    filter: &AuditFilter,
    window: &mut Window,
    print: &impl Fn(&AuditRecord) -> std::io::Result<()>,
) -> Result<(), Poll> {
    loop {
        // Every id still settling comes back too; room for BATCH new ones besides.
        let limit = BATCH + window.seen.len() as u32;
        let rows = store
            .audit(&AuditFilter {
                after_id: Some(window.floor),
                limit,
                ..filter.clone()
            })
            .await?;
        for r in &rows {
            if window.seen.insert(r.id) {
                print(r).map_err(Poll::Output)?;
            }
        }
        if (rows.len() as u32) < limit {
            break;
        }
    }
    // Read after the records: every id up to it had been handed out when they were read,
    // so it settles like them. A store without it keeps the floor at the last match.
    let top = store.audit_top_id().await.ok();
    window.settle_to(Instant::now(), top);
    Ok(())
}

/// Which ids are settled (at or below `floor`: none can appear any more) and which of the
/// newer ones were printed.
struct Window {
    floor: i64,
    seen: BTreeSet<i64>,
    /// The largest id seen at each poll, to move `floor` up to once it is `SETTLE` old.
    polls: VecDeque<(Instant, i64)>,
}

impl Window {
    #[cfg(test)]
    fn new(floor: i64) -> Self {
        Window {
            floor,
            seen: BTreeSet::new(),
            polls: VecDeque::new(),
        }
    }

    /// After the first records shown (`ids`): they settle like any others, so a record
    /// with an id among theirs that commits a moment later is still shown (the floor starts
    /// below the first of them, not at the last).
    fn starting_with(ids: &[i64], now: Instant) -> Self {
        let mut w = Window {
            floor: ids.iter().min().map_or(0, |m| m - 1),
            seen: ids.iter().copied().collect(),
            polls: VecDeque::new(),
        };
        w.settle(now);
        w
    }

    fn settle(&mut self, now: Instant) {
        self.settle_to(now, None);
    }

    /// [`Window::settle`], where `table_top` is the largest id in the table when this poll
    /// read it: with a filter few records match (`--result lock`, a quiet user) the floor
    /// follows the table, not the last match (which may lie millions of rows back), so each
    /// poll reads from near the end instead of scanning all that lies after the match.
    fn settle_to(&mut self, now: Instant, table_top: Option<i64>) {
        let seen_top = self.seen.last().copied().unwrap_or(self.floor);
        let top = seen_top.max(table_top.unwrap_or(0));
        self.polls.push_back((now, top));
        while let Some(&(at, id)) = self.polls.front() {
            if now.duration_since(at) < SETTLE {
                break;
            }
            self.polls.pop_front();
            self.floor = self.floor.max(id);
        }
        let floor = self.floor;
        self.seen.retain(|&id| id > floor);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PostgreSQL hands ids out at insert and commits in any order: a record whose id lies
    /// among the first ones shown may commit just after they were read.
    #[test]
    fn a_record_committed_late_among_the_first_shown_is_shown() {
        let t0 = Instant::now();
        let mut w = Window::starting_with(&[10, 12], t0);
        assert!(w.floor < 11);
        assert!(w.seen.insert(11), "11 is new: printed");
        assert!(!w.seen.insert(12), "12 was shown already");
        w.settle(t0 + SETTLE);
        assert_eq!(w.floor, 12, "the first records settle like any");
        let empty = Window::starting_with(&[], t0);
        assert_eq!(empty.floor, 0);
    }

    #[test]
    fn ids_settle_after_the_window_and_are_forgotten() {
        let t0 = Instant::now();
        let mut w = Window::new(10);
        w.seen.extend([11, 12, 14]);
        w.settle(t0);
        assert_eq!(w.floor, 10, "nothing is settled at once");
        w.seen.insert(13); // committed late: still looked for
        w.settle(t0 + Duration::from_secs(2));
        assert_eq!(w.floor, 10);
        w.seen.insert(15);
        w.settle(t0 + SETTLE);
        assert_eq!(w.floor, 14, "the first poll's top is settled");
        assert_eq!(w.seen.iter().copied().collect::<Vec<_>>(), [15]);
        w.settle(t0 + SETTLE + Duration::from_secs(3));
        assert_eq!(w.floor, 14, "15 was first seen less than SETTLE ago");
        w.settle(t0 + SETTLE * 2);
        assert_eq!(w.floor, 15);
        assert!(w.seen.is_empty());
    }

    /// Nothing matches the filter, but the table grows: the floor follows the table's top
    /// once it has settled, so later queries start there.
    #[test]
    fn the_floor_follows_the_table_when_nothing_matches() {
        let t0 = Instant::now();
        let mut w = Window::starting_with(&[], t0);
        w.settle_to(t0 + Duration::from_secs(1), Some(5_000));
        assert_eq!(w.floor, 0, "not before it has settled");
        w.settle_to(t0 + Duration::from_secs(2), Some(9_000));
        w.settle_to(t0 + Duration::from_secs(1) + SETTLE, Some(9_500));
        assert_eq!(w.floor, 5_000);
        w.settle_to(t0 + Duration::from_secs(2) + SETTLE, None);
        assert_eq!(
            w.floor, 9_000,
            "a store without the top id changes nothing after"
        );
    }
}
