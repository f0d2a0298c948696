//! Where the log's lines go: stderr, and a line stderr will not take is dropped and counted,
//! never the end of the thread that logged it.
//!
//! With stderr on a full disk (`radmfa serve >>/var/log/radmfa.log 2>&1`), or a pipe into
//! a log shipper that died, the write fails (ENOSPC, EPIPE: Rust ignores SIGPIPE).
//! tracing-subscriber then says so with `eprintln!`, which panics when stderr fails: every
//! request's audit line panicked its task (no reply, no audit record, yet its TOTP step
//! used), and the store's writer thread died at its own warning, refusing every later
//! login until a restart. Losing the line is the lesser harm: the audit table still has
//! the login, and `radmfa_log_lines_lost_total` says that lines went missing.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};

use tracing_subscriber::fmt::MakeWriter;

/// Log lines stderr refused since the start (`radmfa_log_lines_lost_total`). A static:
/// logging starts before the server's metrics exist, and the admin commands share it.
static LINES_LOST: AtomicU64 = AtomicU64::new(0);

/// Log lines lost so far.
pub fn lines_lost() -> u64 {
    LINES_LOST.load(Ordering::Relaxed)
}

/// stderr for tracing-subscriber's fmt layer, which writes each event with one `write_all`.
pub struct Stderr;

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter
    }
}

/// Writes one event's line; a failure is counted and reported as success, so that
/// tracing-subscriber has nothing to print about it.
pub struct LineWriter;

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        // Locked, so that a line is not interleaved with another thread's.
        if io::stderr().lock().write_all(buf).is_err() {
            LINES_LOST.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes `text` and a newline to stderr, as `eprintln!` would, but a failure is counted
/// as a lost line rather than a panic: for what is said outside the log's subscriber.
pub fn say(text: &str) {
    let _ = LineWriter.write_all(format!("{text}\n").as_bytes());
}
