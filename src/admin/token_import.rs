//! `radmfa token import FILE`: CSV or PSKC into the inventory. All or nothing by default (a
//! bad row names its line or key element and nothing is stored); `--skip-invalid` stores the
//! good rows; `--dry-run` stores nothing. The key or passphrase of an encrypted PSKC file
//! comes from a file, an environment variable or a prompt — a flag also works, but nothing
//! requires putting it on the command line.

use std::collections::{HashMap, HashSet};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::Config;
use crate::import::keys::KeyEncoding;
use crate::import::plan::{plan, read_map};
use crate::import::pskc::Need;
use crate::import::{self, Decryption, FileDefaults, Format, ImportedToken, MAX_FILE_BYTES};
use crate::secret::Secret;
use crate::store::{AuditRecord, OtpAlgorithm, Store, TokenFilter, TokenRecord};

/// Problems listed before "… and N more".
const SHOW_PROBLEMS: usize = 50;

#[derive(Debug, Args)]
pub struct ImportArgs {
    pub file: PathBuf,
    /// csv or pskc. Default: detected (PSKC is XML).
    #[arg(long)]
    pub format: Option<String>,
    /// PSKC pre-shared key in hex. Prefer --key-file or the prompt: flags end up in shell
    /// history and process lists.
    /// RADMFA_IMPORT_KEY, from the environment, is used only without --key and --key-file.
    #[arg(long)]
    pub key: Option<String>,
    /// File holding the PSKC pre-shared key (hex text, or the raw 16/24/32 bytes).
    #[arg(long, conflicts_with = "key")]
    pub key_file: Option<PathBuf>,
    /// PSKC PBKDF2 passphrase. Prefer --passphrase-file or the prompt.
    /// RADMFA_IMPORT_PASSPHRASE, from the environment, is used only without --passphrase
    /// and --passphrase-file.
    #[arg(long)]
    pub passphrase: Option<String>,
    /// File whose first line is the PSKC passphrase.
    #[arg(long, conflicts_with = "passphrase")]
    pub passphrase_file: Option<PathBuf>,
    /// `serial,user` lines assigning tokens to users (overrides the file's user column/UserId).
    #[arg(long)]
    pub map: Option<PathBuf>,
    /// Import the valid tokens and report the invalid ones, instead of importing nothing.
    #[arg(long)]
    pub skip_invalid: bool,
    /// Overwrite tokens whose serial is already in the inventory.
    #[arg(long)]
    pub replace: bool,
    /// With --replace: let the file (or --map) give a token someone holds to another user.
    #[arg(long, requires = "replace")]
    pub force: bool,
    /// Check everything and say what would happen; store nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// CSV: the key encoding (auto, hex, base32). Auto: Base32 for the Azure MFA Server
    /// layout, otherwise hex if the key is hex. Refused for PSKC (its keys are Base64).
    #[arg(long)]
    pub key_encoding: Option<String>,
    /// Hash for CSV rows that name none and PSKC keys without a Suite (SHA1, SHA256,
    /// SHA512).
    #[arg(long, default_value = "SHA1")]
    pub algorithm: String,
    /// Digits for CSV rows that name none and PSKC keys without a ResponseFormat Length.
    #[arg(long, default_value_t = 6)]
    pub digits: u32,
    /// TOTP time step for CSV rows that name none and PSKC keys without a TimeInterval.
    #[arg(long, default_value_t = 30)]
    pub period: u32,
    /// PSKC: take a TimeDrift that sets a token's clock more than 20 minutes behind.
    /// Without it such a key is refused: codes that old could be codes someone saw on its
    /// display long ago, and they would work until the token's next login.
    #[arg(long)]
    pub clock_behind: bool,
}

/// Owners of tokens in this import who also hold a BROKEN token the import does not
/// replace: that token stops every login of theirs, the new token's too, until it is
/// deleted or repaired (docs/operations.md). A serial changed by hand in SQL is such a
/// token, and importing the vendor's file again brings back the old serial beside it.
/// For each owner whose directory entry holds tokens under another of its names: those
/// keep working beside the imported one (as `token assign` refuses without --force, and
/// `user enroll-totp` does). A warning, not a refusal: a migration may well give a user a
/// hardware token beside an app, and the import goes on for every other owner.
fn held_under_other_names(
    cfg: &Config,
    other_names: &[(String, Vec<String>)],
    stored: &HashMap<String, TokenRecord>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (owner, names) in other_names {
        for (shown, key) in crate::pipeline::aliases::entry_names_of(&cfg.user_names, owner, names)
        {
            let mut serials: Vec<String> = stored
                .values()
                .filter(|r| r.token.enabled && r.token.user.as_deref() == Some(key.as_str()))
                .map(|r| super::printable(&r.token.serial).into_owned())
                .collect();
            if serials.is_empty() {
                continue;
            }
            serials.sort();
            out.push(format!(
                "{owner}: the directory entry is also named {other}, which holds token(s) \
                 {serials}; logins under either name pass, so those keep working beside the \
                 imported one (`radmfa user reset {quoted}` ends them, for a lost phone)",
                quoted = super::shell_arg(&shown),
                owner = super::printable(owner),
                other = super::printable(&shown),
                serials = serials.join(", "),
            ));
        }
    }
    out
}

