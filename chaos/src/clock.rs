//! Clock skew through libfaketime: every node of a `clock-skew` run is
//! started with the library preloaded and reads its offset from a file
//! of its own, which the nemesis rewrites to move that node's wall clock.
//!
//! Only the wall clock moves (`DONT_FAKE_MONOTONIC`): that is what NTP
//! trouble does to a real machine, and it is what Hypha's stamps (file
//! versions, lease times) read, while timers stay on the monotonic clock.
//! A node reads its file again at most once a second
//! (`FAKETIME_CACHE_DURATION`), so a skew takes effect within a second.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Where Debian's `libfaketime` package puts the library.
const LIBRARY: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// The library's path, installing Debian's package when it is missing;
/// or why clock skew cannot run here.
pub fn library() -> Result<PathBuf, String> {
    let lib = PathBuf::from(LIBRARY);
    if lib.exists() {
        return Ok(lib);
    }
    if crate::net::apt_install("libfaketime") && lib.exists() {
        Ok(lib)
    } else {
        Err(format!(
            "clock skew needs libfaketime ({LIBRARY}; apt-get install libfaketime failed)"
        ))
    }
}

/// The skewable clocks of a run's nodes.
#[derive(Debug, Clone)]
pub struct Clocks {
    library: PathBuf,
    dir: PathBuf,
}

impl Clocks {
    /// Clocks whose offset files live in `dir`.
    pub fn new(library: PathBuf, dir: &Path) -> Self {
        Self {
            library,
            dir: dir.to_owned(),
        }
    }

    fn file(&self, node: usize) -> PathBuf {
        self.dir.join(format!("n{node}.faketime"))
    }

    /// The environment that runs node `node` on its skewable clock, on
    /// true time unless the node's file already says otherwise.
    pub fn env(&self, node: usize) -> anyhow::Result<Vec<(OsString, OsString)>> {
        let file = self.file(node);
        if !file.exists() {
            self.skew(node, 0)?;
        }
        let pairs = [
            ("LD_PRELOAD", self.library.as_os_str()),
            ("FAKETIME_TIMESTAMP_FILE", file.as_os_str()),
            ("FAKETIME_CACHE_DURATION", "1".as_ref()),
            ("DONT_FAKE_MONOTONIC", "1".as_ref()),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1".as_ref()),
        ];
        Ok(pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.to_owned()))
            .collect())
    }

    /// Set the node's wall clock `offset_s` seconds from true time.
    pub fn skew(&self, node: usize, offset_s: i64) -> anyhow::Result<()> {
        // Written whole and renamed, so a node never reads half a line.
        let file = self.file(node);
        let tmp = file.with_extension("tmp");
        std::fs::write(&tmp, format!("{offset_s:+}s\n")).context("writing the clock offset")?;
        std::fs::rename(&tmp, &file).context("placing the clock offset")
    }
}
