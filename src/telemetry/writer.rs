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
//!
//! A reader that is there and does not read (a hung log shipper, journald stalled, Ctrl-S
//! on a terminal) fails no write: it blocks it. The server's lines were written on the
//! request's own tokio worker, so a full pipe stopped every login and Status-Server with
//! it. `serve` therefore hands its lines to a thread of their own through a bounded queue
//! ([`queue_lines`]): when the queue is full, the line is dropped and counted, as a failed
//! write is. The admin commands write directly: they end soon, and their lines must be out
//! before they do. While lines are queued, so are panics' reports (see `queue_panics`).

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use tracing_subscriber::fmt::MakeWriter;

/// Log lines stderr refused since the start (`radmfa_log_lines_lost_total`). A static:
/// logging starts before the server's metrics exist, and the admin commands share it.
static LINES_LOST: AtomicU64 = AtomicU64::new(0);

/// A line was cut off part-way (a full disk takes what fits in the file's last block): the
/// next line starts on a line of its own, not glued to the fragment.
static CUT_OFF: AtomicBool = AtomicBool::new(false);

/// Log lines lost so far.
pub fn lines_lost() -> u64 {
    LINES_LOST.load(Ordering::Relaxed)
}

/// What the log thread is handed.
enum Queued {
    Line(Vec<u8>),
    /// Written all before: say so.
    Flush(mpsc::Sender<()>),
}

/// Lines waiting for the log thread: room for a burst (a few MB at most), not for a
/// stalled reader's hours.
const QUEUE_LINES: usize = 8192;

/// The log thread's queue while `serve` runs; `None` before and after (written directly).
static QUEUE: OnceLock<Mutex<Option<SyncSender<Queued>>>> = OnceLock::new();

fn queue() -> &'static Mutex<Option<SyncSender<Queued>>> {
    QUEUE.get_or_init(|| Mutex::new(None))
}

/// From now on, lines go to a thread of their own (see the module's comment). For `serve`,
/// whose end calls [`drain`]. Without a thread (none could be started), lines are written
/// directly, as before.
pub fn queue_lines() {
    let (tx, rx) = mpsc::sync_channel::<Queued>(QUEUE_LINES);
    let started = std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || {
            for q in rx {
                match q {
                    Queued::Line(line) => write_line(&line),
                    Queued::Flush(done) => {
                        let _ = done.send(());
                    }
                }
            }
        });
    if started.is_ok() {
        *queue().lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
        queue_panics();
    }
}

/// The thread that called [`queue_lines`]: `serve`'s main thread, whose panic ends the
/// process.
static MAIN: OnceLock<std::thread::ThreadId> = OnceLock::new();

/// While lines are queued, a panic's report is one of them. std's hook wrote it directly:
/// with a stalled log reader the panicking thread (a tokio worker, whose task's panic the
/// server survives) waited for that reader, and its report came out ahead of lines logged
/// before it. A panic on the main thread ends the process, so its report and the lines
/// queued before it are written out first (as [`drain`] does, for 2 s at most): they were
/// lost with the process. Once the queue is gone, std's own hook reports as before.
fn queue_panics() {
    let _ = MAIN.set(std::thread::current().id());
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if queue().lock().unwrap_or_else(|p| p.into_inner()).is_none() {
            return default(info);
        }
        let ends_the_process = MAIN.get() == Some(&std::thread::current().id());
        if ends_the_process {
            // Its report waits for room rather than being dropped, as a stop's last lines.
            stopping(Duration::from_secs(2));
        }
        say(&panic_report(info));
        if ends_the_process {
            drain(Duration::from_secs(2));
        }
    }));
}

/// What std's default hook says of a panic, with the backtrace it would print
/// (`RUST_BACKTRACE`).
fn panic_report(info: &std::panic::PanicHookInfo<'_>) -> String {
    use std::backtrace::{Backtrace, BacktraceStatus};
    let thread = std::thread::current();
    let name = thread.name().unwrap_or("<unnamed>");
    // `payload_as_str` is newer than the MSRV.
    let payload = info.payload();
    let what = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("Box<dyn Any>");
    let at = info
        .location()
        .map_or_else(String::new, |l| format!(" at {l}"));
    // As std's hook reads it: RUST_BACKTRACE alone (`Backtrace::capture` would let
    // RUST_LIB_BACKTRACE, meant for error values, decide), and "full" unabridged.
    let wanted = std::env::var("RUST_BACKTRACE").unwrap_or_default();
    let trace = match wanted.as_str() {
        "" | "0" => Backtrace::disabled(),
        _ => Backtrace::force_capture(),
    };
    let more = match trace.status() {
        BacktraceStatus::Captured if wanted == "full" => {
            format!("\nstack backtrace:\n{trace:#}")
        }
        BacktraceStatus::Captured => format!("\nstack backtrace:\n{trace}"),
        _ => "\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace"
            .to_string(),
    };
    format!("thread '{name}' panicked{at}:\n{what}{more}")
}

/// Until when a line that finds the queue full waits for room rather than being dropped:
/// set as `serve` stops ([`stopping`]).
static WAIT_UNTIL: Mutex<Option<Instant>> = Mutex::new(None);

/// The server is stopping: from now, for `within`, a line that finds the queue full waits
/// for room instead of being dropped. Its last lines (the requests abandoned, the counters)
/// came right after a reader that had stalled began reading again, while the queue was
/// still full from the stall, and were lost though the reader was there to take them. A
/// reader still stalled costs the stop `within` more.
pub fn stopping(within: Duration) {
    *WAIT_UNTIL.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now() + within);
}

