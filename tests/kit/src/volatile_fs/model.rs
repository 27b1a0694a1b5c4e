//! The file system a [`super::VolatileDisk`] serves, without FUSE: a tree
//! of inodes in memory (what programs see) over a backing directory (what
//! a power cut leaves). Writes change only the memory; `fsync` of a file
//! copies its unsynced ranges to the backing file, `fsync` of a directory
//! makes its entries there match. Anything else is lost when the disk is
//! dropped, as a device's volatile cache is when the power goes.
//!
//! Two leniencies, both the way ext4 (data=ordered) behaves: a file's
//! `fsync` also makes its name durable, and a directory's `fsync` makes
//! its new files durable with their current contents.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The root directory's inode number (FUSE's).
pub const ROOT: u64 = 1;

/// What an inode holds.
#[derive(Debug)]
pub enum Content {
    /// A regular file.
    File(FileData),
    /// A directory: names to inode numbers.
    Dir(BTreeMap<OsString, u64>),
}

/// A regular file's bytes and what of them is not yet synced.
#[derive(Debug, Default)]
pub struct FileData {
    /// The bytes programs see.
    pub data: Vec<u8>,
    /// `(offset, len)` written since the last sync.
    dirty: Vec<(u64, u64)>,
    /// The length changed (truncated or extended) since the last sync.
    resized: bool,
}

/// One file or directory.
#[derive(Debug)]
pub struct Inode {
    /// Its directory (the root's is itself).
    pub parent: u64,
    /// Its name there.
    pub name: OsString,
    /// Its content.
    pub content: Content,
    /// Permission bits.
    pub mode: u32,
}

/// What [`Model::create`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An empty regular file.
    File,
    /// An empty directory.
    Dir,
}

/// Why an operation failed, as an errno.
pub type Errno = i32;

/// The tree.
#[derive(Debug)]
pub struct Model {
    backing: PathBuf,
    inodes: BTreeMap<u64, Inode>,
    next: u64,
}

fn io_errno(err: &io::Error) -> Errno {
    err.raw_os_error().unwrap_or(EIO)
}

/// The errno values the model answers with (Linux's).
pub const ENOENT: Errno = 2;
/// I/O error.
pub const EIO: Errno = 5;
/// Exists already.
pub const EEXIST: Errno = 17;
/// Not a directory.
pub const ENOTDIR: Errno = 20;
/// Is a directory.
pub const EISDIR: Errno = 21;
/// Directory not empty.
pub const ENOTEMPTY: Errno = 39;

impl Model {
    /// The tree as `backing` holds it now (what survived the last cut).
    pub fn load(backing: &Path) -> io::Result<Self> {
        let mut model = Self {
            backing: backing.to_owned(),
            inodes: BTreeMap::new(),
            next: ROOT + 1,
        };
        model.inodes.insert(
            ROOT,
            Inode {
                parent: ROOT,
                name: OsString::new(),
                content: Content::Dir(BTreeMap::new()),
                mode: 0o755,
            },
        );
        model.load_dir(ROOT, backing)?;
        Ok(model)
    }

    fn load_dir(&mut self, dir: u64, path: &Path) -> io::Result<()> {
        for entry in fs::read_dir(path)? {
            let entry = entry?;
            let name = entry.file_name();
            if entry.file_type()?.is_dir() {
                let ino = self.add(dir, &name, Content::Dir(BTreeMap::new()), 0o755);
                self.load_dir(ino, &entry.path())?;
            } else {
                let data = fs::read(entry.path())?;
                let content = Content::File(FileData {
                    data,
                    ..FileData::default()
                });
                self.add(dir, &name, content, 0o644);
            }
        }
        Ok(())
    }

