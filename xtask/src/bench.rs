//! `cargo xtask bench plugins|memory|authz`: builds, then runs the measuring
//! binaries (`medmemory plugin run --repeat`, `medmemory-bench`) and the
//! sentence-transformers reference side by side.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::setup::{MODEL_WHEEL_FILE, cache_dir};
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
