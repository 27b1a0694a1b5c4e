//! Where the binary under test and the scratch directory are, found from
//! the running test or bench executable (`<target>/<profile>/deps/<name>`),
//! the way Cargo lays them out: the same `target/<profile>/hypha` that
//! `CARGO_BIN_EXE_hypha` names, and the `target/tmp` of
//! `CARGO_TARGET_TMPDIR`, which only the test's own crate could read.

use std::path::PathBuf;
use std::sync::OnceLock;

/// `<target>/<profile>`: the directory above the running executable's
/// `deps/`.
fn profile_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("the running executable's path");
        let deps = exe.parent().expect("the executable's directory");
        // A test or bench runs from deps/; anything else from the profile
        // directory itself.
        match deps.file_name() {
            Some(name) if name == "deps" => deps.parent().unwrap_or(deps).to_owned(),
            _ => deps.to_owned(),
        }
    })
}

/// The `hypha` binary built with the running tests.
pub fn hypha_bin() -> PathBuf {
    // `HYPHA_BIN` runs a bench (or test) against another build: an A/B
    // comparison of two binaries with the same client, in one sitting.
    let bin = std::env::var_os("HYPHA_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| profile_dir().join("hypha"));
    assert!(
        bin.is_file(),
        "no hypha binary at {} (cargo test or cargo bench of the hypha package \
         builds it; for another package's tests, cargo build -p hypha first)",
        bin.display()
    );
    bin
}

/// A scratch directory under the target directory that outlives one test
/// process (the test CA is made there once).
pub fn target_tmp() -> PathBuf {
    let profile = profile_dir();
    profile.parent().unwrap_or(profile).join("tmp")
}
