//! The `radmfa` binary: parse the command line and hand over to the library.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = radmfa::cli::Cli::parse();
    match radmfa::cli::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("radmfa: {e:#}");
            // A refusal found deep in a command exits as the others do (docs/operations.md).
            let refused = e
                .chain()
                .any(|c| c.downcast_ref::<radmfa::admin::Refused>().is_some());
            std::process::ExitCode::from(if refused { 1 } else { 2 })
        }
    }
}