fn broken_beside(ready: &[ImportedToken], stored: &HashMap<String, TokenRecord>) -> Vec<String> {
    let owners: HashSet<&str> = ready
        .iter()
        .filter_map(|t| {
            let kept = stored
                .get(&t.token.serial)
                .and_then(|s| s.token.user.as_deref());
            t.token.user.as_deref().or(kept)
        })
        .collect();
    let importing: HashSet<&str> = ready.iter().map(|t| t.token.serial.as_str()).collect();
    let mut lines: Vec<String> = stored
        .values()
        .filter(|s| s.extra.unreadable_seed.is_some())
        .filter(|s| !importing.contains(s.token.serial.as_str()))
        .filter_map(|s| {
            let owner = s.token.user.as_deref().filter(|o| owners.contains(o))?;
            Some(format!(
                "{} also holds BROKEN token {}, which refuses every login of theirs, this \
                 import's token too, until `radmfa token delete {} --force` (or, for a serial \
                 changed by hand in SQL, until its serial is changed back)",
                super::printable(owner),
                super::printable(&s.token.serial),
                super::shell_arg(&s.token.serial)
            ))
        })
        .collect();
    lines.sort();
    lines
}

/// Owners that keep a domain after `[users] strip_domains` (Entra's export names owners by
/// UPN, `alice@corp.example.org`), where the directory is searched by a name without one
/// (`sAMAccountName`, `uid`): the user logs in as `alice`, finds no token, and is refused, or
/// with `no_factor = "allow"` let in on the password. A warning, not a refusal: a filter
/// written otherwise may find users by such names.
fn owners_with_a_domain(cfg: &Config, ready: &[ImportedToken]) -> Option<String> {
    let filter = &cfg.ldap.as_ref()?.user_filter;
    let lower = filter.to_ascii_lowercase();
    if lower.contains("userprincipalname") || lower.contains("mail") {
        return None;
    }
    let owners: Vec<&str> = ready
        .iter()
        .filter_map(|t| t.token.user.as_deref())
        .filter(|u| u.contains(['@', '\\']))
        .collect();
    let first = owners.first()?;
    Some(format!(
        "{} token(s) go to names with a domain ({}{}) that [users] strip_domains leaves on, \
         but [ldap] user_filter {filter:?} looks up the name a user types, usually without \
         one: such a user would find no token. List the domain in [users] strip_domains \
         (owners lose it too), or give owners with --map",
        owners.len(),
        super::printable(first),
        if owners.len() > 1 { ", …" } else { "" }
    ))
}

/// The most a `--key-file` or `--passphrase-file` may hold: a key or a passphrase is a line.
const MAX_KEY_FILE_BYTES: usize = 64 * 1024;

/// The file, if it is within `limit` bytes. Counted while reading, not from its metadata: a
/// pipe or `/dev/stdin` reports a length of 0, and `/dev/zero` given by mistake must not
/// fill the memory.
fn read_limited(path: &Path, limit: usize) -> anyhow::Result<Vec<u8>> {
    read_limited_or(path, limit, "")
}

/// What to do with an import file over [`MAX_FILE_BYTES`]: the limit bounds the memory a
/// file makes the import use (a 50,000-key encrypted file peaked at 325 MiB), and a vendor's
/// 100,000 keys come to 71 MB plain, 102 MB encrypted.
const SPLIT_THE_FILE: &str = " (about 94,000 keys of a plain PSKC file as python-pskc \
     writes it, 65,000 encrypted, 737,000 CSV rows): split it into parts, each with the \
     file's header (a CSV file's header row; a PSKC file's KeyContainer with its \
     EncryptionKey and MACMethod), and import them one after another; docs/tokens.md, \
     \"Files over 64 MiB\", has a script that does it";

/// [`read_limited`], with `too_large` said after the limit when the file is over it.
fn read_limited_or(path: &Path, limit: usize, too_large: &str) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() > limit {
        bail!(
            "{}: more than the {limit}-byte limit{too_large}",
            path.display()
        );
    }
    Ok(bytes)
}

/// [`read_limited`] as UTF-8 text.
fn read_limited_text(path: &Path, limit: usize) -> anyhow::Result<String> {
    String::from_utf8(read_limited(path, limit)?)
        .map_err(|_| anyhow::anyhow!("{}: not UTF-8 text", path.display()))
}

