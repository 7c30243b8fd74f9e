//! Building the plugins: every crate under `plugins/` for wasm32-wasip2, the
//! test plugins, the contract-version variants and the scaffold checks.

use crate::scaffold::scaffold;
use crate::{Result, cargo, run, target_dir};
use std::fs;
use std::path::{Path, PathBuf};

/// Builds every crate under `plugins/` for wasm32-wasip2 and copies each
/// component: first-party plugins (`medmemory-plugin-*`) to
/// `data/plugins/<name>.wasm`, the hostile test plugins
/// (`medmemory-test-plugin-*`) to `data/test-plugins/<name>.wasm`.
pub fn plugins(root: &Path) -> Result {
    contract_variants(root)?;
    let target = target_dir(root).join("plugins");
    run(cargo()
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--manifest-path",
            "plugins/Cargo.toml",
        ])
        .env("CARGO_TARGET_DIR", &target))?;
    let built = target.join("wasm32-wasip2/release");
    let mut copied = 0;
    for (prefix, folder) in [
        ("medmemory_plugin_", "data/plugins"),
        ("medmemory_test_plugin_", "data/test-plugins"),
    ] {
        let out = root.join(folder);
        fs::create_dir_all(&out).map_err(|e| e.to_string())?;
        for entry in fs::read_dir(&built).map_err(|e| e.to_string())? {
            let path = entry.map_err(|e| e.to_string())?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Some(stem) = name
                .strip_prefix(prefix)
                .and_then(|n| n.strip_suffix(".wasm"))
            else {
                continue;
            };
            let dest = out.join(format!("{}.wasm", stem.replace('_', "-")));
            fs::copy(&path, dest).map_err(|e| e.to_string())?;
            copied += 1;
        }
    }
    for kind in KINDS {
        let dir = scaffold_check_dir(root, kind);
        let _ = fs::remove_dir_all(&dir);
        let name = format!("scaffold-{kind}");
        scaffold(root, kind, &name, &dir, true)?;
        fs::copy(root.join("plugins/Cargo.lock"), dir.join("Cargo.lock"))
            .map_err(|e| e.to_string())?;
        run(cargo()
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--manifest-path",
            ])
            .arg(dir.join("Cargo.toml"))
            .env("CARGO_TARGET_DIR", &target))?;
        fs::copy(
            built.join(format!("{}.wasm", name.replace('-', "_"))),
            root.join("data/test-plugins").join(format!("{name}.wasm")),
        )
        .map_err(|e| e.to_string())?;
        copied += 1;
    }
    eprintln!("xtask: {copied} component(s) built");
    Ok(())
}

/// The plugin kinds, as `plugin new` takes them.
pub const KINDS: [&str; 3] = ["parser", "clinical-rule", "retriever"];

pub fn scaffold_check_dir(root: &Path, kind: &str) -> PathBuf {
    target_dir(root).join("scaffolds").join(kind)
}

/// Writes the WIT of the contract-version test plugins: the real contract with
/// a compatible (0.2.9) and an incompatible (0.3.0) version, and the frozen
/// previous contract (0.1.0), which the host still runs.
pub fn contract_variants(root: &Path) -> Result {
    let wit = fs::read_to_string(root.join("wit/plugin.wit")).map_err(|e| e.to_string())?;
    let current = "package medmemory:plugin@0.2.0;";
    if !wit.contains(current) {
        return Err(format!(
            "wit/plugin.wit no longer declares `{current}`; update xtask"
        ));
    }
    let legacy = fs::read_to_string(root.join("wit/0.1/plugin.wit")).map_err(|e| e.to_string())?;
    for (crate_dir, version) in [
        ("contract-minor", "0.2.9"),
        ("contract-major", "0.3.0"),
        ("contract-legacy", "0.1.0"),
    ] {
        let dir = root.join("plugins/hostile").join(crate_dir).join("wit");
        fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let text = if version == "0.1.0" {
            legacy.clone()
        } else {
            wit.replace(current, &format!("package medmemory:plugin@{version};"))
        };
        fs::write(dir.join("plugin.wit"), text).map_err(|e| e.to_string())?;
    }
    Ok(())
}
