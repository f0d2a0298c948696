//! Writing a command's output when whoever reads it may have gone.
//!
//! Rust ignores SIGPIPE, so `println!` to a pipe whose reader exited (`radmfa user list |
//! head -1`) panics: "failed printing to stdout", exit status 101, a backtrace under
//! RUST_BACKTRACE. A command that shows a secret once writes with [`write_out`] and takes
//! the secret back when it could not be shown; every other command ends as a Unix tool
//! does, by SIGPIPE.

use std::io::Write as _;

/// Writes `text` to stdout, all of it or an error (a closed pipe, a full disk).
pub fn write_out(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Makes a `println!` that failed end the command as a Unix tool ends, not as a crash: a
/// reader that went away (`| head`) ends it by SIGPIPE, quietly, as it ends `ls` or git
/// (the shell reports 141; under `set -o pipefail` that is a failure, so a command that
/// prints before its verdict, `config check --connect`, `client load`, is never read as
/// passed); any other failure (a full disk) is said in one line, with status 2. Whatever
/// the command stored or changed before it printed was committed already; it is exiting,
/// not unwinding, that keeps a half-printed list from turning into a panic after a change.
/// Any other panic is left to the default hook.
pub fn end_quietly_when_stdout_fails() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        // std's own words for a failed `print!`, stable since Rust 1.0.
        let Some(why) = message.strip_prefix("failed printing to stdout: ") else {
            return default(info);
        };
        exit_for(why);
    }));
}

/// Ends the command for a failed write to stdout as [`end_quietly_when_stdout_fails`]
/// does for a failed `println!`: SIGPIPE for a reader gone, else one line and status 2.
/// For output written through a buffer, whose errors come back as values.
pub fn exit_for_stdout_error(e: &std::io::Error) -> ! {
    exit_for(&e.to_string())
}

fn exit_for(why: &str) -> ! {
    if why.contains("Broken pipe") || why.contains("os error 32") {
        // SAFETY: resetting a signal's disposition and raising it; nothing else runs
        // in this process after, and exit(141) follows should the signal not end it.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            libc::raise(libc::SIGPIPE);
        }
        std::process::exit(128 + libc::SIGPIPE);
    }
    eprintln!("radmfa: writing to standard output: {why}");
    std::process::exit(2);
}
