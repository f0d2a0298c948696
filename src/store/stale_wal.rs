//! A `-wal` file left beside a database it does not belong to.
//!
//! SQLite applies whatever `<db>-wal` lies beside a database file when it opens it, without
//! asking whose it is. A restore that puts a backup in place but leaves the old `-wal`
//! behind (radmfa killed, or the host lost, before it merged its WAL; docs/operations.md's
//! restore step 2 skipped) gets the old database's last pages written over the backup's:
//! `config check --connect` said "ok" and every login then failed on a malformed database.
//! Every `radmfa db backup` (`VACUUM INTO`) is a rollback-journal file, and radmfa's own
//! databases are in WAL mode, so a rollback-journal database with a WAL that holds
//! something is a restore gone wrong: refused, before SQLite opens the file and applies it.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::StoreError;

/// Refuses the database at `db` when its header says rollback journal and a non-empty
/// `<db>-wal` lies beside it. Changes nothing. A database that is not there, or not (yet)
/// a SQLite file, is SQLite's to report.
pub fn refuse_stale_wal(db: &Path) -> Result<(), StoreError> {
    let wal = beside(db, "-wal");
    // The WAL first, then the header: a process switching a new database to WAL mode
    // commits the header's change before the WAL gets its first page, so this order never
    // sees the old header with the new WAL.
    if !std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
        return Ok(());
    }
    if !rollback_journal(db) {
        return Ok(());
    }
    Err(StoreError::StaleWal(format!(
        "{wal} is beside {db}, which is not in WAL mode (as a `radmfa db backup` file is not): \
         that WAL belongs to another database (left behind by a crash before a restore, \
         say), and SQLite would apply it to this one and damage it. Nothing was changed: \
         move {wal} and {shm} away (docs/operations.md, restore step 2), then run this again",
        wal = wal.display(),
        db = db.display(),
        shm = beside(db, "-shm").display(),
    )))
}

/// `<db><suffix>`, as SQLite names its side files.
fn beside(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Whether the SQLite header of `db` says rollback journal: its file format write and
/// read versions (bytes 18 and 19) are 1; a WAL-mode database has 2.
fn rollback_journal(db: &Path) -> bool {
    let mut header = [0u8; 20];
    let read = std::fs::File::open(db).and_then(|mut f| f.read_exact(&mut header));
    read.is_ok() && header.starts_with(b"SQLite format 3\0") && header[18..20] == [1, 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(write: u8, read: u8) -> Vec<u8> {
        let mut h = b"SQLite format 3\0".to_vec();
        h.extend_from_slice(&[0x10, 0x00, write, read]);
        h.resize(100, 0);
        h
    }

    #[test]
    fn only_a_rollback_database_with_a_wal_holding_something_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("radmfa.db");
        let wal = beside(&db, "-wal");
        // No database, an empty one (a new store), a WAL-mode one: none refused.
        std::fs::write(&wal, b"frames").unwrap();
        refuse_stale_wal(&db).expect("no database");
        std::fs::write(&db, b"").unwrap();
        refuse_stale_wal(&db).expect("an empty new file");
        std::fs::write(&db, header(2, 2)).unwrap();
        refuse_stale_wal(&db).expect("a WAL-mode database with its WAL");
        // A rollback-journal one: fine with no WAL or an empty one, refused with frames.
        std::fs::write(&db, header(1, 1)).unwrap();
        let said = refuse_stale_wal(&db).unwrap_err().to_string();
        assert!(
            said.contains(&wal.display().to_string())
                && said.contains(&format!("{}-shm", db.display()))
                && said.contains("Nothing was changed"),
            "{said}"
        );
        std::fs::write(&wal, b"").unwrap();
        refuse_stale_wal(&db).expect("an empty WAL");
        std::fs::remove_file(&wal).unwrap();
        refuse_stale_wal(&db).expect("no WAL");
    }
}
