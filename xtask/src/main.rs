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
//! - `schemathesis [ARGS]` setup, then schemathesis over `/openapi.json` of a
//!   fresh server, as a platform admin and as a clinician
//! - `fuzz [--seconds N] [--replay] [--cmin] [TARGET...]` libFuzzer over the
//!   upload sniffer and each first-party parser (`fuzz/`)
//! - `test`    setup, then run every check and test CI runs
//! - `bench plugins` instantiate + parse cost of 1 KB and 1 MB documents
//!   (median, p99), compile and cached-load times
//! - `bench memory` embedding, ingest and search figures
//! - `bench load [--clients N] [--seconds S] [--no-ask]` the real binary under
//!   concurrent clients: throughput, p50/p99 per route, statuses, RSS
//! - `bench authz` casbin enforce() cost and enforcer rebuilds at 10k
//!   role assignments
//!
//! It uses only std and shells out to cargo, rustup, python3, npm and apt-get.

mod bench;
mod fuzz;
mod plugins;
mod scaffold;
mod schemathesis;
mod setup;
mod test;

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

pub type Result<T = ()> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let root = workspace_root();
    if let Err(e) = env::set_current_dir(&root) {
        eprintln!("xtask: cannot enter {}: {e}", root.display());
        return ExitCode::FAILURE;
    }
    let result = match args.first().map(String::as_str) {
        Some("setup") => setup::setup(&root),
        Some("models") => setup::models(&root),
        Some("plugins") => plugins::plugins(&root),
        Some("build") => test::build(),
        Some("serve") => setup::setup(&root).and_then(|()| test::serve(&root, &args[1..])),
        Some("test") => setup::setup(&root)
            .and_then(|()| setup::s3_server())
            .and_then(|()| test::test(&root)),
        Some("plugin") => scaffold::plugin_command(&root, &args[1..]),
        Some("fuzz") => fuzz::fuzz(&root, &args[1..]),
        Some("schemathesis") => {
            setup::setup(&root).and_then(|()| schemathesis::schemathesis(&root, &args[1..]))
        }
        Some("bench") => match args.get(1).map(String::as_str) {
            Some("plugins") => {
                setup::setup(&root).and_then(|()| bench::bench_plugins(&root))
            }
            Some("memory") => {
                setup::setup(&root).and_then(|()| bench::bench_memory(&root, &args[2..]))
            }
            Some("authz") => bench::bench_authz(&root, &args[2..]),
            Some("rules") => {
                setup::setup(&root).and_then(|()| bench::bench_rules(&root, &args[2..]))
            }
            Some("answers") => {
                setup::setup(&root).and_then(|()| bench::bench_answers(&root, &args[2..]))
            }
            Some("load") => setup::setup(&root).and_then(|()| bench::bench_load(&root, &args[2..])),
            Some("golden") => setup::models(&root).and_then(|()| bench::golden(&root)),
            _ => Err("usage: cargo xtask bench <plugins|memory [--documents N] [--table-sizes A,B]|answers [--prompt-tokens N] [--no-peer]|rules [--records N] [--rounds N]|load [--clients N] [--seconds S] [--no-ask]|authz [--assignments N]|golden>".into()),
        },
        _ => {
            eprintln!(
                "usage: cargo xtask <setup|models|plugins|build|serve|test|plugin new|bench plugins|bench memory|bench answers|bench rules|bench load|bench authz|bench golden|schemathesis|fuzz>"
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

pub fn target_dir(root: &Path) -> PathBuf {
    env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

pub fn run(cmd: &mut Command) -> Result {
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

pub fn succeeds(cmd: &mut Command) -> bool {
    cmd.output().is_ok_and(|o| o.status.success())
}

pub fn cargo() -> Command {
    Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}
