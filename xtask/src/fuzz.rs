//! `cargo xtask fuzz [--seconds N] [--replay] [--cmin] [TARGET...]`: the
//! libFuzzer targets in `fuzz/` (the upload sniffer and each first-party
//! parser), built by cargo-fuzz on stable Rust without a sanitizer (Rust code
//! needs none to find panics, overflows and bad spans; the targets build with
//! debug assertions and overflow checks).
//!
//! - default: fuzz each target for `--seconds` (60), growing its corpus in
//!   `fuzz/corpus/<target>`, and print runs, execs/s, coverage and corpus
//!   size per target; a crash fails with its input under `fuzz/artifacts`;
//! - `--replay`: run each target once over its committed corpus (what the
//!   test command does: deterministic, a few seconds);
//! - `--cmin`: minimise each corpus afterwards (before committing it).

use std::path::Path;
use std::process::Command;

use crate::{Result, cargo, run, succeeds, target_dir};

/// Every target, in `fuzz/fuzz_targets/<name>.rs`.
pub const TARGETS: [&str; 6] = ["sniff", "text", "fhir_r4", "hl7v2", "ccda", "pdf"];
const CARGO_FUZZ: &str = "cargo-fuzz@0.13.2";
/// Inputs longer than this are not generated (the parsers' interesting
/// structure is in the first kilobytes; long inputs only slow the search).
const MAX_LEN: &str = "-max_len=65536";

/// Installs cargo-fuzz from crates.io when it is missing.
pub fn ensure_cargo_fuzz() -> Result {
    if succeeds(cargo().args(["fuzz", "--version"])) {
        return Ok(());
    }
    run(cargo().args(["install", "--locked", CARGO_FUZZ]))
}

fn fuzz_command(root: &Path, verb: &str, target: &str) -> Command {
    let mut cmd = cargo();
    cmd.args(["fuzz", verb, "--fuzz-dir"])
        .arg(root.join("fuzz"))
        .args(["--sanitizer", "none", "--debug-assertions", target])
        .env("CARGO_TARGET_DIR", target_dir(root).join("fuzz"));
    cmd
}

/// What libFuzzer said at the end of a run.
#[derive(Default)]
struct Figures {
    runs: u64,
    seconds: u64,
    coverage: u64,
    corpus: u64,
}

fn figures(log: &str) -> Figures {
    let mut f = Figures::default();
    let number = |line: &str, key: &str| -> Option<u64> {
        let at = line.find(key)? + key.len();
        line[at..].split_whitespace().next()?.parse().ok()
    };
    for line in log.lines() {
        if let (Some(runs), Some(seconds)) = (number(line, "Done "), number(line, "runs in ")) {
            f.runs = runs;
            f.seconds = seconds;
        }
        if line.starts_with('#') {
            f.coverage = number(line, "cov: ").unwrap_or(f.coverage);
            f.corpus = number(line, "corp: ")
                .or_else(|| {
                    let at = line.find("corp: ")? + 6;
                    line[at..].split('/').next()?.parse().ok()
                })
                .unwrap_or(f.corpus);
        }
    }
    f
}

pub fn fuzz(root: &Path, args: &[String]) -> Result {
    let mut seconds = 60u64;
    let mut replay = false;
    let mut cmin = false;
    let mut targets = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--seconds" => {
                seconds = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or("--seconds takes a number")?;
            }
            "--replay" => replay = true,
            "--cmin" => cmin = true,
            name if TARGETS.contains(&name) => targets.push(name.to_owned()),
            other => return Err(format!("unknown fuzz argument or target {other:?}")),
        }
    }
    if targets.is_empty() {
        targets = TARGETS.iter().map(|t| (*t).to_owned()).collect();
    }
    ensure_cargo_fuzz()?;
    let mut table = vec![format!(
        "{:<8} {:>10} {:>8} {:>10} {:>6} {:>7}",
        "target", "runs", "seconds", "execs/s", "cov", "corpus"
    )];
    for target in &targets {
        let corpus = root.join("fuzz/corpus").join(target);
        std::fs::create_dir_all(&corpus).map_err(|e| e.to_string())?;
        let mut cmd = fuzz_command(root, "run", target);
        cmd.arg(&corpus).args(["--", MAX_LEN]);
        if replay {
            cmd.arg("-runs=0");
        } else {
            cmd.arg(format!("-max_total_time={seconds}"));
        }
        eprintln!("xtask: running {cmd:?}");
        let output = cmd
            .output()
            .map_err(|e| format!("cannot start cargo fuzz: {e}"))?;
        let log = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(format!(
                "fuzz target {target} failed ({}); its input is under fuzz/artifacts/{target}:\n{}",
                output.status,
                tail.join("\n")
            ));
        }
        let f = figures(&log);
        let rate = f.runs / f.seconds.max(1);
        table.push(format!(
            "{target:<8} {:>10} {:>8} {rate:>10} {:>6} {:>7}",
            f.runs, f.seconds, f.coverage, f.corpus
        ));
        if cmin {
            run(fuzz_command(root, "cmin", target).arg(&corpus))?;
        }
    }
    println!("{}", table.join("\n"));
    Ok(())
}
