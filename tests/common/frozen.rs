//! Freezing a peer process (SIGSTOP) the way a hung server or a paused VM looks: connections
//! open, nothing answered.

use std::time::{Duration, Instant};

/// Sends `sig` ("-STOP", "-CONT") to `pid` with kill(1). For "-STOP" it returns only once
/// every thread of the process has stopped.
///
/// kill(2) returns as soon as the signal is queued. The process stops when the one thread
/// the kernel picked next runs and starts the group stop; until then its other threads go
/// on working. On a loaded machine slapd answered three searches sent after
/// `kill -STOP` had returned, and the test that froze it saw those logins' binds hang
/// instead of their searches.
pub fn signal(pid: u32, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill {sig} {pid}");
    if sig == "-STOP" {
        wait_stopped(pid);
    }
}

/// Waits (up to 10 s) until every thread of `pid` is stopped (state `T` in
/// /proc/PID/task/*/stat), or the process is gone.
pub fn wait_stopped(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let running = running_threads(pid);
        if running.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{pid}: threads {running:?} still not stopped 10 s after SIGSTOP"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Threads of `pid` whose state is not stopped; none when the process is gone.
fn running_threads(pid: u32) -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|t| {
            let t = t.ok()?;
            let stat = std::fs::read_to_string(t.path().join("stat")).ok()?;
            // "tid (comm) S ...": comm may hold spaces and parentheses; the state follows
            // the last ')'.
            let state = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .next()?
                .to_owned();
            (state != "T" && state != "t" && state != "Z" && state != "X")
                .then(|| format!("{} {state}", t.file_name().to_string_lossy()))
        })
        .collect()
}
