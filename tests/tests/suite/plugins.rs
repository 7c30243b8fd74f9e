//! The sandbox with the compiled first-party `text` plugin.

use std::sync::Arc;
use std::time::Duration;

use medmemory::plugins::{Limits, PluginHost, Registry};
use medmemory_tests::{in_ci, plugins_dir};

fn new_registry(cache: &std::path::Path) -> Registry {
    let host = PluginHost::new(Limits {
        fuel: 1_000_000_000,
        memory_bytes: 64 * 1024 * 1024,
        deadline: Duration::from_secs(5),
        max_input_bytes: 1024 * 1024,
        max_output_bytes: 4 * 1024 * 1024,
    })
    .expect("engine");
    Registry::new(Arc::new(host), cache.to_path_buf())
}

fn text_plugin() -> Option<Vec<u8>> {
    match std::fs::read(plugins_dir().join("text.wasm")) {
        Ok(bytes) => Some(bytes),
        Err(e) if !in_ci() => {
            eprintln!("skipping: build plugins with `cargo xtask plugins` ({e})");
            None
        }
        Err(e) => panic!("CI must build the plugins: {e}"),
    }
}

#[test]
fn text_plugin_parses_sections_with_spans() {
    let Some(bytes) = text_plugin() else { return };
    let cache = tempfile::tempdir().unwrap();
    let registry = new_registry(cache.path());
    let plugin = registry.install(&bytes).expect("install");
    assert_eq!(plugin.info.name, "text");
    assert_eq!(plugin.info.id.len(), 64);
    assert!(plugin.info.media_types.iter().any(|m| m == "text/plain"));
    assert!(registry.parser_for("text/plain").is_some());
    assert!(registry.parser_for("application/pdf").is_none());

    let doc = "# Plan\nStart metformin.\n\nRecheck in 3 months.\n";
    let (parsed, outcome) = registry.host().parse(&plugin, "text/plain", doc.as_bytes());
    let parsed = parsed.expect("parse");
    let sections: Vec<(Option<&str>, &str)> = parsed
        .sections
        .iter()
        .map(|s| (s.title.as_deref(), s.text.as_str()))
        .collect();
    assert_eq!(
        sections,
        vec![
            (Some("Plan"), "Start metformin."),
            (Some("Plan"), "Recheck in 3 months.")
        ]
    );
    let span = &parsed.sections[1].source;
    assert_eq!(
        &doc[span.start as usize..span.end as usize],
        "Recheck in 3 months."
    );
    assert!(outcome.fuel_used > 0);

    // Invalid UTF-8 is the plugin's own invalid-input error, not a host failure.
    let (result, _) = registry
        .host()
        .parse(&plugin, "text/plain", &[0xff, 0xfe, 0x00]);
    assert_eq!(result.unwrap_err().code(), "plugin_invalid_input");

    // Compiled once: a second registry over the same cache loads, not compiles.
    let cached: Vec<_> = std::fs::read_dir(cache.path()).unwrap().collect();
    assert_eq!(cached.len(), 1);
    let again = new_registry(cache.path())
        .install(&bytes)
        .expect("install from cache");
    assert_eq!(again.info.id, plugin.info.id);
}

#[test]
fn non_components_are_refused() {
    let cache = tempfile::tempdir().unwrap();
    let registry = new_registry(cache.path());
    let core_module = b"\0asm\x01\x00\x00\x00";
    assert_eq!(
        registry.install(core_module).err().map(|e| e.code()),
        Some("plugin_not_a_component")
    );
    assert_eq!(
        registry.install(b"hello").err().map(|e| e.code()),
        Some("plugin_not_a_component")
    );
    assert!(registry.list().is_empty());
}

/// Each hostile component is refused at install or fails its own call with its
/// stable code, within its budget; the good plugin answers right after each.
#[test]
fn hostile_plugins_fail_alone_with_stable_codes() {
    let Some(good) = text_plugin() else { return };
    let dir = medmemory_tests::hostile_plugins_dir();
    let cache = tempfile::tempdir().unwrap();
    let host = PluginHost::new(Limits {
        fuel: 200_000_000,
        memory_bytes: 32 * 1024 * 1024,
        deadline: Duration::from_secs(2),
        max_input_bytes: 1024 * 1024,
        max_output_bytes: 1024 * 1024,
    })
    .expect("engine");
    let registry = Registry::new(Arc::new(host), cache.path().to_path_buf());
    let good = registry.install(&good).expect("install text");

    let refused = [
        ("filesystem", "plugin_forbidden_import"),
        ("sockets", "plugin_forbidden_import"),
    ];
    for (name, code) in refused {
        let bytes = std::fs::read(dir.join(format!("{name}.wasm")))
            .unwrap_or_else(|e| panic!("{name}.wasm: {e}; run `cargo xtask plugins`"));
        let error = registry
            .install(&bytes)
            .err()
            .unwrap_or_else(|| panic!("{name} installed"));
        assert_eq!(error.code(), code, "{name}: {error}");
    }
    assert_eq!(registry.list().len(), 1, "a refused plugin left a trace");

    let failing = [
        ("loop", "plugin_fuel_exhausted"),
        ("memory-bomb", "plugin_memory_exceeded"),
        ("recursion", "plugin_trapped"),
        ("panic", "plugin_trapped"),
        ("huge-output", "plugin_output_too_large"),
    ];
    for (name, code) in failing {
        let bytes = std::fs::read(dir.join(format!("{name}.wasm"))).expect("hostile component");
        let plugin = registry
            .install(&bytes)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let started = std::time::Instant::now();
        let (result, _) = registry
            .host()
            .parse(&plugin, "application/x-hostile", b"input");
        let elapsed = started.elapsed();
        let failure = result.err().unwrap_or_else(|| panic!("{name} succeeded"));
        assert_eq!(failure.code(), code, "{name}: {failure}");
        assert!(
            elapsed < Duration::from_secs(3),
            "{name} ran {elapsed:?}, past its budget"
        );

        let (ok, _) = registry
            .host()
            .parse(&good, "text/plain", b"Plan:\nWalk daily.\n");
        assert_eq!(ok.expect("the good plugin still answers").sections.len(), 1);
    }
}

/// With fuel to spare, the epoch deadline is what stops a runaway plugin.
#[test]
fn the_deadline_stops_a_loop_that_fuel_would_not() {
    let dir = medmemory_tests::hostile_plugins_dir();
    let Ok(bytes) = std::fs::read(dir.join("loop.wasm")) else {
        assert!(!in_ci(), "CI must build the hostile plugins");
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let host = PluginHost::new(Limits {
        fuel: u64::MAX,
        memory_bytes: 32 * 1024 * 1024,
        deadline: Duration::from_millis(300),
        max_input_bytes: 1024,
        max_output_bytes: 1024,
    })
    .expect("engine");
    let registry = Registry::new(Arc::new(host), cache.path().to_path_buf());
    let plugin = registry.install(&bytes).expect("install");
    let started = std::time::Instant::now();
    let (result, _) = registry
        .host()
        .parse(&plugin, "application/x-hostile", b"x");
    assert_eq!(result.unwrap_err().code(), "plugin_deadline_exceeded");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(250) && elapsed < Duration::from_secs(2),
        "{elapsed:?}"
    );
}
