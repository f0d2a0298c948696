//! The `radmfa` binary: parse the command line and hand over to the library.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = radmfa::cli::Cli::parse();
    match radmfa::cli::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("radmfa: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