/// The first line, less what editors add that nobody typed (as the config's secret files
/// are read): a byte-order mark (PowerShell 5, old Notepad) and a carriage return ending
/// it. Kept, the passphrase was wrong and the file "could not be decrypted".
fn first_line(path: &Path) -> anyhow::Result<Secret> {
    let text = read_limited_text(path, MAX_KEY_FILE_BYTES)?;
    let first = text.lines().next().unwrap_or("");
    let first = first.strip_prefix('\u{feff}').unwrap_or(first);
    Ok(Secret::from(first.trim_end_matches('\r').to_string()))
}

/// `--key-encoding`, which only a CSV file's key column has: a PSKC file's keys are Base64,
/// and an admin who gave it for one expected it to change something.
fn key_encoding(given: Option<&str>, format: Format) -> anyhow::Result<KeyEncoding> {
    let Some(given) = given else {
        return Ok(KeyEncoding::Auto);
    };
    if format == Format::Pskc {
        bail!("--key-encoding is for CSV files: a PSKC file's keys are Base64");
    }
    KeyEncoding::parse(given)
        .with_context(|| format!("--key-encoding {given:?}: use auto, hex or base32"))
}

fn parse_hex_key(text: &str) -> anyhow::Result<Secret> {
    let clean: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = hex::decode(clean.trim_start_matches("0x"))
        .map_err(|_| anyhow::anyhow!("the key is not hex"))?;
    if ![16, 24, 32].contains(&bytes.len()) {
        bail!(
            "the key is {} bytes; AES keys are 16, 24 or 32",
            bytes.len()
        );
    }
    Ok(Secret::new(bytes))
}

fn key_from_file(path: &Path) -> anyhow::Result<Secret> {
    let raw = read_limited(path, MAX_KEY_FILE_BYTES)?;
    // A hex key saved with a byte-order mark is still the hex key.
    let unmarked = std::str::from_utf8(&raw).map(|t| t.strip_prefix('\u{feff}').unwrap_or(t));
    match unmarked {
        Ok(text)
            if !text.trim().is_empty()
                && text
                    .trim()
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b'x') =>
        {
            parse_hex_key(text)
        }
        _ if [16, 24, 32].contains(&raw.len()) => Ok(Secret::new(raw)),
        _ => bail!(
            "{}: expected a hex key or 16/24/32 raw bytes",
            path.display()
        ),
    }
}

fn prompt(what: &str) -> anyhow::Result<Secret> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "the file is encrypted and no {what} was given (use --{}-file)",
            if what == "passphrase" {
                "passphrase"
            } else {
                "key"
            }
        );
    }
    let text = rpassword::prompt_password(format!("PSKC {what}: "))
        .context("reading from the terminal")?;
    Ok(Secret::from(text))
}

/// A key or passphrase file other accounts on this host can read: said (the config's own
/// secret files are refused for it).
fn warn_if_others_can_read(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o004 != 0 {
            eprintln!(
                "warning: {} is readable by every account on this host (mode {mode:o}): \
                 `chmod o-rwx` it, or delete it once the import is done",
                path.display()
            );
        }
    }
}

/// The key or passphrase the file needs, from the first source given.
fn decryption(need: &Need, a: &ImportArgs) -> anyhow::Result<Decryption> {
    // The flags conflict with their files; the environment is read only when no flag names
    // a key or a passphrase, so a variable left from another import (of either kind) never
    // overrides, or is preferred to, what is named here.
    let named = a.key.is_some()
        || a.key_file.is_some()
        || a.passphrase.is_some()
        || a.passphrase_file.is_some();
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty() && !named);
    // Whoever has the key and the file has every seed in it: said, not refused (the key
    // may be a one-off from the vendor's shipment).
    if a.key.is_some() || a.passphrase.is_some() {
        eprintln!(
            "warning: a key or passphrase given on the command line is visible to other \
             accounts while this runs and stays in shell history: prefer --key-file, \
             --passphrase-file or the prompt"
        );
    }
    for f in [&a.key_file, &a.passphrase_file].into_iter().flatten() {
        warn_if_others_can_read(f);
    }
    let key = match (&a.key, &a.key_file) {
        (_, Some(f)) => Some(key_from_file(f)?),
        (Some(k), None) => Some(parse_hex_key(k)?),
        (None, None) => env("RADMFA_IMPORT_KEY")
            .map(|k| parse_hex_key(&k))
            .transpose()?,
    };
    let pass = match (&a.passphrase, &a.passphrase_file) {
        (_, Some(f)) => Some(first_line(f)?),
        (Some(p), None) => Some(Secret::from(p.clone())),
        (None, None) => env("RADMFA_IMPORT_PASSPHRASE").map(Secret::from),
    };
    Ok(match need {
        Need::Nothing if key.is_some() || pass.is_some() => bail!(
            "this file has no encrypted values, but a key or passphrase was given (--key, \
             --key-file, --passphrase, --passphrase-file, RADMFA_IMPORT_KEY or \
             RADMFA_IMPORT_PASSPHRASE): refused, in case the encrypted file you expected was \
             replaced; import it without them if it is the file you meant"
        ),
        Need::Nothing => Decryption::None,
        Need::Key { .. } => match (key, pass) {
            (Some(k), _) => Decryption::Key(k),
            (None, Some(_)) => {
                bail!("this file uses a pre-shared key, not a passphrase: give --key-file")
            }
            (None, None) => Decryption::Key(parse_hex_key(
                prompt("pre-shared key (hex)")?.expose_str().unwrap_or(""),
            )?),
        },
        Need::Passphrase { .. } => match (pass, key) {
            (Some(p), _) => Decryption::Passphrase(p),
            (None, Some(k)) => Decryption::Key(k),
            (None, None) => Decryption::Passphrase(prompt("passphrase")?),
        },
    })
}

