//! Sealing of stored secrets (token seeds) with a key that lives in its own file.
//!
//! The database only ever holds sealed values: a stolen database file (or backup) is useless
//! without the key file, which is kept apart from it (mode 0600, never in the database).
//!
//! Sealed format: `version (1 byte) || nonce (24 bytes) || ciphertext || tag (16 bytes)`,
//! XChaCha20-Poly1305 with a random nonce. The caller's AAD (for token seeds: the token
//! serial) and the version byte are authenticated, so a ciphertext copied onto another row,
//! or a tampered header, fails to open.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::path::Path;
use std::sync::Arc;

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{Key, KeyInit, XChaCha20Poly1305, XNonce};
use rand::RngCore;
use zeroize::Zeroizing;

use super::StoreError;
use crate::secret::Secret;

/// Current format version, the first byte of every sealed value.
const VERSION_1: u8 = 1;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const KEY_LEN: usize = 32;
/// Longest key file we are willing to read (64 hex digits plus generous whitespace).
const MAX_KEY_FILE_LEN: u64 = 256;

/// The associated data of both stores' `key_check` row, whose plaintext is a
/// published constant. Token seeds use their serial as associated data, so a token with this
/// serial could be given the key-check ciphertext by anyone able to write to the database and
/// would then open to a known seed. No token may have it: imports refuse it and opening a seed
/// under it fails ([`crate::store::columns::open_seed`]).
pub const KEY_CHECK_AAD: &str = "radmfa:key_check";

/// The plaintext sealed into the `key_check` row: a database remembers which key it was set up
/// with, so a node or a restored backup started with another key file stops at once instead
/// of failing every login whose seed it cannot open.
const KEY_CHECK_VALUE: &[u8] = b"radmfa key check v1";

/// The `key_check` row's value for this key.
pub fn seal_key_check(sealer: &Sealer) -> Vec<u8> {
    sealer.seal(KEY_CHECK_VALUE, KEY_CHECK_AAD.as_bytes())
}

/// Whether `stored` (a `key_check` row) was sealed with this key.
pub fn opens_key_check(sealer: &Sealer, stored: &[u8]) -> bool {
    sealer
        .open(stored, KEY_CHECK_AAD.as_bytes())
        .is_ok_and(|v| v.expose() == KEY_CHECK_VALUE)
}

/// Encrypts and decrypts stored secrets. Cheap to clone (the key is shared, and zeroed when
/// the last clone is dropped).
#[derive(Clone)]
pub struct Sealer {
    cipher: Arc<XChaCha20Poly1305>,
    /// HMAC key for one-time SMS codes, derived from the store key: a code's stored hash
    /// cannot be brute-forced (a 6-digit code has a million candidates) by someone who
    /// reads the database without the key file.
    code_key: Arc<Zeroizing<[u8; KEY_LEN]>>,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealer(***)")
    }
}

impl Sealer {
    /// A sealer with the given key (tests, or keys from elsewhere).
    pub fn from_key(bytes: [u8; KEY_LEN]) -> Self {
        let key = Zeroizing::new(bytes);
        Self::from_key_ref(&key)
    }

    fn from_key_ref(key: &[u8; KEY_LEN]) -> Self {
        use hmac::{Hmac, Mac};
        // A separate key per use: HMAC-SHA256(store key, label), never the AEAD key itself.
        let mut derive =
            <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
        derive.update(b"radmfa: SMS code hash key v1");
        let mut code_key = Zeroizing::new([0u8; KEY_LEN]);
        code_key.copy_from_slice(&derive.finalize().into_bytes());
        Sealer {
            cipher: Arc::new(XChaCha20Poly1305::new(Key::from_slice(key))),
            code_key: Arc::new(code_key),
        }
    }

    /// The key SMS code hashes are keyed with ([`crate::mfa::sms`]).
    pub fn code_key(&self) -> &[u8] {
        &self.code_key[..]
    }