    fn add(&mut self, parent: u64, name: &OsStr, content: Content, mode: u32) -> u64 {
        let ino = self.next;
        self.next += 1;
        self.inodes.insert(
            ino,
            Inode {
                parent,
                name: name.to_owned(),
                content,
                mode,
            },
        );
        if let Some(Inode {
            content: Content::Dir(entries),
            ..
        }) = self.inodes.get_mut(&parent)
        {
            entries.insert(name.to_owned(), ino);
        }
        ino
    }

    /// The inode `ino`.
    pub fn get(&self, ino: u64) -> Result<&Inode, Errno> {
        self.inodes.get(&ino).ok_or(ENOENT)
    }

    fn entries(&self, dir: u64) -> Result<&BTreeMap<OsString, u64>, Errno> {
        match &self.get(dir)?.content {
            Content::Dir(entries) => Ok(entries),
            Content::File(_) => Err(ENOTDIR),
        }
    }

    fn entries_mut(&mut self, dir: u64) -> Result<&mut BTreeMap<OsString, u64>, Errno> {
        match &mut self.inodes.get_mut(&dir).ok_or(ENOENT)?.content {
            Content::Dir(entries) => Ok(entries),
            Content::File(_) => Err(ENOTDIR),
        }
    }

    /// `name` in `dir`.
    pub fn lookup(&self, dir: u64, name: &OsStr) -> Result<u64, Errno> {
        self.entries(dir)?.get(name).copied().ok_or(ENOENT)
    }

    /// A directory's entries, in name order.
    pub fn list(&self, dir: u64) -> Result<Vec<(OsString, u64)>, Errno> {
        Ok(self
            .entries(dir)?
            .iter()
            .map(|(n, i)| (n.clone(), *i))
            .collect())
    }

    /// Make a file (empty) or directory.
    pub fn create(&mut self, dir: u64, name: &OsStr, kind: Kind, mode: u32) -> Result<u64, Errno> {
        if self.entries(dir)?.contains_key(name) {
            return Err(EEXIST);
        }
        let content = match kind {
            Kind::Dir => Content::Dir(BTreeMap::new()),
            Kind::File => Content::File(FileData {
                resized: true,
                ..FileData::default()
            }),
        };
        Ok(self.add(dir, name, content, mode))
    }

    /// Remove `name` from `dir` (a directory only when empty).
    pub fn remove(&mut self, dir: u64, name: &OsStr) -> Result<(), Errno> {
        let ino = self.lookup(dir, name)?;
        if let Content::Dir(entries) = &self.get(ino)?.content {
            if !entries.is_empty() {
                return Err(ENOTEMPTY);
            }
        }
        self.entries_mut(dir)?.remove(name);
        self.inodes.remove(&ino);
        Ok(())
    }

    /// Move `name` in `dir` to `new_name` in `new_dir`, replacing a file there.
    pub fn rename(
        &mut self,
        dir: u64,
        name: &OsStr,
        new_dir: u64,
        new_name: &OsStr,
    ) -> Result<(), Errno> {
        let ino = self.lookup(dir, name)?;
        if let Ok(old) = self.lookup(new_dir, new_name) {
            if old == ino {
                return Ok(());
            }
            if matches!(self.get(old)?.content, Content::Dir(_)) {
                return Err(EISDIR);
            }
            self.inodes.remove(&old);
        }
        self.entries_mut(dir)?.remove(name);
        self.entries_mut(new_dir)?.insert(new_name.to_owned(), ino);
        let inode = self.inodes.get_mut(&ino).ok_or(ENOENT)?;
        inode.parent = new_dir;
        inode.name = new_name.to_owned();
        Ok(())
    }

    fn file_mut(&mut self, ino: u64) -> Result<&mut FileData, Errno> {
        match &mut self.inodes.get_mut(&ino).ok_or(ENOENT)?.content {
            Content::File(file) => Ok(file),
            Content::Dir(_) => Err(EISDIR),
        }
    }