/// `store` is `None` for a dry run before the store exists (an installation's first step,
/// the file checked before the first start): the file is checked against no tokens.
pub async fn run(
    cfg: &Config,
    store: Option<&dyn Store>,
    a: ImportArgs,
) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let bytes = read_limited_or(&a.file, MAX_FILE_BYTES, SPLIT_THE_FILE)?;
    // Before anything reads it as UTF-8 (a key given for it would be refused as given for
    // a file with nothing encrypted).
    import::refuse_utf16(&bytes).with_context(|| a.file.display().to_string())?;
    let format = match a.format.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None => import::detect(&bytes),
        Some("csv") => Format::Csv,
        Some("pskc") | Some("xml") => Format::Pskc,
        Some(f) => bail!("--format {f:?}: use csv or pskc"),
    };
    let dec = match format {
        Format::Pskc => decryption(&import::pskc::need(&bytes)?, &a)?,
        // Nothing in a CSV file is encrypted: a key or passphrase given for one is refused
        // as for a PSKC file without encrypted values (a swapped file).
        Format::Csv => decryption(&Need::Nothing, &a)?,
    };
    let defaults = FileDefaults {
        algorithm: OtpAlgorithm::parse(&a.algorithm).with_context(|| {
            format!("--algorithm {:?}: use SHA1, SHA256 or SHA512", a.algorithm)
        })?,
        digits: a.digits,
        period: a.period,
        encoding: key_encoding(a.key_encoding.as_deref(), format)?,
        clock_behind: a.clock_behind,
    };
    let entries = match import::parse(&bytes, Some(format), &dec, &defaults) {
        // The problems before reading stopped, as any problems are listed.
        Err(e @ import::ImportError::CutOff { .. }) => {
            show("error", import::limits::first_problems(&e));
            bail!("{}: {e}", a.file.display())
        }
        r => r?,
    };
    drop(dec);
    let map = match &a.map {
        Some(p) => {
            let text = read_limited_text(p, MAX_FILE_BYTES)?;
            read_map(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?
        }
        None => Default::default(),
    };
    // One import at a time from here to its commit, each checking the file against what
    // the one before stored (a dry run stores nothing, and waits for none).
    let _turn = match store.filter(|_| !a.dry_run) {
        Some(store) => Some(store.import_turn().await?),
        None => None,
    };
    let stored: HashMap<String, TokenRecord> = match store {
        Some(store) => store.list_tokens(&TokenFilter::default()).await?,
        None => Vec::new(),
    }
    .into_iter()
    .map(|r| (r.token.serial.clone(), r))
    .collect();
    let existing: HashSet<String> = stored.keys().cloned().collect();

    let bar = ProgressBar::new(entries.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg:10} [{bar:40}] {pos}/{len} ({per_sec})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message("checking");
    let mut p = plan(entries, &map, &existing, a.replace, || bar.inc(1));
    bar.finish_and_clear();
    // Owners as logins will name them: CORP\alice in a file is alice with strip_domains.
    let mut by_upn: Vec<String> = Vec::new();
    for t in &mut p.ready {
        if let Some(user) = &mut t.token.user {
            let key = cfg.user_names.key(user);
            if user.contains('@') && !key.contains('@') {
                by_upn.push(user.clone());
            }
            *user = key;
        }
    }
    if let Some(first) = by_upn.first() {
        // In Active Directory a UPN's prefix may be another account's sAMAccountName
        // (jsmith@corp for Jane, whose sAMAccountName is jsmith2, beside John's jsmith):
        // the token went to John, silently, and Jane was refused.
        eprintln!(
            "note: {} owner(s) are named by UPN ({}{}) and go to the account named by the \
             part before the @, as [users] strip_domains makes logins do. Where a UPN's \
             prefix is another account's sAMAccountName, that account gets the token: \
             compare with the directory, or give those owners with --map",
            by_upn.len(),
            super::printable(first),
            if by_upn.len() > 1 { ", …" } else { "" }
        );
    }
    if let Some(w) = owners_with_a_domain(cfg, &p.ready) {
        eprintln!("warning: {w}");
    }
    // The rules `token assign` keeps hold for a replacing import too.
    let refused = super::token_replace::refuse_moves(
        &mut p.ready,
        &stored,
        a.force,
        crate::clock::Clock::now(&crate::clock::SystemClock),
    );
    p.problems.extend(refused);
    let shared = import::shared_seeds::refuse_shared_seeds(&mut p.ready, &stored);
    p.problems.extend(shared);

    // Capped as problems are: a list pasted twice has a note for each of its rows.
    show("note", &p.notes);
    show("note", &p.ignored);
    show("error", &p.problems);
    if !p.problems.is_empty() && !a.skip_invalid {
        // --skip-invalid only helps when some token is valid: with none it imports nothing
        // and exits 1 too.
        let way_out = match p.ready.len() {
            0 => "fix them; no token in the file is valid".to_string(),
            n => format!("fix them, or use --skip-invalid to import the {n} valid token(s)"),
        };
        eprintln!(
            "{}: {} problem(s); nothing was imported ({way_out})",
            a.file.display(),
            p.problems.len(),
        );
        let why = format!("{} problem(s): {}", p.problems.len(), places(&p.problems));
        audit_refusal(cfg, store, &a, &why).await;
        return Ok(ExitCode::from(1));
    }
    let owners: Vec<&str> = p
        .ready
        .iter()
        .filter_map(|t| t.token.user.as_deref())
        .collect();
    let (missing, other_names, dns) =
        super::directory_name::owners_in_directory(cfg, &owners).await;
    // Why owners named by DN could not be compared with their entries, if they could not:
    // such a key is refused as a mismatch is (review: the same file was refused with the
    // directory up and stored with it down, and with no [ldap] section at all).
    let unchecked = match &missing {
        _ if cfg.ldap.is_none() => Some("there is no [ldap] section to ask".to_string()),
        Some(w) if w.starts_with("owners not checked") => Some(w.clone()),
        _ => None,
    };
    if let Some(w) = missing {
        eprintln!("warning: {w}");
    }
    let mut wrong = not_the_entry_named(&p.ready, &dns);
    if let Some(why) = &unchecked {
        wrong.extend(p.ready.iter().filter_map(|t| {
            let named = t.owner_dn.as_deref()?;
            Some(import::Problem {
                origin: t.origin.clone(),
                message: format!(
                    "UserId {} names its owner by DN, which could not be compared with the \
                     directory entry of {} ({why})",
                    super::printable(named),
                    super::printable(t.token.user.as_deref().unwrap_or_default())
                ),
            })
        }));
    }
    if !wrong.is_empty() {
        show("error", &wrong);
        if !a.skip_invalid {
            eprintln!(
                "{}: {} owner(s) are not, or could not be checked to be, the directory \
                 entry the file names; nothing was imported (give those owners with --map, \
                 or use --skip-invalid to import the others)",
                a.file.display(),
                wrong.len(),
            );
            let why = format!("{} problem(s): {}", wrong.len(), places(&wrong));
            audit_refusal(cfg, store, &a, &why).await;
            return Ok(ExitCode::from(1));
        }
        let refused: HashSet<&str> = wrong.iter().map(|w| w.origin.as_str()).collect();
        p.ready.retain(|t| !refused.contains(t.origin.as_str()));
        p.problems.extend(wrong);
    }
    let held = held_under_other_names(cfg, &other_names, &stored);
    for w in held.iter().take(SHOW_PROBLEMS) {
        eprintln!("warning: {w}");
    }
    if held.len() > SHOW_PROBLEMS {
        eprintln!(
            "warning: … and {} more owner(s) whose entry holds tokens under another name",
            held.len() - SHOW_PROBLEMS
        );
    }
    let replaced = if a.replace {
        super::token_replace::replaced(&p.ready, &stored)
    } else {
        Vec::new()
    };
    // Replacing a token whose stored seed did not open: its HOTP counter stays as stored
    // (`kept_on_replace`), which is right when the file has the same seed.
    let broken: Vec<String> = replaced
        .iter()
        .filter(|r| {
            stored
                .get(r.serial())
                .is_some_and(|s| s.extra.unreadable_seed.is_some())
        })
        .map(|r| r.serial().to_string())
        .collect();
    for w in broken_beside(&p.ready, &stored) {
        eprintln!("warning: {w}");
    }
    // Checked again under the import's write lock: the checks above read a snapshot.
    let seen = crate::store::InventorySeen {
        last_id: stored.values().map(|r| r.token.id).max().unwrap_or(0),
        owners: p
            .ready
            .iter()
            .filter_map(|t| {
                let before = stored.get(&t.token.serial)?;
                Some((t.token.serial.clone(), before.token.user.clone()))
            })
            .collect(),
    };
    drop(stored);
    // Owners as they will be after the import: a replaced token the file names no owner
    // for keeps its stored one, and is not "in stock".
    let owned: HashMap<&str, bool> = replaced
        .iter()
        .map(|r| (r.serial(), r.owner().is_some()))
        .collect();
    let assigned = p
        .ready
        .iter()
        .filter(|t| {
            let serial = t.token.serial.as_str();
            owned.get(serial).copied().unwrap_or(t.token.user.is_some())
        })
        .count();
    // A map line naming a serial the file lacks is no token skipped: counted apart, or a
    // file of 10 valid tokens with one stale map line read "1 invalid skipped".
    let map_lines = p
        .problems
        .iter()
        .filter(|p| p.origin.starts_with(import::plan::MAP_LINE))
        .count();
    let unused_map = match map_lines {
        0 => String::new(),
        n => format!(", {n} map line(s) naming no serial in the file"),
    };
    let summary = format!(
        "{} token(s) ({} assigned, {} in stock, {} replacing), {} invalid skipped, {} \
         ignored{unused_map}",
        p.ready.len(),
        assigned,
        p.ready.len() - assigned,
        // What is left to replace after the refusals, not what the file named.
        replaced.len(),
        p.problems.len() - map_lines,
        p.ignored.len()
    );
    // Keys left out are notes among what may be thousands of lines, and the import still
    // succeeds: its last line says so too.
    let left_out = match p.left_out {
        0 => String::new(),
        n => format!("; {n} key(s) left out (not HOTP or TOTP): see the notes above"),
    };
    if p.ready.is_empty() {
        // A script must not read "imported" from a run that stored nothing.
        eprintln!(
            "{}: no valid token to import ({summary}){left_out}; nothing was imported",
            a.file.display()
        );
        // The skipped rows named, as in every other import record (`skipped: line 2, …`).
        let why = format!("no valid token ({summary}){}", skipped(&p.problems));
        audit_refusal(cfg, store, &a, &why).await;
        return Ok(ExitCode::from(1));
    }
    if a.dry_run {
        let fresh = if store.is_none() {
            " (there is no store yet: checked against no tokens)"
        } else {
            ""
        };
        println!("dry run: would import {summary}; nothing was stored{fresh}{left_out}");
        return Ok(ExitCode::SUCCESS);
    }
    let store = store.context("no store to import into")?;
    let spinner =
        ProgressBar::new_spinner().with_message(format!("storing {} token(s)", p.ready.len()));
    spinner.enable_steady_tick(std::time::Duration::from_millis(100));
    // New tokens given to a user: each is audited under its owner, as `token assign` is, so
    // `radmfa audit --user` shows where a user's token came from.
    let replacing: HashSet<&str> = replaced.iter().map(|r| r.serial()).collect();
    let assigned_now: Vec<(String, String)> = p
        .ready
        .iter()
        .filter(|t| !replacing.contains(t.token.serial.as_str()))
        .filter_map(|t| Some((t.token.serial.clone(), t.token.user.clone()?)))
        .collect();
    let batch: Vec<_> = p.ready.into_iter().map(|t| (t.token, t.extra)).collect();
    let file = a.file.display().to_string();
    // The import's record, one per token given to a user and those of the replaced tokens
    // go into the import's own transaction: there exactly when the tokens are, whatever
    // stops the command.
    let token_record = super::tokens::token_record;
    let summary_record = token_record(
        cfg,
        "",
        "import",
        "",
        Some(format!(
            "imported {summary} from {file}{}",
            skipped(&p.problems)
        )),
    );
    let records: Vec<AuditRecord> = std::iter::once(summary_record)
        .chain(assigned_now.iter().map(|(serial, user)| {
            let reason = format!("token {serial} assigned to {user}, imported from {file}");
            token_record(cfg, user, "assign", serial, Some(reason))
        }))
        .chain(super::token_replace::records(cfg, &replaced, &file))
        .collect();
    let written = store
        .import_tokens_audited(&batch, a.replace, &records, Some(&seen))
        .await;
    spinner.finish_and_clear();
    if let Err(crate::store::StoreError::InventoryChanged(why)) = &written {
        eprintln!("{}: {why}", a.file.display());
        audit_refusal(cfg, Some(store), &a, why).await;
        return Ok(ExitCode::from(1));
    }
    written.context("storing the tokens; nothing was imported")?;
    // Forgetting previous owners' remembered logins is a security step, with its records
    // after it; every failure is reported.
    super::token_replace::after_import(cfg, store, &replaced, &file)
        .await
        .context("the tokens are imported")?;
    println!(
        "imported {summary} from {} in {:.2} s{left_out}",
        a.file.display(),
        started.elapsed().as_secs_f64()
    );
    for serial in broken {
        println!(
            "note: {}: was BROKEN (its stored seed did not open), now has the file's seed; \
             an HOTP counter stayed as stored, so used codes stay used: if the token's codes \
             are refused, `radmfa token resync` it",
            super::printable(&serial)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The audit record of an import the file's problems refused (`import-refused`): an
/// attempt to add tokens is worth finding afterwards (a helpdesk account trying files), as
/// `token resync`'s refusals are. Not for a dry run, which stores nothing, nor for a file
/// that could not be read at all. Where, never what: the messages may quote the file's
/// values. Written after the refusal is said: a failed write is a warning.
async fn audit_refusal(cfg: &Config, store: Option<&dyn Store>, a: &ImportArgs, why: &str) {
    let Some(store) = store.filter(|_| !a.dry_run) else {
        return;
    };
    let reason = format!("import of {} refused: {why}", a.file.display());
    let rec = super::tokens::token_record(cfg, "", "import-refused", "", Some(reason));
    if let Err(e) = store.append_audit(&rec).await {
        eprintln!("warning: the refusal's audit record could not be written: {e}");
    }
}

/// The tokens whose owner the file named by a DN (`UserId`) that is not the DN of the
/// entry the name cut from it finds (`dns`: owner → its entry's DN): a PSKC file from
/// Active Directory names owners `CN=…`, and a CN is no login name there, so `CN=jsmith`
/// (John's entry) gave the token to `jsmith`, Jane's sAMAccountName, with no word (red
/// team). An owner the directory did not find is warned about apart.
fn not_the_entry_named(
    ready: &[import::ImportedToken],
    dns: &HashMap<String, String>,
) -> Vec<import::Problem> {
    ready
        .iter()
        .filter_map(|t| {
            let named = t.owner_dn.as_deref()?;
            let user = t.token.user.as_deref()?;
            let found = dns.get(user)?;
            (!same_dn(named, found)).then(|| import::Problem {
                origin: t.origin.clone(),
                message: format!(
                    "UserId {} gives the token to {}, whose directory entry is {}: not the \
                     entry the file names",
                    super::printable(named),
                    super::printable(user),
                    super::printable(found)
                ),
            })
        })
        .collect()
}

/// Whether two DNs are the same, as far as spelling goes (RFC 4514): attribute names and
/// values compared without case, spaces around `=`, `,` and `+` left out, escapes read
/// (`\,` and `\2C` are one comma, `\C3\BC` is ü), LDAPv2's quoted values read, and the
/// values of a multi-valued RDN in any order. A slapd entry under `ou=Sales\, EMEA` comes
/// back as `ou=Sales\2C EMEA`, and was refused as another entry than the file's (review).
/// Strict, as a file's DN is checked: one that is no DN names no entry, whatever it is
/// compared with (`auth::ldap::same_dn` falls back to spelling for the directory's own).
fn same_dn(a: &str, b: &str) -> bool {
    use crate::auth::ldap::parse_dn;
    parse_dn(a).is_some_and(|a| Some(a) == parse_dn(b))
}

/// Rows or key elements named in an import's audit record before "and N more".
const RECORD_PLACES: usize = 20;

/// Where `problems` are, for an import's audit record (what `--skip-invalid` left out, or
/// what refused the file): the first rows or key elements (a PSKC key's serial with it), and
/// how many more. Not the messages, which stay on the admin's terminal: they may quote a
/// file's values.
fn places(problems: &[import::Problem]) -> String {
    let first: Vec<&str> = problems
        .iter()
        .take(RECORD_PLACES)
        .map(|p| p.origin.as_str())
        .collect();
    match problems.len().saturating_sub(RECORD_PLACES) {
        0 => first.join(", "),
        n => format!("{} and {n} more", first.join(", ")),
    }
}

/// `; skipped: …` for the import's record when `--skip-invalid` left rows out.
fn skipped(problems: &[import::Problem]) -> String {
    match problems.is_empty() {
        true => String::new(),
        false => format!("; skipped: {}", places(problems)),
    }
}

fn show(level: &str, problems: &[import::Problem]) {
    let runs = runs(problems);
    for line in runs.iter().take(SHOW_PROBLEMS) {
        eprintln!("{level}: {line}");
    }
    if runs.len() > SHOW_PROBLEMS {
        let rest: usize = runs[SHOW_PROBLEMS..].iter().map(|r| r.count).sum();
        eprintln!("{level}: … and {rest} more");
    }
}

/// Problems in a row with one message, told once.
struct Run<'a> {
    first: &'a import::Problem,
    last: &'a import::Problem,
    count: usize,
}

impl std::fmt::Display for Run<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.count {
            1 => write!(f, "{}", self.first),
            n => write!(
                f,
                "{} to {} ({n} in all): {}",
                self.first.origin, self.last.origin, self.first.message
            ),
        }
    }
}

