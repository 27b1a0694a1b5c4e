//! A disk that loses what was not synced when its power goes: a FUSE file
//! system (in this process) whose writes stay in memory until `fsync`, over
//! a backing directory that holds only what was synced. Dropping it (or
//! [`VolatileDisk::power_off`]) unmounts and forgets every unsynced byte;
//! mounting the same backing directory again shows what a machine finds
//! after a power cut. Tests put a node's store on it to check that
//! acknowledged writes were really made durable.
//!
//! Why by hand: the tools that do this (LazyFS, dm-log-writes) are neither
//! crates nor Debian packages, and `kill -9` alone cannot show the loss
//! (the page cache survives the process).
//!
//! Needs `/dev/fuse` and the right to mount (root, as the chaos tests).

mod model;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    FileAttr, FileType, Filesystem, MountOption, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyWrite, Request, TimeOrNow,
};

pub use model::Model;
use model::{Content, Errno, Kind};

/// Attributes are not cached by the kernel: every change goes through here.
const TTL: Duration = Duration::ZERO;

/// A mounted volatile disk.
pub struct VolatileDisk {
    session: Option<fuser::BackgroundSession>,
    mountpoint: PathBuf,
}

/// The mount failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot mount a volatile disk on {mountpoint}: {source}")]
pub struct MountError {
    mountpoint: String,
    source: std::io::Error,
}

impl VolatileDisk {
    /// Mount on `mountpoint` (an empty directory) what `backing` holds.
    pub fn mount(backing: &Path, mountpoint: &Path) -> Result<Self, MountError> {
        let error = |source| MountError {
            mountpoint: mountpoint.display().to_string(),
            source,
        };
        std::fs::create_dir_all(backing).map_err(error)?;
        std::fs::create_dir_all(mountpoint).map_err(error)?;
        let fs = Fuse {
            model: Arc::new(Mutex::new(Model::load(backing).map_err(error)?)),
        };
        let options = [
            MountOption::FSName("hypha-volatile".into()),
            MountOption::DefaultPermissions,
        ];
        let session = fuser::spawn_mount2(fs, mountpoint, &options).map_err(error)?;
        Ok(Self {
            session: Some(session),
            mountpoint: mountpoint.to_owned(),
        })
    }

    /// Cut the power: unmount, losing every write that was not synced.
    /// Every process using the disk must have exited (or the unmount fails
    /// as busy and the disk stays mounted until dropped).
    pub fn power_off(mut self) {
        self.unmount();
    }

    fn unmount(&mut self) {
        if let Some(session) = self.session.take() {
            session.join();
        }
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.mountpoint
    }
}

impl Drop for VolatileDisk {
    fn drop(&mut self) {
        self.unmount();
    }
}

struct Fuse {
    model: Arc<Mutex<Model>>,
}

impl Fuse {
    fn with<T>(&self, f: impl FnOnce(&mut Model) -> Result<T, Errno>) -> Result<T, Errno> {
        let mut model = self.model.lock().map_err(|_| model::EIO)?;
        f(&mut model)
    }

    fn attr(&self, ino: u64) -> Result<FileAttr, Errno> {
        self.with(|m| attr_of(m, ino))
    }

    /// Make `name` in `parent`; its attributes.
    fn make(&self, parent: u64, name: &OsStr, kind: Kind, mode: u32) -> Result<FileAttr, Errno> {
        self.with(|m| {
            m.create(parent, name, kind, mode)
                .and_then(|i| attr_of(m, i))
        })
    }
}

fn attr_of(model: &Model, ino: u64) -> Result<FileAttr, Errno> {
    let inode = model.get(ino)?;
    let (kind, size, nlink) = match &inode.content {
        Content::File(file) => (FileType::RegularFile, file.data.len() as u64, 1),
        Content::Dir(_) => (FileType::Directory, 0, 2),
    };
    Ok(FileAttr {
        ino,
        size,
        blocks: size.div_ceil(512),
        atime: UNIX_EPOCH,
        mtime: UNIX_EPOCH,
        ctime: UNIX_EPOCH,
        crtime: UNIX_EPOCH,
        kind,
        perm: (inode.mode & 0o7777) as u16,
        nlink,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    })
}

