//! Command line: `radmfa [--config FILE] <command>`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::admin;
use crate::config::Config;

#[derive(Debug, Parser)]
#[command(
    name = "radmfa",
    version = crate::VERSION,
    about = "RADIUS proxy adding MFA (LDAP password + TOTP)"
)]
pub struct Cli {
    /// Configuration file.
    #[arg(
        short,
        long,
        global = true,
        env = "RADMFA_CONFIG",
        default_value = "/etc/radmfa/radmfa.toml"
    )]
    pub config: PathBuf,
    /// Whether --config or RADMFA_CONFIG named the file (not the default): set by
    /// [`Cli::parse_args`]. Commands that write to a store no admin named refuse without it.
    #[arg(skip)]
    pub config_given: bool,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses the command line (exiting on a usage error, as `Cli::parse` does) and notes
    /// whether the configuration file was named or is the default.
    pub fn parse_args() -> Self {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Self::command().get_matches();
        let mut cli = Self::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        cli.config_given =
            matches.value_source("config") != Some(clap::parser::ValueSource::DefaultValue);
        cli
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the RADIUS server.
    Serve,
    /// Configuration commands.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manage users' second factors.
    #[command(subcommand)]
    User(UserCommand),
    /// Show recent audit records.
    ///
    /// Every request radmfa decides has a record (an Accept, a Reject, a Challenge, or a
    /// no_reply client's request left unanswered), and so does every admin action. A
    /// request dropped before it is decided has none: a wrong shared secret, an address that
    /// no [[client]] entry matches, no Message-Authenticator, a malformed packet. Those are in
    /// the serve log (radmfa::drops, each source and cause at most once a minute) and in
    /// radmfa_requests_dropped_total: a NAS that reports a timeout is looked for there.
    Audit(AuditArgs),
    /// The store: bring its schema up to date, back it up.
    #[command(subcommand)]
    Db(crate::admin::migrate::DbCommand),
    /// Move a deployment's data between stores (SQLite to PostgreSQL).
    #[command(subcommand)]
    Store(crate::admin::migrate::StoreCommand),
    /// Manage the token inventory (hardware and imported OATH tokens).
    #[command(subcommand)]
    Token(crate::admin::tokens::TokenCommand),
    /// A RADIUS client: log in interactively, probe, or drive load for benchmarks.
    #[command(subcommand)]
    Client(crate::client::ClientCommand),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration file and exit (0 = valid).
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Also connect: bind to each LDAP URL as the service account, ask each upstream RADIUS
    /// server, and open the store. A store behind this release's schema is not opened or
    /// changed: the check says from which version to which the first start (or `db
    /// migrate`) brings it, and checks its key file.
    #[arg(long)]
    pub connect: bool,
    /// With --connect: look USER up as a login would (entry, groups per client, tokens,
    /// the number texts and calls would go to, the default method; not the tokens or the
    /// number of a store behind this release's schema).
    #[arg(long, requires = "connect")]
    pub user: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a TOTP secret for USER; prints the otpauth:// URI and a QR code.
    EnrollTotp(EnrollArgs),
    /// List users with second-factor state.
    List(JsonFlag),
    /// Show one user's tokens, lockout state, and texts and calls against the send limits
    /// (its own and its number's).
    Show(UserJson),
    /// Lift the second-factor lockout, and the user's and its number's send limits' count of
    /// the user's texts and calls (the day's cap included; the NAS's limit still counts them),
    /// and the number's count of other names' sends to it (theirs still count for them).
    Unlock(UserArg),
    /// Remove the user's tokens, app passwords, waiting bypass and remembered logins, so they
    /// must enroll again, and end their open prompts and pending SMS codes and calls. App
    /// seeds are deleted; imported (hardware) tokens go back to stock, unassigned, their
    /// counter kept. A stored phone number stays (SMS and calls still reach it; `user
    /// set-phone USER none` removes it).
    Reset(UserArg),
    /// Delete everything radmfa stores about the user (the audit trail stays; imported
    /// tokens go back to stock). A user blocked by a fraud report is deleted only with
    /// --unblock, as deleting lifts the block.
    Delete(DeleteArgs),
    /// Store the user's phone number for SMS and calls ("none" removes it). Remembered
    /// logins, open prompts and pending SMS codes and calls (to the old number) end.
    SetPhone(crate::admin::phone::SetPhoneArgs),
    /// Set the user's default second factor: totp, sms or voice ("none" removes it).
    SetMethod(crate::admin::phone::SetMethodArgs),
    /// Lift the block a fraud alert from a call set.
    Unblock(UserArg),
    /// Let the user's next login with the right password in without a second factor, once,
    /// within --for (default 5m): for a lost phone. --cancel takes it back.
    Bypass(crate::admin::bypass::BypassArgs),
    /// App passwords for clients that cannot do a second factor.
    #[command(subcommand)]
    AppPassword(crate::admin::app_passwords::AppPasswordCommand),
    /// Forget the user's remembered second factors (clients with
    /// remember_second_factor_secs): the next login on every client asks again. --all:
    /// every user's (an incident: a station or a client no longer to be trusted).
    Forget(ForgetArgs),
}