    /// Seals `plaintext`, binding it to `aad` (which is authenticated, not stored).
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let full_aad = full_aad(VERSION_1, aad);
        let ciphertext = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &full_aad,
                },
            )
            // Only fails for inputs beyond the cipher's length limit (~256 GiB).
            .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory sizes");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        out.push(VERSION_1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        out
    }

    /// Opens a value produced by [`Sealer::seal`] with the same key and `aad`.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Secret, StoreError> {
        let (&version, rest) = sealed
            .split_first()
            .ok_or_else(|| StoreError::Decrypt("empty sealed value".into()))?;
        if version != VERSION_1 {
            return Err(StoreError::Decrypt(format!(
                "unknown sealed-value version {version}"
            )));
        }
        if rest.len() < NONCE_LEN + TAG_LEN {
            return Err(StoreError::Decrypt("sealed value too short".into()));
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let full_aad = full_aad(version, aad);
        let plaintext = self
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &full_aad,
                },
            )
            .map_err(|_| {
                StoreError::Decrypt(
                    "authentication failed (wrong key, tampered value or value moved from another row)"
                        .into(),
                )
            })?;
        Ok(Secret::new(plaintext))
    }
}

/// The AEAD associated data: the version byte, then the caller's context.
fn full_aad(version: u8, aad: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + aad.len());
    v.push(version);
    v.extend_from_slice(aad);
    v
}

/// Opens `path` for reading without waiting: opening a FIFO (a named pipe put where the key
/// file belongs) waits for a writer, and `serve`, `config check` and every command hung
/// there with nothing said (red team). `load_from` then refuses it as not a regular file.
/// O_NONBLOCK changes nothing for a regular file's reads.
fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

/// The key file: 32 random bytes as 64 hex digits (and a newline), mode 0600.
pub struct KeyFile;

impl KeyFile {
    /// Loads the key at `path`, creating it with a fresh random key (mode 0600) if the file
    /// does not exist. Refuses a file readable or writable by group/others, and a malformed
    /// file. The directory must exist.
    pub fn load_or_create(path: &Path) -> Result<Sealer, StoreError> {
        match open_nonblocking(path) {
            Ok(file) => Self::load_from(path, file),
            Err(e) if e.kind() == ErrorKind::NotFound => match Self::create(path) {
                Ok(sealer) => Ok(sealer),
                // Another process created it between our open and create: use theirs.
                Err(CreateError::Exists) => Self::load(path),
                Err(CreateError::Other(e)) => Err(e),
            },
            Err(e) => Err(key_err(path, cannot_open(path, &e))),
        }
    }

    /// Loads an existing key file (never creates one).
    pub fn load(path: &Path) -> Result<Sealer, StoreError> {
        let file = open_nonblocking(path).map_err(|e| key_err(path, cannot_open(path, &e)))?;
        Self::load_from(path, file)
    }

    fn load_from(path: &Path, file: File) -> Result<Sealer, StoreError> {
        // Checked on the open descriptor, so the file we check is the file we read.
        let meta = file
            .metadata()
            .map_err(|e| key_err(path, format!("cannot stat: {e}")))?;
        if !meta.is_file() {
            return Err(key_err(path, "not a regular file".into()));
        }
        check_private(path, &meta)?;
        if meta.len() > MAX_KEY_FILE_LEN {
            return Err(malformed(path));
        }
        let mut text = Zeroizing::new(String::new());
        file.take(MAX_KEY_FILE_LEN + 1)
            .read_to_string(&mut text)
            .map_err(|_| malformed(path))?;
        let hex_text = text.trim_matches(|c: char| c.is_ascii_whitespace());
        if hex_text.len() != 2 * KEY_LEN {
            return Err(malformed(path));
        }
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        hex::decode_to_slice(hex_text, &mut key[..]).map_err(|_| malformed(path))?;
        Ok(Sealer::from_key_ref(&key))
    }

