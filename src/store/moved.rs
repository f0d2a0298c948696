//! "This SQLite store was moved to PostgreSQL": a file beside the database, written by
//! `store migrate-to-postgres` once its copy is committed. The SQLite file stays usable
//! after a cutover, and a node, cron job or offboarding script still given the old config
//! would go on serving or changing a store nobody else reads: a token disabled there, or a
//! user deleted, stays enabled on the nodes. With the mark, `serve` and the admin commands
//! refuse the file and say why. The migration refuses it too: a second copy from the stale
//! file would bring back what the nodes changed since (used HOTP codes, undone revocations),
//! so it takes `--again` (the first copy lost before any node used it). Deleting the file
//! makes the SQLite store usable again.

use std::path::{Path, PathBuf};

/// `<database>.moved-to-postgres`, beside the file as the filesystem has it: a config that
/// reaches the database through a symbolic link must meet the same mark.
pub fn marker(db: &Path) -> PathBuf {
    let db = std::fs::canonicalize(db).unwrap_or_else(|_| db.to_path_buf());
    let mut name = db.into_os_string();
    name.push(".moved-to-postgres");
    PathBuf::from(name)
}

/// Writes the mark, synced: what it says must survive a power cut as the copy did. `place`
/// says where the copy went (database, host and port; the URL is not written, it may hold a
/// password).
pub fn mark(db: &Path, now: i64, place: &str) -> std::io::Result<()> {
    use std::io::Write;
    let path = marker(db);
    let mut f = std::fs::File::create(&path)?;
    writeln!(
        f,
        "{} was copied into PostgreSQL ({place}) by `radmfa store migrate-to-postgres` at {}.\n\
         radmfa refuses to serve or change it while this file exists: run it with the \
         config that names the PostgreSQL store. Delete this file to use the SQLite store \
         again, only if no node has used the PostgreSQL store: it lacks what the nodes \
         changed since (used HOTP codes would work again, disabled tokens and deleted users \
         come back).",
        db.display(),
        crate::clock::fmt_time(now)
    )?;
    f.sync_all()?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// What the mark of a moved store says first (what was copied, where, when), or `None`
/// when the store was not moved.
pub fn moved_note(db: &Path) -> Option<String> {
    let path = marker(db);
    if !path.exists() {
        return None;
    }
    // A mark that cannot be read still marks the store moved.
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    Some(
        text.lines()
            .next()
            .filter(|l| !l.trim().is_empty())
            .map_or_else(|| format!("see {}", path.display()), str::to_string),
    )
}

/// Refuses a store that was moved: names the mark and what to do.
pub fn refuse_if_moved(db: &Path) -> anyhow::Result<()> {
    let path = marker(db);
    if path.exists() {
        anyhow::bail!(
            "store.path {}: this SQLite store was moved to PostgreSQL (see {}); use the \
             config that names the PostgreSQL store, or delete that file to use this one \
             again",
            db.display(),
            path.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marked_store_is_refused_and_deleting_the_mark_frees_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("radmfa.db");
        refuse_if_moved(&db).expect("not moved");
        assert_eq!(moved_note(&db), None);
        mark(&db, 1_700_000_000, "database radmfa on db.example.org:5432").unwrap();
        let note = moved_note(&db).expect("moved");
        assert!(
            note.contains("(database radmfa on db.example.org:5432)")
                && note.contains(&crate::clock::fmt_time(1_700_000_000)),
            "{note}"
        );
        let said = refuse_if_moved(&db).unwrap_err().to_string();
        assert!(
            said.contains("moved to PostgreSQL") && said.contains("radmfa.db.moved-to-postgres"),
            "{said}"
        );
        let text = std::fs::read_to_string(marker(&db)).unwrap();
        assert!(text.contains("Delete this file"), "{text}");
        std::fs::remove_file(marker(&db)).unwrap();
        refuse_if_moved(&db).expect("usable again");
    }
}
