//! `cargo xtask plugin new <kind> <name>`: a working plugin crate with a test.

use std::fs;
use std::path::{Path, PathBuf};

use crate::Result;
use crate::plugins::KINDS;

/// `plugin new <kind> <name> [--dir DIR]`.
pub fn plugin_command(root: &Path, args: &[String]) -> Result {
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
pub fn scaffold(root: &Path, kind: &str, name: &str, dir: &Path, standalone: bool) -> Result {
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
