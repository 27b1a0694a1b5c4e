//! Power-safe durability of sled's files: what `flush` adds on top of
//! sled's own flush so that an acknowledged write survives a power cut.
//!
//! sled 0.34's `flush` writes its log with `sync_file_range`, which starts
//! and waits for the write-back of the pages but never flushes the
//! device's volatile cache and never writes the inode; large values live
//! in `blobs/<lsn>` files it writes and never syncs at all; the directory
//! entries of new blobs, of its config file and of its snapshots are never
//! synced either. Its background flusher `fsync`s the log file, and only
//! that file, every 500 ms. So an acknowledgement that follows sled's
//! flush can be lost with the machine's power (docs/storage.md).
//!
//! [`SyncedFiles::sync`] closes that gap after each sled flush: it
//! `fsync`s every blob file created since the last sync, then each of the
//! two directories whose entries changed, then `fdatasync`s the log file.
//! Which blobs are new comes from inotify on the two directories, not
//! from listing them (a store holds a blob per large chunk: a listing per
//! group commit would grow with the store). If the kernel's event queue
//! overflowed, one `syncfs` of the file system stands in for the lot.
//! The decision is [`plan`], pure and unit-tested; this module's other
//! half only carries the plan out.

use std::ffi::OsString;
use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, InotifyEvent, WatchDescriptor};

use super::error::StoreError;

/// sled's log file, inside the database directory.
const LOG_FILE: &str = "db";
/// sled's config file, written once when the database is made.
const CONF_FILE: &str = "conf";
/// sled's directory of large values.
const BLOBS_DIR: &str = "blobs";

/// Which directory an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// The database directory (log, config, snapshots).
    Db,
    /// `blobs/`.
    Blobs,
}

/// One directory event, as [`plan`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A file was written and closed, or moved in: its data must be synced.
    Written {
        /// Where.
        dir: Dir,
        /// Its name.
        name: OsString,
    },
    /// An entry was created, removed or renamed: the directory must be synced.
    EntriesChanged(Dir),
    /// The kernel dropped events: what changed is unknown.
    Overflow,
}

/// What one sync must do, beyond the log file's `fdatasync`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncPlan {
    /// Blob files to `fsync`, by name, each once.
    pub blobs: Vec<OsString>,
    /// `fsync` the blobs directory.
    pub blobs_dir: bool,
    /// `fsync` the database directory.
    pub db_dir: bool,
    /// Events were lost: sync the whole file system instead.
    pub whole_file_system: bool,
}

/// The plan for `events`, gathered since the last sync. Files written in
/// the database directory itself (snapshots) are synced by sled before it
/// renames them; what they need from us is their directory entry.
pub fn plan(events: impl IntoIterator<Item = Event>) -> SyncPlan {
    let mut plan = SyncPlan::default();
    for event in events {
        match event {
            Event::Written {
                dir: Dir::Blobs,
                name,
            } => {
                plan.blobs_dir = true;
                if !plan.blobs.contains(&name) {
                    plan.blobs.push(name);
                }
            }
            Event::Written { dir: Dir::Db, .. } | Event::EntriesChanged(Dir::Db) => {
                plan.db_dir = true;
            }
            Event::EntriesChanged(Dir::Blobs) => plan.blobs_dir = true,
            Event::Overflow => plan.whole_file_system = true,
        }
    }
    plan
}

/// The open files and the watch that [`SyncedFiles::sync`] works with.
pub struct SyncedFiles {
    dir: PathBuf,
    log: File,
    db_dir: File,
    blobs_dir: File,
    watch: Mutex<Watch>,
    /// Set by the first failed sync. After a failed `fsync` the kernel
    /// may have dropped the dirty pages and a retry can succeed without
    /// them ("fsyncgate"), so no later sync is trusted: the store refuses
    /// writes until the node restarts and recovers from what is on disk.
    failed: AtomicBool,
}

struct Watch {
    inotify: Inotify,
    db: WatchDescriptor,
    blobs: WatchDescriptor,
}

