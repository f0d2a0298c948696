//! The `radmfa` binary: parse the command line and hand over to the library.

fn main() -> std::process::ExitCode {
    // First, before the runtime's threads: a `systemctl reload` right after the start must
    // not end the server (see `ignore_sighup`).
    let hangup = radmfa::admin::reload::ignore_sighup();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("starting the tokio runtime")
        .block_on(run(hangup))
}

async fn run(hangup: radmfa::admin::reload::SighupIgnored) -> std::process::ExitCode {
    let cli = radmfa::cli::Cli::parse_args();
    // Not for the server: it prints nothing with println!, and a hook that exits must not
    // stand between it and a panic that needs its default report.
    if !matches!(cli.command, radmfa::cli::Command::Serve) {
        radmfa::admin::output::end_quietly_when_stdout_fails();
        hangup.restore();
    }
    match radmfa::cli::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            // Not eprintln!: on a full disk or a closed pipe it panics, and the exit
            // status would be 101 instead of the documented one.
            radmfa::telemetry::say(&format!("radmfa: {}", radmfa::admin::error_text(&e)));
            // A refusal found deep in a command exits as the others do (docs/operations.md).
            let refused = e
                .chain()
                .any(|c| c.downcast_ref::<radmfa::admin::Refused>().is_some());
            std::process::ExitCode::from(if refused { 1 } else { 2 })
        }
    }
}