#[derive(Debug, Args)]
pub struct ForgetArgs {
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub user: Option<String>,
    /// Every user's remembered second factors, in one audited action.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct UserArg {
    pub user: String,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    pub user: String,
    /// Delete a user blocked by a fraud report too, lifting the block (their next login
    /// is then decided as any new user's).
    #[arg(long)]
    pub unblock: bool,
}

#[derive(Debug, Args)]
pub struct UserJson {
    pub user: String,
    /// JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct JsonFlag {
    /// JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EnrollArgs {
    pub user: String,
    /// SHA1 (what every authenticator app supports), SHA256 or SHA512. Default: [totp] algorithm.
    #[arg(long)]
    pub algorithm: Option<String>,
    /// 6, 7 or 8. Default: [totp] digits.
    #[arg(long)]
    pub digits: Option<u32>,
    /// Time step in seconds. Default: [totp] period.
    #[arg(long)]
    pub period: Option<u32>,
    /// Add a token even if the user, or another name of their directory entry (a second
    /// `uid`), already has one.
    #[arg(long)]
    pub force: bool,
    /// Enroll although the directory ([ldap]) has no such user (yet). Not --force, which
    /// already means a second token.
    #[arg(long)]
    pub not_in_directory: bool,
    /// Do not draw the QR code.
    #[arg(long)]
    pub no_qr: bool,
    /// Print only the otpauth:// URI (for scripts); the new token's serial goes to stderr
    /// as `serial: TOTP-…`.
    #[arg(long, conflicts_with = "verify")]
    pub uri_only: bool,
    /// Keep the token only once a code from the app matches (asked on the terminal, three
    /// tries): proof the user's app holds the right secret and clock. That code is then
    /// used up, as at a login.
    #[arg(long)]
    pub verify: bool,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// One user's records.
    #[arg(long)]
    pub user: Option<String>,
    /// Logins: accept, reject, challenge, unanswered (a no_reply client's request left
    /// without a reply: a directory, upstream or store failure, a missed deadline). Events:
    /// lock, fraud;
    /// admin actions: enroll,
    /// unlock, reset, delete, forget, bypass, unblock, set-phone, set-method, import,
    /// import-refused, replace,
    /// assign, unassign, enable, disable, delete-token, resync, resync-refused,
    /// app-password-add,
    /// app-password-delete, app-password-delete-all; store: backup, migrate.
    #[arg(long)]
    pub result: Option<String>,
    /// How the login was decided: totp, hotp, sms, voice, app-password; or without a
    /// second factor: bypass, exempt, remembered, primary-only, fail-open; lockout (an
    /// automatic lock), admin (admin actions), none. `--mode bypass --result accept` lists
    /// the logins a bypass let in.
    #[arg(long)]
    pub mode: Option<String>,
    /// One node's records (its `[server] name`; the audit's server_name), where nodes share
    /// a PostgreSQL store.
    #[arg(long)]
    pub server: Option<String>,
    /// One client entry's records: the NAS's `name` in the configuration (the audit's
    /// nas_name, the NAS column).
    #[arg(long)]
    pub nas: Option<String>,
    /// One token's records, by serial: the logins it decided and the admin actions on it
    /// (import, assign, resync, …), whoever held it at the time.
    #[arg(long)]
    pub token: Option<String>,
    /// Logins from one address: the audit's client_ip, the NAS's Calling-Station-Id (where
    /// a VPN or gateway user connected from), or the NAS's own address when it sends none;
    /// found with any port, in brackets or IPv4-mapped. `--count-by client-ip` lists them,
    /// one row per address: a password spray's sources.
    #[arg(long)]
    pub client_ip: Option<String>,
    /// Records at or after this time: RFC 3339 (2026-01-31T08:00:00Z, or with an offset,
    /// 2026-01-31T09:00:00+01:00), Unix seconds (1769846400), or an age counted back from
    /// now (90s, 15m, 2h, 7d). An 8-digit number that reads as a date (20260131) is refused:
    /// as Unix seconds it would be 1970.
    #[arg(long)]
    pub since: Option<String>,
    /// Records before this time, not at it, so consecutive windows (--since T1 --until T2,
    /// then --since T2 --until T3) count each record once. The same forms as --since.
    #[arg(long)]
    pub until: Option<String>,
    /// Records shown, the newest (0: every matching record); with --follow, the earlier
    /// records shown first (0: none, only new ones); with --count-by, groups shown (the
    /// largest; days: the latest), 0 for every group. When more match than are shown, a
    /// note on stderr says so (stdout stays the table or the JSON).
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Keep printing matching records as they are written (from every node sharing the
    /// store), oldest first, until Ctrl-C.
    #[arg(long, conflicts_with_all = ["count_by", "until"])]
    pub follow: bool,
    /// A report instead of records: how many of the matching records had each result, per
    /// user, NAS, mode, result, reason, UTC day, server (the node that answered) or client
    /// address (where the logins came from). Reasons are grouped by cause: their times are
    /// written <time> and their numbers N (a lock's "until 2026-...", a count, a duration),
    /// and notes of when ("(not tried again for 5 s)") are left out; the records and the
    /// other options keep the full text.
    #[arg(long, value_enum, value_name = "GROUP")]
    pub count_by: Option<crate::store::AuditGroup>,
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let load = || Config::load(&cli.config).map_err(|e| e.in_file(&cli.config));
    match cli.command {
        Command::Config(ConfigCommand::Check(args)) => {
            let (cfg, text) =
                Config::load_with_text(&cli.config).map_err(|e| e.in_file(&cli.config))?;
            // What `serve` builds from the files before it listens: a file that exists but
            // cannot be used (a key file without a key, a CA file without certificates)
            // fails the check now, not the next restart.
            crate::auth::directory(cfg.ldap.as_ref()).context("[ldap]")?;
            if let Some(r) = &cfg.radsec {
                crate::server::radsec::Acceptors::new(r)?;
            }
            // The key file as `serve` reads it (mode, contents), when there is one: one at
            // 0640 passed here and stopped the next start. A missing one is made at the
            // first start, and --connect says whether the database needs it.
            let key_file = match &cfg.store {
                crate::config::StoreConfig::Sqlite { key_file, .. }
                | crate::config::StoreConfig::Postgres { key_file, .. } => key_file,
            };
            if key_file.exists() {
                crate::store::KeyFile::load(key_file).context("store.key_file")?;
            }
            println!("{}: ok", cli.config.display());
            for line in admin::review::summary(&cfg) {
                println!("  {line}");
            }
            for line in admin::review::warnings(&cfg) {
                println!("warning: {line}");
            }
            for line in admin::review_file::warnings(&cli.config, &text) {
                println!("warning: {line}");
            }
            for line in admin::review_secret_files::warnings(&cli.config, &text) {
                println!("warning: {line}");
            }
            if args.connect {
                let good = admin::check::connect(&cfg, args.user.as_deref()).await?;
                return Ok(if good {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                });
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve => {
            // Before anything else, the file's read included: see `catch_sighup`.
            let hup = admin::reload::catch_sighup();
            let (cfg, text) =
                Config::load_with_text(&cli.config).map_err(|e| e.in_file(&cli.config))?;
            crate::telemetry::init(cfg.server.log_format, &cfg.server.log_level);
            // Lines through a thread of their own: a log reader that stops reading must not
            // stop the logins (`telemetry::writer`). Drained before the exit: its last lines
            // (the counters, the error that ended it) must be out.
            crate::telemetry::queue_lines();
            let served = admin::serve::serve(cfg, &text, &cli.config, hup).await;
            crate::telemetry::drain(std::time::Duration::from_secs(2));
            served?;
            Ok(ExitCode::SUCCESS)
        }
        Command::User(cmd) => {
            let cfg = load()?;
            admin::users::run(&cfg, cmd).await
        }
        Command::Audit(args) => {
            let cfg = load()?;
            admin::audit::run(&cfg, args).await
        }
        Command::Db(cmd) => admin::migrate::db(&load()?, cmd).await,
        Command::Store(cmd) => admin::migrate::store(&load()?, cmd).await,
        Command::Token(cmd) => {
            let cfg = load()?;
            admin::tokens::run(&cfg, cmd).await
        }
        Command::Client(cmd) => {
            let named = cli.config_given.then_some(cli.config.as_path());
            crate::client::run(named, cmd).await
        }
    }
}