impl SyncedFiles {
    /// Watch sled's database in `dir` (opened already), and sync what it
    /// wrote before the watch began: its config file and its directories.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let io = |what: &str, err: &dyn std::fmt::Display| {
            StoreError::Io(format!("{what} in {}: {err}", dir.display()))
        };
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .map_err(|e| io("cannot watch the store's files", &e))?;
        let entries = AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_DELETE
            | AddWatchFlags::IN_MOVED_FROM
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_CLOSE_WRITE;
        let db = inotify
            .add_watch(dir, entries)
            .map_err(|e| io("cannot watch the database directory", &e))?;
        let blobs = inotify
            .add_watch(&dir.join(BLOBS_DIR), entries)
            .map_err(|e| io("cannot watch the blobs directory", &e))?;
        let open =
            |path: PathBuf| File::open(&path).map_err(|e| io(&path.display().to_string(), &e));
        let files = Self {
            dir: dir.to_owned(),
            log: open(dir.join(LOG_FILE))?,
            db_dir: open(dir.to_owned())?,
            blobs_dir: open(dir.join(BLOBS_DIR))?,
            watch: Mutex::new(Watch { inotify, db, blobs }),
            failed: AtomicBool::new(false),
        };
        files.sync_startup()?;
        Ok(files)
    }

    /// What sled wrote while it made or recovered the database, before the
    /// watch: its config file and the directories' entries.
    fn sync_startup(&self) -> Result<(), StoreError> {
        fsync_path(&self.dir.join(CONF_FILE))?;
        fsync(&self.blobs_dir, BLOBS_DIR)?;
        fsync(&self.db_dir, "the database directory")?;
        fsync(&self.log, LOG_FILE)
    }

    /// Make everything sled has flushed so far power-safe. Call after
    /// sled's own flush returned; blocks for the device's cache flushes.
    pub fn sync(&self) -> Result<(), StoreError> {
        if self.failed.load(Ordering::Acquire) {
            return Err(StoreError::Io(
                "an earlier fsync failed, so what is on disk is unknown: restart the node".into(),
            ));
        }
        let started = std::time::Instant::now();
        let synced = self.sync_planned();
        // A duration for an operator, read from the system clock: no
        // decision depends on it.
        metrics::histogram!("hypha_store_sync_seconds").record(started.elapsed().as_secs_f64());
        if synced.is_err() {
            self.failed.store(true, Ordering::Release);
        }
        synced
    }

    fn sync_planned(&self) -> Result<(), StoreError> {
        let plan = plan(self.drain_events()?);
        if plan.whole_file_system {
            return nix::unistd::syncfs(self.db_dir.as_fd())
                .map_err(|e| StoreError::Io(format!("syncfs of the store's file system: {e}")));
        }
        for name in &plan.blobs {
            // A blob collected by sled since leaves nothing to make durable.
            fsync_path(&self.dir.join(BLOBS_DIR).join(name))?;
        }
        metrics::counter!("hypha_store_synced_blobs_total").increment(plan.blobs.len() as u64);
        if plan.blobs_dir {
            fsync(&self.blobs_dir, BLOBS_DIR)?;
        }
        if plan.db_dir {
            fsync(&self.db_dir, "the database directory")?;
        }
        self.log
            .sync_data()
            .map_err(|e| StoreError::Io(format!("fdatasync of the store's log: {e}")))
    }

    /// Every event queued since the last call.
    fn drain_events(&self) -> Result<Vec<Event>, StoreError> {
        let watch = self
            .watch
            .lock()
            .map_err(|_| StoreError::Unavailable("a sync panicked".into()))?;
        let mut events = Vec::new();
        loop {
            match watch.inotify.read_events() {
                Ok(batch) if batch.is_empty() => return Ok(events),
                Ok(batch) => events.extend(batch.into_iter().filter_map(|e| watch.event(e))),
                Err(Errno::EAGAIN) => return Ok(events),
                Err(Errno::EINTR) => continue,
                Err(err) => {
                    return Err(StoreError::Io(format!(
                        "reading the store's file events: {err}"
                    )))
                }
            }
        }
    }
}

impl Watch {
    fn event(&self, event: InotifyEvent) -> Option<Event> {
        if event.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
            return Some(Event::Overflow);
        }
        let dir = if event.wd == self.blobs {
            Dir::Blobs
        } else if event.wd == self.db {
            Dir::Db
        } else {
            return None;
        };
        let written = AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_MOVED_TO;
        match event.name {
            Some(name) if event.mask.intersects(written) => Some(Event::Written { dir, name }),
            _ => Some(Event::EntriesChanged(dir)),
        }
    }
}

/// `fsync` an open file; `what` names it in the error.
fn fsync(file: &File, what: &str) -> Result<(), StoreError> {
    file.sync_all()
        .map_err(|e| StoreError::Io(format!("fsync of {what}: {e}")))
}

/// `fsync` the file at `path`, if it exists.
fn fsync_path(path: &Path) -> Result<(), StoreError> {
    match File::open(path) {
        Ok(file) => fsync(&file, &path.display().to_string()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(StoreError::Io(format!("{}: {err}", path.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(dir: Dir, name: &str) -> Event {
        Event::Written {
            dir,
            name: name.into(),
        }
    }

    #[test]
    fn nothing_changed_needs_only_the_log() {
        assert_eq!(plan([]), SyncPlan::default());
    }

    #[test]
    fn a_new_blob_syncs_itself_and_its_directory_once() {
        let p = plan([
            Event::EntriesChanged(Dir::Blobs),
            written(Dir::Blobs, "7"),
            written(Dir::Blobs, "9"),
            written(Dir::Blobs, "7"),
        ]);
        assert_eq!(p.blobs, vec![OsString::from("7"), OsString::from("9")]);
        assert!(p.blobs_dir);
        assert!(!p.db_dir);
        assert!(!p.whole_file_system);
    }

    #[test]
    fn a_removed_blob_syncs_only_the_directory() {
        let p = plan([Event::EntriesChanged(Dir::Blobs)]);
        assert!(p.blobs.is_empty());
        assert!(p.blobs_dir);
    }

    #[test]
    fn a_renamed_snapshot_syncs_the_database_directory() {
        let p = plan([
            Event::EntriesChanged(Dir::Db),
            written(Dir::Db, "snap.0000000000001000"),
        ]);
        assert!(p.db_dir);
        assert!(p.blobs.is_empty(), "sled syncs its snapshots itself");
    }

    #[test]
    fn lost_events_fall_back_to_the_whole_file_system() {
        let p = plan([written(Dir::Blobs, "3"), Event::Overflow]);
        assert!(p.whole_file_system);
    }

    #[test]
    fn a_sync_covers_blobs_written_before_it() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let db = sled::Config::new().path(dir.path()).open()?;
        let durability = SyncedFiles::open(dir.path())?;
        db.insert(b"big", vec![7u8; 400 << 10])?;
        db.flush()?;
        let events = durability.drain_events()?;
        let p = plan(events);
        assert_eq!(p.blobs.len(), 1, "one 400 KiB value is one blob: {p:?}");
        db.insert(b"big2", vec![8u8; 400 << 10])?;
        db.flush()?;
        durability.sync()?;
        assert_eq!(plan(durability.drain_events()?), SyncPlan::default());
        Ok(())
    }
}
