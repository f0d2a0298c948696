//! Telling that a file changed on disk without reading it: its modification time and
//! length. Used where a file named in the config is picked up again when replaced in place
//! (RadSec's certificates and CRL on each new connection, `[ldap] ca_file` on SIGHUP).

use std::path::Path;
use std::time::SystemTime;

/// A file's modification time and length; `None` if it cannot be read.
pub type FileStamp = Option<(SystemTime, u64)>;

/// The stamp of the file at `path` now.
pub fn stamp(path: &Path) -> FileStamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}
