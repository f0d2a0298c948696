//! A panic while `radmfa serve` queues its log lines (`telemetry::writer`): its report is
//! one of the queued lines, after those logged before it, and a panic on the main thread
//! (which ends the process) writes them all out first. std's hook wrote the report
//! directly, and the process ended with the lines still queued: lost.
//!
//! The process that panics is this test binary run again (`CHILD`), so that the end of the
//! process is real: a thread plays serve's main thread (it starts the queue, as serve's
//! main thread does), and the process exits as a panicking main thread's does.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

const CHILD: &str = "RADMFA_TEST_PANIC_CHILD";
const LINES: usize = 5000;

#[test]
fn a_main_thread_panic_writes_the_queued_lines_and_its_report_after_them() {
    if std::env::var_os(CHILD).is_some() {
        let main = std::thread::spawn(|| {
            radmfa::telemetry::queue_lines();
            for i in 0..LINES {
                // ~100 bytes a line: 500 KB, far more than a pipe holds unread.
                radmfa::telemetry::say(&format!("line {i:04} {}", "x".repeat(90)));
            }
            panic!("the main thread's panic");
        });
        let _ = main.join();
        std::process::exit(101);
    }
    // A reader slow to start (as a log shipper catching up): the pipe is full by then,
    // with most lines still in the queue.
    let (status, log) = panicking_child(&[], Duration::from_millis(1000));
    assert_eq!(status.code(), Some(101), "{}", tail(&log));
    let lines: Vec<&str> = log.lines().filter(|l| l.starts_with("line ")).collect();
    assert_eq!(lines.len(), LINES, "lines lost: {}", tail(&log));
    assert!(
        lines
            .iter()
            .enumerate()
            .all(|(i, l)| l.starts_with(&format!("line {i:04} "))),
        "out of order"
    );
    let last = log.find(&format!("line {:04} ", LINES - 1)).unwrap();
    let report = log
        .find("panicked at")
        .unwrap_or_else(|| panic!("no report: {}", tail(&log)));
    assert!(
        report > last,
        "the report came ahead of the lines before it"
    );
    assert!(
        log[report..].contains("the main thread's panic") && log.contains("RUST_BACKTRACE=1"),
        "{}",
        tail(&log)
    );
    // RUST_BACKTRACE decides, as for std's report: RUST_LIB_BACKTRACE (for error values)
    // does not take the backtrace away (review).
    let (_, log) = panicking_child(
        &[("RUST_BACKTRACE", "1"), ("RUST_LIB_BACKTRACE", "0")],
        Duration::ZERO,
    );
    assert!(
        log.contains("stack backtrace:") && !log.contains("run with `RUST_BACKTRACE=1`"),
        "{}",
        tail(&log)
    );
}

/// Runs this test again as the process that panics, with `env`, and reads its stderr
/// after `delay`.
fn panicking_child(env: &[(&str, &str)], delay: Duration) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(std::env::current_exe().unwrap());
    child
        .args([
            "--exact",
            "a_main_thread_panic_writes_the_queued_lines_and_its_report_after_them",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = child.spawn().unwrap();
    std::thread::sleep(delay);
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    (child.wait().unwrap(), log)
}

/// The end of `log`, for a failure's message.
fn tail(log: &str) -> &str {
    &log[log.len().saturating_sub(600)..]
}