    /// Written whole to a private temporary file beside `path`, then linked into place
    /// (`link(2)` fails if `path` exists): a process that loses the race to create it never
    /// reads it half-written (it did, and failed with "malformed"), and a crash leaves no
    /// truncated key at `path`.
    fn create(path: &Path) -> Result<Sealer, CreateError> {
        let other = |what: &str, e: std::io::Error| {
            CreateError::Other(key_err(path, format!("cannot {what}: {e}")))
        };
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let tmp = path.with_file_name(format!(
            ".{name}.{}.{:016x}.tmp",
            std::process::id(),
            rand::rngs::OsRng.next_u64()
        ));
        let mut file = create_private(&tmp).map_err(|e| other("create", e))?;
        give_to_directory_owner(&file, path).map_err(|e| other("chown", e))?;
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        rand::rngs::OsRng.fill_bytes(&mut key[..]);
        let mut text = Zeroizing::new(hex::encode(&key[..]));
        text.push('\n');
        let written = file
            .write_all(text.as_bytes())
            .and_then(|()| file.sync_all());
        drop(file);
        let linked =
            written.map_err(|e| other("write", e)).and_then(|()| {
                match std::fs::hard_link(&tmp, path) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => Err(CreateError::Exists),
                    Err(e) => Err(other("create", e)),
                }
            });
        let _ = std::fs::remove_file(&tmp);
        linked?;
        sync_parent_dir(path);
        // Said, because nothing else shows it: the seeds are lost without this file, and
        // every node of a shared store needs a copy (docs/ha.md, docs/operations.md).
        let said = format!(
            "created a new seed key in {} (mode 0600): back it up apart from the database; \
             every node sharing the store needs a copy of it",
            path.display()
        );
        // `serve` logs it. An admin command has no log: the first enrollment or import
        // on a new host (scripts/demo.sh enrolls before it serves) made the key unseen.
        if tracing::dispatcher::has_been_set() {
            tracing::info!("{said}");
        } else {
            eprintln!("note: {said}");
        }
        Ok(Sealer::from_key_ref(&key))
    }
}

enum CreateError {
    Exists,
    Other(StoreError),
}

/// Why the key file did not open; for a refusal, whom it must be readable by: a key copied
/// by root (`scp -p` to another node) stays root's, and "Permission denied" alone did not
/// say that the service's user must own it. Both ways out are named: an admin command run
/// by another account was told to chown the key to itself, which then stopped the service.
fn cannot_open(path: &Path, e: &std::io::Error) -> String {
    #[cfg(unix)]
    if e.kind() == ErrorKind::PermissionDenied {
        use std::os::unix::fs::MetadataExt;
        let owner = std::fs::metadata(path)
            .ok()
            .and_then(|m| nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(m.uid())).ok())
            .flatten()
            .map(|u| u.name);
        let admin = match owner {
            Some(o) => {
                format!("run it as root or as the key's owner ({o}: sudo -u {o} radmfa ...)")
            }
            None => "run it as root or as the key's owner".to_string(),
        };
        return format!(
            "cannot open: {e}; radmfa runs as {}. If this is radmfa serve, that account must \
             own it (chown it to that user, keep mode 0600); if it is an admin command, {admin}",
            super::writable::runs_as()
        );
    }
    format!("cannot open: {e}")
}

fn key_err(path: &Path, reason: String) -> StoreError {
    StoreError::KeyFile {
        path: path.display().to_string(),
        reason,
    }
}

fn malformed(path: &Path) -> StoreError {
    // Never echo the content: it may be (most of) a key.
    key_err(
        path,
        format!(
            "malformed: expected {} hex digits (a {KEY_LEN}-byte key)",
            2 * KEY_LEN
        ),
    )
}

/// A new file with mode exactly 0600 (fails if it exists): the key file here, and the
/// database and its backups (`store::sqlite`, `admin::backup`).
#[cfg(unix)]
pub(crate) fn create_private(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    // The umask can only remove bits from 0600; make it exactly 0600.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(file)
}

/// A store file root has just made (an admin's first `user enroll-totp`, `token import` or
/// `db migrate` on a new host, before the service's first start) given to the owner of the
/// directory it is in, the service's user, as SQLite gives its -wal and -shm files and
/// `serving_lock` its lock file. Left root's 0600, the service refused to start, once for
/// the database and once more for the key. A root-owned directory (`/etc/radmfa`) keeps
/// the file root's: its owner then is root.
#[cfg(unix)]
pub(crate) fn give_to_directory_owner(file: &File, path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let owner = std::fs::metadata(dir)?;
    if owner.uid() == 0 {
        return Ok(());
    }
    std::os::unix::fs::fchown(file, Some(owner.uid()), Some(owner.gid()))
}

#[cfg(not(unix))]
pub(crate) fn give_to_directory_owner(_file: &File, _path: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(not(unix))]
pub(crate) fn create_private(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().write(true).create_new(true).open(path)
}

