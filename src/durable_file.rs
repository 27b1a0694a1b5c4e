//! Small files in the data directory that a crash must leave either as
//! they were or as written, never half-written: the node id and the
//! generation.

use std::fs;
use std::io::Write;
use std::path::Path;

/// Write `contents` to `dir/name`: a temporary file, fsynced, renamed over
/// the old one, then the directory fsynced so that the rename survives a
/// power loss.
pub(crate) fn write(dir: &Path, name: &str, contents: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut file = fs::File::create(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    fs::rename(&tmp, dir.join(name))?;
    fs::File::open(dir)?.sync_all()
}
