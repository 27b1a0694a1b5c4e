//! External programs the operator tests drive (Prometheus, Chromium and
//! ChromeDriver), installed from Debian's packages when missing.

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// `binary` on the PATH, installing `package` with apt-get if it is
/// missing and we are root. `None` (after saying why) if it cannot be
/// had, unless `HYPHA_REQUIRE_TOOLS` is set (CI sets it): then a missing
/// tool fails the test instead of skipping it.
pub fn ensure(binary: &str, packages: &[&str]) -> Option<PathBuf> {
    if let Some(path) = which(binary) {
        return Some(path);
    }
    let root = nix_is_root();
    if root {
        let status = Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Err(err) = status {
            eprintln!("apt-get: {err}");
        }
    }
    let found = which(binary);
    if found.is_none() {
        let why = format!(
            "SKIPPED: `{binary}` is missing and Debian's {packages:?} could not be installed{}",
            if root { "" } else { " (not root)" }
        );
        assert!(std::env::var_os("HYPHA_REQUIRE_TOOLS").is_none(), "{why}");
        eprintln!("{why}");
    }
    found
}

fn which(binary: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join(binary))
        .find(|path| path.is_file())
}

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A child process killed (and reaped) when dropped.
pub struct Reaped(pub std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