#[cfg(unix)]
fn check_private(path: &Path, meta: &std::fs::Metadata) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(key_err(
            path,
            format!(
                "is accessible by group or others (mode {mode:04o}); refusing to use it, \
                 restrict it with `chmod 600 {}`",
                path.display()
            ),
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path, _meta: &std::fs::Metadata) -> Result<(), StoreError> {
    Ok(())
}

/// Makes the new directory entry durable (best effort).
fn sync_parent_dir(path: &Path) {
    #[cfg(unix)]
    {
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if let Ok(dir) = File::open(parent) {
            let _ = dir.sync_all();
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_refused_to_the_service_says_whom_it_must_belong_to() {
        let denied = std::io::Error::from_raw_os_error(13); // EACCES
        let said = cannot_open(Path::new("/"), &denied);
        assert!(
            said.contains("Permission denied")
                && said.contains(&format!(
                    "radmfa runs as {}. If this is radmfa serve, that account must own it",
                    super::super::writable::runs_as()
                ))
                && said.contains(
                    "an admin command, run it as root or as the key's owner (root: sudo -u root"
                ),
            "{said}"
        );
        let missing = cannot_open(Path::new("/"), &std::io::Error::from(ErrorKind::NotFound));
        assert!(!missing.contains("must own it"), "{missing}");
    }

    fn sealer(b: u8) -> Sealer {
        Sealer::from_key([b; KEY_LEN])
    }

    #[test]
    fn the_sms_code_key_is_derived_per_store_key_and_is_not_the_key() {
        let a = Sealer::from_key([1; KEY_LEN]);
        assert_eq!(a.code_key(), Sealer::from_key([1; KEY_LEN]).code_key());
        assert_ne!(a.code_key(), Sealer::from_key([2; KEY_LEN]).code_key());
        assert_ne!(a.code_key(), &[1u8; KEY_LEN][..]);
        assert_eq!(a.code_key().len(), KEY_LEN);
    }

    #[test]
    fn round_trip() {
        let s = sealer(7);
        let sealed = s.seal(b"seed bytes", b"TOTP0001");
        assert_eq!(sealed[0], VERSION_1);
        assert_eq!(sealed.len(), 1 + NONCE_LEN + b"seed bytes".len() + TAG_LEN);
        assert_eq!(
            s.open(&sealed, b"TOTP0001").unwrap().expose(),
            b"seed bytes"
        );
        // Empty plaintext works too.
        let empty = s.seal(b"", b"x");
        assert!(s.open(&empty, b"x").unwrap().is_empty());
    }

    #[test]
    fn nonces_differ() {
        let s = sealer(7);
        assert_ne!(s.seal(b"same", b"a"), s.seal(b"same", b"a"));
    }

    #[test]
    fn sealed_value_does_not_contain_plaintext() {
        let s = sealer(7);
        let pt = b"0123456789abcdefghij";
        let sealed = s.seal(pt, b"a");
        assert!(!sealed.windows(pt.len()).any(|w| w == pt));
    }

    #[test]
    fn wrong_aad_fails() {
        let s = sealer(7);
        let sealed = s.seal(b"seed", b"TOTP0001");
        assert!(matches!(
            s.open(&sealed, b"TOTP0002"),
            Err(StoreError::Decrypt(_))
        ));
        assert!(s.open(&sealed, b"").is_err());
    }

    #[test]
    fn wrong_key_fails() {
        let sealed = sealer(7).seal(b"seed", b"a");
        assert!(matches!(
            sealer(8).open(&sealed, b"a"),
            Err(StoreError::Decrypt(_))
        ));
    }

    #[test]
    fn tamper_fails() {
        let s = sealer(7);
        let sealed = s.seal(b"seed material", b"a");
        for i in 0..sealed.len() {
            let mut t = sealed.clone();
            t[i] ^= 0x01;
            assert!(s.open(&t, b"a").is_err(), "flipping byte {i} must fail");
        }
        // Truncations.
        for n in 0..sealed.len() {
            assert!(s.open(&sealed[..n], b"a").is_err(), "truncated to {n}");
        }
        // Appended byte.
        let mut longer = sealed.clone();
        longer.push(0);
        assert!(s.open(&longer, b"a").is_err());
    }

    #[test]
    fn debug_is_masked() {
        assert_eq!(format!("{:?}", sealer(7)), "Sealer(***)");
    }

    #[cfg(unix)]
    fn mode_of(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[cfg(unix)]
    #[test]
    fn key_file_created_0600_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("radmfa.key");
        let a = KeyFile::load_or_create(&path).unwrap();
        assert_eq!(mode_of(&path), 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim().len(), 64);
        assert!(text.trim().bytes().all(|b| b.is_ascii_hexdigit()));

        // Second load returns the same key: what one seals, the other opens.
        let b = KeyFile::load_or_create(&path).unwrap();
        let c = KeyFile::load(&path).unwrap();
        let sealed = a.seal(b"seed", b"serial");
        assert_eq!(b.open(&sealed, b"serial").unwrap().expose(), b"seed");
        assert_eq!(c.open(&sealed, b"serial").unwrap().expose(), b"seed");
        // And the file was not rewritten.
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }

    #[cfg(unix)]
    #[test]
    fn different_key_files_differ() {
        let dir = tempfile::tempdir().unwrap();
        let a = KeyFile::load_or_create(&dir.path().join("a.key")).unwrap();
        let b = KeyFile::load_or_create(&dir.path().join("b.key")).unwrap();
        let sealed = a.seal(b"seed", b"s");
        assert!(b.open(&sealed, b"s").is_err());
    }

    #[cfg(unix)]
    #[test]
    fn refuses_group_or_world_accessible_key_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("radmfa.key");
        KeyFile::load_or_create(&path).unwrap();
        for mode in [0o644, 0o640, 0o604, 0o620, 0o660] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = KeyFile::load_or_create(&path).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, StoreError::KeyFile { .. }), "{msg}");
            assert!(msg.contains(&path.display().to_string()), "{msg}");
            assert!(msg.contains("group or others"), "{msg}");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        KeyFile::load_or_create(&path).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn refuses_malformed_key_file() {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let dir = tempfile::tempdir().unwrap();
        let bad: [&[u8]; 6] = [
            b"",
            b"abcd\n",
            b"zz00000000000000000000000000000000000000000000000000000000000000\n",
            b"000000000000000000000000000000000000000000000000000000000000000000\n",
            b"0000000000000000000000000000000000000000000000000000000000000000 extra\n",
            b"\xff\xfe0000000000000000000000000000000000000000000000000000000000000000",
        ];
        for (i, content) in bad.iter().enumerate() {
            let path = dir.path().join(format!("bad{i}.key"));
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .unwrap();
            f.write_all(content).unwrap();
            drop(f);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            let err = KeyFile::load_or_create(&path).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains("malformed"), "case {i}: {msg}");
            assert!(msg.contains(&path.display().to_string()), "case {i}: {msg}");
            // The file is left alone, never silently replaced by a new key.
            assert_eq!(std::fs::read(&path).unwrap(), *content);
        }
        // Upper-case hex without a newline is accepted.
        let path = dir.path().join("upper.key");
        std::fs::write(&path, "AB".repeat(32)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let s = KeyFile::load(&path).unwrap();
        let t = Sealer::from_key([0xab; KEY_LEN]);
        assert_eq!(t.open(&s.seal(b"x", b""), b"").unwrap().expose(), b"x");
    }

    #[test]
    fn load_missing_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.key");
        let err = KeyFile::load(&path).unwrap_err();
        assert!(err.to_string().contains("missing.key"));
        assert!(!path.exists());
    }

    /// A named pipe where the key file belongs is refused at once: opening it for reading
    /// waited for a writer, and every command hung with nothing said.
    #[test]
    fn a_fifo_for_a_key_file_is_refused_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("radmfa.key");
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let p = path.clone();
        std::thread::spawn(move || {
            let _ = tx.send((
                KeyFile::load(&p).err().map(|e| e.to_string()),
                KeyFile::load_or_create(&p).err().map(|e| e.to_string()),
            ));
        });
        let (load, create) = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("loading a FIFO as the key file hung");
        for err in [load, create] {
            let err = err.expect("a FIFO taken as a key file");
            assert!(err.contains("not a regular file"), "{err}");
        }
    }

    #[test]
    fn create_in_missing_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope").join("radmfa.key");
        let err = KeyFile::load_or_create(&path).unwrap_err();
        assert!(matches!(err, StoreError::KeyFile { .. }));
    }
}
