//! The `radmfa` binary: parse the command line and hand over to the library.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = radmfa::cli::Cli::parse_args();
    // Not for the server: it prints nothing with println!, and a hook that exits must not
    // stand between it and a panic that needs its default report.
    if !matches!(cli.command, radmfa::cli::Command::Serve) {
        radmfa::admin::output::end_quietly_when_stdout_fails();
    }
    match radmfa::cli::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("radmfa: {}", radmfa::admin::error_text(&e));
            // A refusal found deep in a command exits as the others do (docs/operations.md).
            let refused = e
                .chain()
                .any(|c| c.downcast_ref::<radmfa::admin::Refused>().is_some());
            std::process::ExitCode::from(if refused { 1 } else { 2 })
        }
    }
}
