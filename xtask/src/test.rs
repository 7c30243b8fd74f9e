//! `cargo xtask build|serve|test`: one build selection for the binary and the
//! tests, so LanceDB compiles once.

use std::path::Path;
use std::process::Command;

use crate::plugins::{KINDS, scaffold_check_dir};
use crate::{Result, cargo, run, target_dir};

/// Builds the binary and every test in one invocation. Every build of the
/// workspace goes through here: cargo unifies features per selection, so
/// `cargo run -p medmemory` would resolve other features than the test build
/// and compile LanceDB and its tree a second time.
pub fn build() -> Result {
    run(cargo().args(["build", "--workspace", "--all-targets"]))
}

pub fn serve(root: &Path, extra: &[String]) -> Result {
    build()?;
    let binary = target_dir(root).join("debug/medmemory");
    run(Command::new(binary).arg("serve").args(extra))
}

/// Every check CI runs: format, plugin unit tests, the fuzz corpora, then the
/// workspace tests
/// (unit, store, model and black-box) in one dev-profile build.
pub fn test(root: &Path) -> Result {
    run(cargo().args(["fmt", "--all", "--check"]))?;
    run(cargo().args([
        "fmt",
        "--all",
        "--check",
        "--manifest-path",
        "plugins/Cargo.toml",
    ]))?;
    run(cargo().args([
        "fmt",
        "--all",
        "--check",
        "--manifest-path",
        "fuzz/Cargo.toml",
    ]))?;
    // `--lib` runs the plugins' unit tests natively without linking their
    // cdylibs, whose component export names a native linker cannot take.
    run(cargo()
        .args(["test", "--lib", "--manifest-path", "plugins/Cargo.toml"])
        .env("CARGO_TARGET_DIR", target_dir(root).join("plugins-native")))?;
    // The scaffolds' own tests: what `cargo xtask plugin new` hands an author
    // must pass as generated.
    for kind in KINDS {
        run(cargo()
            .args(["test", "--lib", "--manifest-path"])
            .arg(scaffold_check_dir(root, kind).join("Cargo.toml"))
            .env("CARGO_TARGET_DIR", target_dir(root).join("plugins-native")))?;
    }
    // Every committed fuzz input through its target once: found crashes
    // stay fixed. (Fuzzing itself is `cargo xtask fuzz`.)
    crate::fuzz::fuzz(root, &["--replay".to_owned()])?;
    build()?;
    run(cargo()
        .args(["test", "--workspace", "--", "--test-threads=2"])
        .env("MEDMEMORY_TEST_MODELS_DIR", root.join("data/models"))
        .env("MEDMEMORY_TEST_PLUGINS_DIR", root.join("data/plugins"))
        .env("MEDMEMORY_TEST_HOSTILE_DIR", root.join("data/test-plugins")))
}