fn offset(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

impl Filesystem for Fuse {
    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        match self.with(|m| m.lookup(parent, name).and_then(|ino| attr_of(m, ino))) {
            Ok(attr) => reply.entry(&TTL, &attr, 0),
            Err(errno) => reply.error(errno),
        }
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        answer_attr(self.attr(ino), reply);
    }

    fn setattr(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<u64>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<u32>,
        reply: ReplyAttr,
    ) {
        let changed = self.with(|m| {
            if let Some(len) = size {
                m.truncate(ino, len)?;
            }
            if let Some(mode) = mode {
                m.chmod(ino, mode)?;
            }
            attr_of(m, ino)
        });
        answer_attr(changed, reply);
    }

    fn mkdir(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        match self.make(parent, name, Kind::Dir, mode) {
            Ok(attr) => reply.entry(&TTL, &attr, 0),
            Err(errno) => reply.error(errno),
        }
    }

    fn unlink(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        empty(self.with(|m| m.remove(parent, name)), reply);
    }

    fn rmdir(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        empty(self.with(|m| m.remove(parent, name)), reply);
    }

    fn rename(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        _flags: u32,
        reply: ReplyEmpty,
    ) {
        empty(
            self.with(|m| m.rename(parent, name, newparent, newname)),
            reply,
        );
    }

    fn open(&mut self, _req: &Request<'_>, ino: u64, _flags: i32, reply: ReplyOpen) {
        match self.attr(ino) {
            Ok(_) => reply.opened(0, 0),
            Err(errno) => reply.error(errno),
        }
    }

    fn read(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        at: i64,
        size: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyData,
    ) {
        match self.with(|m| m.read(ino, offset(at), size as usize).map(<[u8]>::to_vec)) {
            Ok(bytes) => reply.data(&bytes),
            Err(errno) => reply.error(errno),
        }
    }

    fn write(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        at: i64,
        data: &[u8],
        _write_flags: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyWrite,
    ) {
        match self.with(|m| m.write(ino, offset(at), data)) {
            Ok(()) => reply.written(data.len() as u32),
            Err(errno) => reply.error(errno),
        }
    }

    fn flush(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        _fh: u64,
        _lock_owner: u64,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsync(&mut self, _req: &Request<'_>, ino: u64, _fh: u64, _data: bool, reply: ReplyEmpty) {
        empty(self.with(|m| m.sync(ino)), reply);
    }

    fn opendir(&mut self, _req: &Request<'_>, ino: u64, _flags: i32, reply: ReplyOpen) {
        match self.attr(ino) {
            Ok(attr) if attr.kind == FileType::Directory => reply.opened(0, 0),
            Ok(_) => reply.error(model::ENOTDIR),
            Err(errno) => reply.error(errno),
        }
    }

    fn readdir(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        at: i64,
        mut reply: ReplyDirectory,
    ) {
        let listed = self.with(|m| {
            let parent = m.get(ino)?.parent;
            let mut entries = vec![
                (ino, FileType::Directory, OsStr::new(".").to_owned()),
                (parent, FileType::Directory, OsStr::new("..").to_owned()),
            ];
            for (name, child) in m.list(ino)? {
                entries.push((child, attr_of(m, child)?.kind, name));
            }
            Ok(entries)
        });
        match listed {
            Ok(entries) => {
                let skip = usize::try_from(at).unwrap_or(0);
                for (i, (child, kind, name)) in entries.into_iter().enumerate().skip(skip) {
                    if reply.add(child, (i + 1) as i64, kind, name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(errno) => reply.error(errno),
        }
    }

    fn fsyncdir(&mut self, _req: &Request<'_>, ino: u64, _fh: u64, _data: bool, reply: ReplyEmpty) {
        empty(self.with(|m| m.sync(ino)), reply);
    }

    fn create(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        match self.make(parent, name, Kind::File, mode) {
            Ok(attr) => reply.created(&TTL, &attr, 0, 0, 0),
            Err(errno) => reply.error(errno),
        }
    }
}

fn answer_attr(result: Result<FileAttr, Errno>, reply: ReplyAttr) {
    match result {
        Ok(attr) => reply.attr(&TTL, &attr),
        Err(errno) => reply.error(errno),
    }
}

fn empty(result: Result<(), Errno>, reply: ReplyEmpty) {
    match result {
        Ok(()) => reply.ok(),
        Err(errno) => reply.error(errno),
    }
}