/// Problems with the same message on consecutive lines (or key packages) as one: a file
/// saved with ';' between its fields says so on every row, and 50 copies of that pushed
/// every other problem out of sight behind "… and N more". Lines apart stay apart, each
/// named, so that "line 17 to line 933" never hides which lines between are fine.
fn runs(problems: &[import::Problem]) -> Vec<Run<'_>> {
    let mut runs: Vec<Run<'_>> = Vec::new();
    for p in problems {
        match runs.last_mut() {
            Some(run) if run.last.message == p.message && follows(&run.last.origin, &p.origin) => {
                run.last = p;
                run.count += 1;
            }
            _ => runs.push(Run {
                first: p,
                last: p,
                count: 1,
            }),
        }
    }
    runs
}

/// Whether origin `b` comes right after `a`: "line 8" after "line 7", "KeyPackage 4 (line
/// 52)" after "KeyPackage 3 (line 40)". The first number counts, after the same words.
fn follows(a: &str, b: &str) -> bool {
    fn split(o: &str) -> Option<(&str, u64)> {
        let start = o.find(|c: char| c.is_ascii_digit())?;
        let digits = o[start..]
            .find(|c: char| !c.is_ascii_digit())
            .map_or(&o[start..], |end| &o[start..start + end]);
        Some((&o[..start], digits.parse().ok()?))
    }
    matches!((split(a), split(b)), (Some((pa, na)), Some((pb, nb))) if pa == pb && nb == na + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(line: u32, message: &str) -> import::Problem {
        import::Problem {
            origin: format!("line {line}"),
            message: message.into(),
        }
    }

    #[test]
    fn dns_are_the_same_whatever_their_case_and_spaces() {
        assert!(same_dn(
            "UID=bob, OU=People,DC=Example,DC=org",
            "uid=bob,ou=people,dc=example,dc=org"
        ));
        assert!(same_dn("cn = Smith\\, John,dc=x", "CN=smith\\, john, DC=X"));
        assert!(!same_dn(
            "CN=jsmith,OU=Contractors,DC=other",
            "uid=jsmith,ou=people,dc=other"
        ));
        assert!(!same_dn("cn=Smith\\, John,dc=x", "cn=Smith,cn=John,dc=x"));
        // Escapes read: what slapd returns for what an exporter wrote.
        assert!(same_dn(
            "UID=frank,OU=Sales\\, EMEA,OU=people,DC=example,DC=org",
            "uid=frank,ou=Sales\\2C EMEA,ou=people,dc=example,dc=org"
        ));
        assert!(same_dn(
            "uid=gina,ou=Z\\C3\\BCrich,dc=x",
            "uid=gina,ou=Zürich,dc=x"
        ));
        assert!(same_dn(
            "uid=alice,ou=\"people\",dc=x",
            "uid=alice,ou=people,dc=x"
        ));
        assert!(same_dn("cn=a+uid=b,dc=x", "UID=b + CN=a,dc=x"));
        assert!(!same_dn("cn=a+uid=b,dc=x", "cn=a,uid=b,dc=x"));
        // Spaces kept where escaped.
        assert!(!same_dn("cn=a\\ ,dc=x", "cn=a,dc=x"));
        // Not a DN: never the same.
        assert!(!same_dn("cn=a\\", "cn=a\\"));
        assert!(!same_dn("jsmith", "jsmith"));
    }

    #[test]
    fn a_run_of_one_message_is_one_line() {
        let mut problems: Vec<_> = (1..=300).map(|l| problem(l, "separated by ';'")).collect();
        problems.push(problem(301, "secret is empty"));
        problems.push(problem(302, "separated by ';'"));
        let shown: Vec<String> = runs(&problems).iter().map(|r| r.to_string()).collect();
        assert_eq!(
            shown,
            [
                "line 1 to line 300 (300 in all): separated by ';'",
                "line 301: secret is empty",
                "line 302: separated by ';'",
            ]
        );
        assert!(runs(&[]).is_empty());
    }

    /// The same message on lines apart is not one run: every line is named.
    #[test]
    fn lines_apart_are_named_each() {
        let problems = [1, 5, 9, 10].map(|l| problem(l, "secret is empty"));
        let shown: Vec<String> = runs(&problems).iter().map(|r| r.to_string()).collect();
        assert_eq!(
            shown,
            [
                "line 1: secret is empty",
                "line 5: secret is empty",
                "line 9 to line 10 (2 in all): secret is empty",
            ]
        );
        assert!(follows("KeyPackage 3 (line 40)", "KeyPackage 4 (line 52)"));
        assert!(!follows("line 3", "map line 4"));
        assert!(!follows("line 3", "line 3"));
    }
}