    /// Read up to `len` bytes at `offset`.
    pub fn read(&self, ino: u64, offset: u64, len: usize) -> Result<&[u8], Errno> {
        match &self.get(ino)?.content {
            Content::File(FileData { data, .. }) => {
                let start = usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                let end = start.saturating_add(len).min(data.len());
                Ok(&data[start..end])
            }
            Content::Dir(_) => Err(EISDIR),
        }
    }

    /// Write `bytes` at `offset` (in memory only).
    pub fn write(&mut self, ino: u64, offset: u64, bytes: &[u8]) -> Result<(), Errno> {
        let file = self.file_mut(ino)?;
        let start = usize::try_from(offset).map_err(|_| EIO)?;
        let end = start + bytes.len();
        if end > file.data.len() {
            file.data.resize(end, 0);
            file.resized = true;
        }
        file.data[start..end].copy_from_slice(bytes);
        file.dirty.push((offset, bytes.len() as u64));
        Ok(())
    }

    /// Set a file's length (in memory only).
    pub fn truncate(&mut self, ino: u64, len: u64) -> Result<(), Errno> {
        let file = self.file_mut(ino)?;
        file.data.resize(usize::try_from(len).map_err(|_| EIO)?, 0);
        file.resized = true;
        Ok(())
    }

    /// Set permission bits.
    pub fn chmod(&mut self, ino: u64, mode: u32) -> Result<(), Errno> {
        self.inodes.get_mut(&ino).ok_or(ENOENT)?.mode = mode;
        Ok(())
    }

    /// The backing path of `ino` (by its current names).
    fn backing_path(&self, ino: u64) -> Result<PathBuf, Errno> {
        let mut names = Vec::new();
        let mut at = ino;
        while at != ROOT {
            let inode = self.get(at)?;
            names.push(inode.name.clone());
            at = inode.parent;
        }
        let mut path = self.backing.clone();
        path.extend(names.iter().rev());
        Ok(path)
    }

    /// `fsync`: make `ino` (a file's unsynced ranges and its name, or a
    /// directory's entries) what a power cut leaves.
    pub fn sync(&mut self, ino: u64) -> Result<(), Errno> {
        match self.get(ino)?.content {
            Content::File(_) => self.sync_file(ino),
            Content::Dir(_) => self.sync_dir(ino),
        }
    }