/// Whether a line that found the queue full may wait for room now.
fn may_wait() -> bool {
    WAIT_UNTIL
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .is_some_and(|until| Instant::now() < until)
}

/// Set when [`drain`] found the log's reader not reading: from then on a line is dropped
/// and counted, not written directly, which would wait for that reader for good. Lines
/// written after the drain (a connection's end, the error that ended `serve`) held the
/// stop until the reader read again (review: still running 30 s after SIGTERM).
static GIVEN_UP: AtomicBool = AtomicBool::new(false);

/// Lines go directly again, once those queued are written or `within` has passed (a reader
/// that is not reading keeps them: they are lost with the process, and so are the lines
/// after). The queue is kept until then: a line logged meanwhile must not be written
/// directly, behind the log thread's write that waits.
pub fn drain(within: Duration) {
    let Some(tx) = queue().lock().unwrap_or_else(|p| p.into_inner()).clone() else {
        return;
    };
    let until = Instant::now() + within;
    let (done_tx, done) = mpsc::channel();
    let mut flush = Queued::Flush(done_tx);
    let flushed = loop {
        match tx.try_send(flush) {
            Ok(()) => {
                break done
                    .recv_timeout(until.saturating_duration_since(Instant::now()))
                    .is_ok()
            }
            Err(TrySendError::Full(f)) if Instant::now() < until => {
                flush = f;
                std::thread::sleep(Duration::from_millis(5));
            }
            // Full past the time, or the thread gone (lines go directly then: it does not
            // hold stderr).
            Err(TrySendError::Full(_)) => break false,
            Err(TrySendError::Disconnected(_)) => break true,
        }
    };
    if !flushed {
        GIVEN_UP.store(true, Ordering::Relaxed);
    }
    queue().lock().unwrap_or_else(|p| p.into_inner()).take();
}

/// stderr for tracing-subscriber's fmt layer, which writes each event with one `write_all`.
/// `json`: the lines are JSON objects (`log_format = "json"`), escaped for a terminal.
pub struct Stderr {
    pub json: bool,
}

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter { json: self.json }
    }
}

/// Writes one event's line; a failure is counted and reported as success, so that
/// tracing-subscriber has nothing to print about it.
pub struct LineWriter {
    json: bool,
}

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        // tracing-subscriber's JSON escapes only what JSON must (below U+0020), and the text
        // format's Debug quoting does not apply: a User-Name's C1 CSI (U+009B, a CSI to
        // xterm) or bidi override reached `tail -f` and the journal raw. Escaped as `audit
        // --json` escapes them; such characters occur only inside a JSON line's strings.
        let escaped;
        let buf = if self.json {
            escaped = crate::admin::json_printable(String::from_utf8_lossy(buf).into_owned());
            escaped.as_bytes()
        } else {
            buf
        };
        // A clone, so that a line waiting for room (see `stopping`) holds no lock.
        let tx = queue().lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(tx) = tx {
            let mut line = Queued::Line(buf.to_vec());
            loop {
                match tx.try_send(line) {
                    Ok(()) => return Ok(()),
                    Err(TrySendError::Full(l)) if may_wait() => {
                        line = l;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(TrySendError::Full(_)) => {
                        LINES_LOST.fetch_add(1, Ordering::Relaxed);
                        return Ok(());
                    }
                    // The thread is gone (it does not panic, but): written here.
                    Err(TrySendError::Disconnected(_)) => break,
                }
            }
        }
        if GIVEN_UP.load(Ordering::Relaxed) {
            LINES_LOST.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        write_line(buf);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes one line to stderr; a failure is counted.
fn write_line(buf: &[u8]) {
    // Locked, so that a line is not interleaved with another thread's.
    let mut err = io::stderr().lock();
    if CUT_OFF.load(Ordering::Relaxed) {
        if written(&mut err, b"\n") < 1 {
            LINES_LOST.fetch_add(1, Ordering::Relaxed);
            return;
        }
        CUT_OFF.store(false, Ordering::Relaxed);
    }
    let n = written(&mut err, buf);
    if n < buf.len() {
        LINES_LOST.fetch_add(1, Ordering::Relaxed);
        if n > 0 {
            CUT_OFF.store(true, Ordering::Relaxed);
        }
    }
}

/// How much of `buf` went to `out` before an error (all of it, or less).
fn written(out: &mut impl Write, buf: &[u8]) -> usize {
    let mut done = 0;
    while done < buf.len() {
        match out.write(&buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    done
}

/// Writes `text` and a newline to stderr, as `eprintln!` would, but a failure is counted
/// as a lost line rather than a panic: for what is said outside the log's subscriber.
pub fn say(text: &str) {
    let _ = LineWriter { json: false }.write_all(format!("{text}\n").as_bytes());
}

#[cfg(test)]
mod tests {
    use std::io::{self, Write};

    /// Takes `room` bytes, then refuses as a full disk does.
    struct Full {
        room: usize,
        got: Vec<u8>,
    }

    impl Write for Full {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::Error::from_raw_os_error(28)); // ENOSPC
            }
            let n = buf.len().min(self.room).min(3);
            self.room -= n;
            self.got.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn written_says_how_much_went_before_the_error() {
        let mut full = Full {
            room: 7,
            got: Vec::new(),
        };
        assert_eq!(super::written(&mut full, b"abcdefghij"), 7);
        assert_eq!(full.got, b"abcdefg");
        assert_eq!(super::written(&mut full, b"k"), 0);
        let mut roomy = Full {
            room: 100,
            got: Vec::new(),
        };
        assert_eq!(super::written(&mut roomy, b"abcdefghij"), 10);
    }
}
