//! `hypha store quarantine`: move a stopped node's damaged store aside so
//! that the node can start again with an empty one (docs/storage.md, "A
//! damaged store"). The store is renamed, never deleted: the operator may
//! still want to look at it. The node id and the generation file stay in
//! the data directory, so the node comes back as itself, with a newer
//! generation, and counts toward read quorums only once anti-entropy has
//! caught it up.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use nix::fcntl::{Flock, FlockArg};

use crate::node::DB_DIR;

/// Prefix of a quarantined store's directory name.
pub const QUARANTINED_PREFIX: &str = "db.damaged-";

/// Where the store went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    /// The directory the store now lives in.
    pub moved_to: PathBuf,
}

/// Move `<data_dir>/db` to `<data_dir>/db.damaged-<UTC time>` (a suffix
/// `-N` if that exists), then fsync the data directory. Refused when there
/// is no store or a process holds it open (sled's lock on `db/db`).
pub fn quarantine(data_dir: &Path, now: SystemTime) -> anyhow::Result<Quarantined> {
    let store = data_dir.join(DB_DIR);
    if !store.is_dir() {
        bail!("there is no store at {}: nothing to move", store.display());
    }
    let _lock = lock_store(&store)?;
    let moved_to = free_name(data_dir, &utc_stamp(now));
    std::fs::rename(&store, &moved_to)
        .with_context(|| format!("cannot move {} aside", store.display()))?;
    File::open(data_dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync {}", data_dir.display()))?;
    Ok(Quarantined { moved_to })
}

/// The exact command an operator runs for the store of `data_dir`.
pub fn command_for(data_dir: &Path) -> String {
    let shown = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    format!(
        "hypha store quarantine --data-dir {}",
        shell_quoted(&shown.display().to_string())
    )
}

/// Take sled's lock ourselves: if a node holds it, the store is in use.
/// A store whose lock file is missing (sled had not written it) is not in
/// use either.
fn lock_store(store: &Path) -> anyhow::Result<Option<Flock<File>>> {
    let file = match File::options()
        .read(true)
        .write(true)
        .open(store.join("db"))
    {
        Ok(f) => f,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err).with_context(|| format!("cannot open {}", store.display())),
    };
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(Some(lock)),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => bail!(
            "{} is in use by a running node: stop the node first",
            store.display()
        ),
        Err((_, errno)) => Err(errno).with_context(|| format!("cannot lock {}", store.display())),
    }
}

/// `db.damaged-<stamp>`, or with `-2`, `-3`, … when taken.
fn free_name(data_dir: &Path, stamp: &str) -> PathBuf {
    let base = format!("{QUARANTINED_PREFIX}{stamp}");
    std::iter::once(data_dir.join(&base))
        .chain((2u32..10_000).map(|n| data_dir.join(format!("{base}-{n}"))))
        .find(|p| !p.exists())
        .unwrap_or_else(|| data_dir.join(format!("{base}-{}", std::process::id())))
}

/// `YYYYMMDDTHHMMSSZ` in UTC.
fn utc_stamp(now: SystemTime) -> String {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let (y, m, d) = civil_from_days(days);
    let rem = secs % 86_400;
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's
/// algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

/// `s` as one shell word.
fn shell_quoted(s: &str) -> String {
    let plain = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+:=@%,".contains(c));
    if plain && !s.is_empty() {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn stamps_are_utc_calendar_times() {
        let at = |secs| utc_stamp(UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0), "19700101T000000Z");
        assert_eq!(at(951_782_400), "20000229T000000Z");
        assert_eq!(at(1_796_554_338), "20261206T105218Z");
    }

    #[test]
    fn paths_are_quoted_for_the_shell_when_needed() {
        assert_eq!(shell_quoted("/var/lib/hypha"), "/var/lib/hypha");
        assert_eq!(shell_quoted("/tmp/my dir"), "'/tmp/my dir'");
        assert_eq!(shell_quoted("/tmp/it's"), r"'/tmp/it'\''s'");
    }

    #[test]
    fn the_store_moves_aside_and_a_second_one_gets_its_own_name() {
        let dir = tempfile::tempdir().unwrap();
        let now = UNIX_EPOCH + Duration::from_secs(1_796_554_338);
        std::fs::create_dir(dir.path().join(DB_DIR)).unwrap();
        std::fs::write(dir.path().join(DB_DIR).join("db"), b"x").unwrap();
        let first = quarantine(dir.path(), now).unwrap();
        assert_eq!(
            first.moved_to,
            dir.path().join("db.damaged-20261206T105218Z")
        );
        assert!(first.moved_to.join("db").is_file(), "moved, not deleted");
        assert!(!dir.path().join(DB_DIR).exists());
        std::fs::create_dir(dir.path().join(DB_DIR)).unwrap();
        let second = quarantine(dir.path(), now).unwrap();
        assert_eq!(
            second.moved_to,
            dir.path().join("db.damaged-20261206T105218Z-2")
        );
        let none = quarantine(dir.path(), now).unwrap_err().to_string();
        assert!(none.contains("there is no store"), "{none}");
    }

    #[test]
    fn a_store_in_use_is_not_moved() {
        let dir = tempfile::tempdir().unwrap();
        let engine = hypha_store::SledEngine::open(&dir.path().join(DB_DIR)).unwrap();
        let err = quarantine(dir.path(), SystemTime::now()).unwrap_err();
        assert!(
            err.to_string().contains("in use by a running node"),
            "{err}"
        );
        assert!(dir.path().join(DB_DIR).is_dir());
        drop(engine);
    }
}