    fn sync_file(&mut self, ino: u64) -> Result<(), Errno> {
        let path = self.backing_path(ino)?;
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| io_errno(&e))?;
        }
        let fresh = !path.exists();
        let file = self.file_mut(ino)?;
        let out = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io_errno(&e))?;
        if fresh {
            out.write_all_at(&file.data, 0).map_err(|e| io_errno(&e))?;
        } else {
            for &(offset, len) in &file.dirty {
                let start = usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .min(file.data.len());
                let end = start.saturating_add(len as usize).min(file.data.len());
                out.write_all_at(&file.data[start..end], offset)
                    .map_err(|e| io_errno(&e))?;
            }
        }
        if fresh || file.resized {
            out.set_len(file.data.len() as u64)
                .map_err(|e| io_errno(&e))?;
        }
        file.dirty.clear();
        file.resized = false;
        Ok(())
    }

    fn sync_dir(&mut self, ino: u64) -> Result<(), Errno> {
        let path = self.backing_path(ino)?;
        fs::create_dir_all(&path).map_err(|e| io_errno(&e))?;
        let visible = self.list(ino)?;
        for entry in fs::read_dir(&path).map_err(|e| io_errno(&e))? {
            let entry = entry.map_err(|e| io_errno(&e))?;
            if !visible.iter().any(|(name, _)| *name == entry.file_name()) {
                let gone = entry.path();
                let removed = if gone.is_dir() {
                    fs::remove_dir_all(&gone)
                } else {
                    fs::remove_file(&gone)
                };
                removed.map_err(|e| io_errno(&e))?;
            }
        }
        for (name, child) in visible {
            if !path.join(&name).exists() {
                match self.get(child)?.content {
                    Content::File(_) => self.sync_file(child)?,
                    Content::Dir(_) => {
                        fs::create_dir(path.join(&name)).map_err(|e| io_errno(&e))?
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> OsString {
        s.into()
    }

    #[test]
    fn only_synced_writes_survive_a_reload() -> Result<(), Box<dyn std::error::Error>> {
        let backing = tempfile::tempdir()?;
        let mut m = Model::load(backing.path())?;
        let a = m
            .create(ROOT, &name("a"), Kind::File, 0o644)
            .map_err(io::Error::from_raw_os_error)?;
        m.write(a, 0, b"synced")
            .map_err(io::Error::from_raw_os_error)?;
        m.sync(a).map_err(io::Error::from_raw_os_error)?;
        m.write(a, 0, b"LOST")
            .map_err(io::Error::from_raw_os_error)?;
        let b = m
            .create(ROOT, &name("b"), Kind::File, 0o644)
            .map_err(io::Error::from_raw_os_error)?;
        m.write(b, 0, b"never synced")
            .map_err(io::Error::from_raw_os_error)?;

        let after = Model::load(backing.path())?;
        let a = after
            .lookup(ROOT, &name("a"))
            .map_err(io::Error::from_raw_os_error)?;
        assert_eq!(
            after
                .read(a, 0, 100)
                .map_err(io::Error::from_raw_os_error)?,
            b"synced"
        );
        assert_eq!(after.lookup(ROOT, &name("b")), Err(ENOENT));
        Ok(())
    }

    #[test]
    fn a_rename_is_durable_after_its_directory_is_synced() -> Result<(), Box<dyn std::error::Error>>
    {
        let e = io::Error::from_raw_os_error;
        let backing = tempfile::tempdir()?;
        let mut m = Model::load(backing.path())?;
        let t = m.create(ROOT, &name("tmp"), Kind::File, 0o644).map_err(e)?;
        m.write(t, 0, b"v1").map_err(e)?;
        m.sync(t).map_err(e)?;
        m.rename(ROOT, &name("tmp"), ROOT, &name("final"))
            .map_err(e)?;
        let before = Model::load(backing.path())?;
        assert!(before.lookup(ROOT, &name("tmp")).is_ok(), "not yet durable");
        m.sync(ROOT).map_err(e)?;
        let after = Model::load(backing.path())?;
        assert_eq!(after.lookup(ROOT, &name("tmp")), Err(ENOENT));
        let f = after.lookup(ROOT, &name("final")).map_err(e)?;
        assert_eq!(after.read(f, 0, 10).map_err(e)?, b"v1");
        Ok(())
    }

    #[test]
    fn an_overwrite_in_place_is_lost_unless_synced() -> Result<(), Box<dyn std::error::Error>> {
        let e = io::Error::from_raw_os_error;
        let backing = tempfile::tempdir()?;
        let mut m = Model::load(backing.path())?;
        let d = m.create(ROOT, &name("d"), Kind::Dir, 0o755).map_err(e)?;
        let f = m.create(d, &name("log"), Kind::File, 0o644).map_err(e)?;
        m.write(f, 0, &[1; 10]).map_err(e)?;
        m.sync(f).map_err(e)?;
        m.write(f, 4, &[2; 2]).map_err(e)?;
        m.truncate(f, 8).map_err(e)?;
        let lost = Model::load(backing.path())?;
        let lf = lost
            .lookup(lost.lookup(ROOT, &name("d")).map_err(e)?, &name("log"))
            .map_err(e)?;
        assert_eq!(lost.read(lf, 0, 100).map_err(e)?, &[1; 10]);
        m.sync(f).map_err(e)?;
        let kept = Model::load(backing.path())?;
        let kf = kept
            .lookup(kept.lookup(ROOT, &name("d")).map_err(e)?, &name("log"))
            .map_err(e)?;
        assert_eq!(kept.read(kf, 0, 100).map_err(e)?, &[1, 1, 1, 1, 2, 2, 1, 1]);
        Ok(())
    }
}
