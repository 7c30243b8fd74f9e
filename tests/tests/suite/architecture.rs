//! The host's architecture, checked on its source: data flows one way
//! (`http` -> domain -> stores and engines -> foundation, with `auth` and
//! `authz` beside `http`), no cycle between the host's modules or between the
//! files of one module, and files short enough to read.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use medmemory_tests::repo_root;

/// The layer of each top-level module of `host/src`: a module may use its own
/// layer (without cycles) and the ones below.
fn layer(module: &str) -> Option<u8> {
    Some(match module {
        "config" | "telemetry" => 0,
        "db" | "blobs" | "plugins" | "ml" => 1,
        "ingest" | "memory" | "fhir" | "rag" | "retrieval" | "rules" => 2,
        "auth" | "authz" => 3,
        "http" => 4,
        "app" | "cli" | "lib" | "main" => 5,
        _ => return None,
    })
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The code of a file without comments (doc comments name other modules).
fn code(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| match line.find("//") {
            Some(i) if !line[..i].contains('"') => &line[..i],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The names `text` reaches through paths starting with `prefix` (such as
/// `crate::` or `super::`), including the members of `use prefix{a, b::c}`
/// groups.
fn refs(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find(prefix) {
        let start = i + at;
        i = start + prefix.len();
        // `$crate::` (macro bodies) counts; `other_crate::` and the second
        // half of `super::super::` do not.
        let before = if start > 0 { bytes[start - 1] } else { b' ' };
        if before.is_ascii_alphanumeric() || before == b'_' || text[..start].ends_with("super::") {
            continue;
        }
        let ident = |s: &str| -> String {
            s.trim()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect()
        };
        let rest = &text[i..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            out.extend(group[..end].split(',').map(ident));
        } else {
            out.insert(ident(rest));
        }
    }
    out.retain(|n| !n.is_empty() && n != "self" && n != "super");
    out
}

/// The top-level module a file of `host/src` belongs to.
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next().unwrap().as_os_str();
    first.to_string_lossy().trim_end_matches(".rs").to_owned()
}

/// Exported macros live at the crate root; map each to its module.
fn macro_homes(src: &Path, files: &[PathBuf]) -> BTreeMap<String, String> {
    let mut homes = BTreeMap::new();
    for file in files {
        let text = code(file);
        let mut lines = text.lines().peekable();
        while let Some(line) = lines.next() {
            if line.trim() == "#[macro_export]"
                && let Some(next) = lines.peek()
                && let Some(name) = next.trim().strip_prefix("macro_rules! ")
            {
                let name = name.trim_end_matches(" {").trim().to_owned();
                homes.insert(name, module_of(src, file));
            }
        }
    }
    homes
}

/// The graph of top-level modules: who uses whom, with one file per edge as
/// evidence.
fn module_graph() -> BTreeMap<String, BTreeMap<String, PathBuf>> {
    let src = repo_root().join("host/src");
    let files = sources(&src);
    let macros = macro_homes(&src, &files);
    let mut graph: BTreeMap<String, BTreeMap<String, PathBuf>> = BTreeMap::new();
    for file in &files {
        let from = module_of(&src, file);
        let uses = graph.entry(from.clone()).or_default();
        for name in refs(&code(file), "crate::") {
            let to = macros.get(&name).cloned().unwrap_or(name);
            if to != from && layer(&to).is_some() {
                uses.entry(to).or_insert_with(|| file.clone());
            }
        }
    }
    graph
}

/// A cycle in `graph`, if there is one.
fn find_cycle<K: Ord + Clone + std::fmt::Debug>(
    graph: &BTreeMap<K, BTreeSet<K>>,
) -> Option<Vec<K>> {
    fn visit<K: Ord + Clone>(
        node: &K,
        graph: &BTreeMap<K, BTreeSet<K>>,
        path: &mut Vec<K>,
        done: &mut BTreeSet<K>,
    ) -> Option<Vec<K>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.clone());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.clone());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, graph, &mut Vec::new(), &mut done) {
            return Some(cycle);
        }
    }
    None
}

#[test]
fn modules_use_only_the_layers_below_them() {
    let graph = module_graph();
    let mut unknown = Vec::new();
    let mut upward = Vec::new();
    for (from, uses) in &graph {
        let Some(own) = layer(from) else {
            unknown.push(from.clone());
            continue;
        };
        for (to, evidence) in uses {
            if layer(to).is_some_and(|l| l > own) {
                upward.push(format!("{from} -> {to} ({})", evidence.display()));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "modules without a layer (add them to `layer`): {unknown:?}"
    );
    assert!(
        upward.is_empty(),
        "imports from a higher layer: {upward:#?}"
    );
    let edges: BTreeMap<String, BTreeSet<String>> = graph
        .iter()
        .map(|(k, v)| (k.clone(), v.keys().cloned().collect()))
        .collect();
    assert_eq!(find_cycle(&edges), None, "a cycle between host modules");
}

#[test]
fn files_of_a_module_form_no_cycle() {
    let src = repo_root().join("host/src");
    let mut cycles = Vec::new();
    let mut folders: Vec<PathBuf> = sources(&src)
        .iter()
        .filter_map(|f| f.parent().map(Path::to_path_buf))
        .collect();
    folders.sort();
    folders.dedup();
    for folder in folders {
        // The sibling files of one folder (mod.rs is their parent, not a sibling).
        let siblings: BTreeMap<String, PathBuf> = std::fs::read_dir(&folder)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "rs"))
            .filter(|p| !p.ends_with("mod.rs") && !p.ends_with("lib.rs") && !p.ends_with("main.rs"))
            .map(|p| (p.file_stem().unwrap().to_string_lossy().into_owned(), p))
            .collect();
        let module_path = folder
            .strip_prefix(&src)
            .unwrap()
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("::");
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (name, path) in &siblings {
            let text = code(path);
            let uses = edges.entry(name.clone()).or_default();
            let mut named = refs(&text, "super::");
            if !module_path.is_empty() {
                named.extend(refs(&text, &format!("crate::{module_path}::")));
            }
            uses.extend(
                named
                    .into_iter()
                    .filter(|n| n != name && siblings.contains_key(n)),
            );
        }
        if let Some(cycle) = find_cycle(&edges) {
            cycles.push(format!("{}: {cycle:?}", folder.display()));
        }
    }
    assert!(cycles.is_empty(), "files that use each other: {cycles:#?}");
}

#[test]
fn files_stay_short_enough_to_read() {
    let mut long = Vec::new();
    for (folder, max) in [("host/src", 450), ("plugins", 300)] {
        for file in sources(&repo_root().join(folder)) {
            if file.components().any(|c| c.as_os_str() == "target") {
                continue;
            }
            let lines = std::fs::read_to_string(&file).unwrap().lines().count();
            if lines > max {
                long.push(format!(
                    "{} has {lines} lines (at most {max})",
                    file.display()
                ));
            }
        }
    }
    assert!(long.is_empty(), "{long:#?}");
}

#[test]
fn no_bench_code_ships_in_the_medmemory_crate() {
    let src = repo_root().join("host/src");
    let offenders: Vec<String> = sources(&src)
        .into_iter()
        .filter(|f| {
            let text = code(f);
            f.file_stem().is_some_and(|s| s == "bench")
                || text.contains("BenchMemory")
                || text.contains("bench-memory")
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(offenders.is_empty(), "{offenders:?}");
}
