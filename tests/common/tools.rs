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
        apt_install(packages);
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

fn apt_install(packages: &[&str]) {
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

/// Debian's packages that build C into WASI preview 1 modules.
const WASI_C_PACKAGES: [&str; 4] = [
    "clang-14",
    "lld-14",
    "wasi-libc",
    "libclang-rt-14-dev-wasm32",
];

/// Where Debian's wasi-libc puts its C library.
const WASI_LIBC: &str = "/usr/lib/wasm32-wasi/libc.a";

/// Build the C example `source` (under `actors/wasm/examples/`) into a
/// WebAssembly module with clang and wasi-libc, as its header's recipe
/// says; `None` when the compiler cannot be had ([`ensure`]'s rules).
pub fn build_wasm_example(source: &str) -> Option<Vec<u8>> {
    if !std::path::Path::new(WASI_LIBC).is_file() {
        // clang may be there without the WASI parts: install them all.
        apt_install(&WASI_C_PACKAGES);
    }
    let clang = ensure("clang-14", &WASI_C_PACKAGES)?;
    if !std::path::Path::new(WASI_LIBC).is_file() {
        let why = format!("SKIPPED: {WASI_LIBC} is missing (Debian's wasi-libc)");
        assert!(std::env::var_os("HYPHA_REQUIRE_TOOLS").is_none(), "{why}");
        eprintln!("{why}");
        return None;
    }
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("actors/wasm/examples")
        .join(source);
    let out_dir = tempfile::tempdir().expect("a temporary directory");
    let out = out_dir.path().join("module.wasm");
    let built = Command::new(clang)
        .args(["--target=wasm32-wasi", "--sysroot=/usr", "-O2", "-Wall"])
        .args(["-Wl,--strip-all", "-o"])
        .arg(&out)
        .arg(&src)
        .output()
        .expect("clang runs");
    assert!(
        built.status.success(),
        "clang {}: {}",
        src.display(),
        String::from_utf8_lossy(&built.stderr)
    );
    Some(std::fs::read(out).expect("the built module"))
}

/// A Python 3 that imports every module of `modules`, installing
/// `packages` from PyPI with pip when one is missing; `None` (after saying
/// why) when that fails, unless `HYPHA_REQUIRE_TOOLS` is set.
pub fn python_with(modules: &[&str], packages: &[&str]) -> Option<PathBuf> {
    let python = which("python3")?;
    let imports = format!("import {}", modules.join(", "));
    let has = |py: &PathBuf| {
        Command::new(py)
            .args(["-c", &imports])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !has(&python) {
        let _ = Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(packages)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    if has(&python) {
        return Some(python);
    }
    let why = format!(
        "SKIPPED: Python modules {modules:?} are missing and pip could not install {packages:?}"
    );
    assert!(std::env::var_os("HYPHA_REQUIRE_TOOLS").is_none(), "{why}");
    eprintln!("{why}");
    None
}
