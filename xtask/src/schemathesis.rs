//! `cargo xtask schemathesis [--max-examples N]`: schemathesis (PyPI,
//! pinned, in a venv under the cache) against `/openapi.json` of a fresh dev
//! server on loopback (its own data folder, rate limits raised so that 429s
//! do not hide answers), once as the platform admin and once as a clinician
//! of a clinic: every check, no server error allowed. Token revocation is
//! left out (the run would revoke its own credential) and so is the plugin
//! upload (schemathesis cannot generate `application/wasm`).

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::setup::cache_dir;
use crate::test::build;
use crate::{Result, run, succeeds, target_dir};

const VERSION: &str = "schemathesis==4.32.5";
const PORT: u16 = 18_990;

/// Runs `curl` with the admin token and a JSON body; returns one field of
/// the JSON answer.
fn create(url: &str, token: &str, body: &str, field: &str) -> Result<String> {
    let out = Command::new("curl")
        .args([
            "-sf",
            "-X",
            "POST",
            url,
            "-H",
            "content-type: application/json",
        ])
        .args(["-H", &format!("authorization: Bearer {token}"), "-d", body])
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    let key = format!("\"{field}\":\"");
    let start = text.find(&key).ok_or(format!("no {field} in {text}"))? + key.len();
    let len = text[start..].find('"').ok_or("unterminated value")?;
    Ok(text[start..start + len].to_owned())
}

pub fn schemathesis(root: &Path, extra: &[String]) -> Result {
    build()?;
    let venv = cache_dir(root).join("schemathesis-venv");
    let st = venv.join("bin/schemathesis");
    if !succeeds(Command::new(&st).arg("--version")) {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
        run(Command::new(venv.join("bin/python")).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            VERSION,
        ]))?;
    }
    let data = target_dir(root).join("schemathesis");
    let _ = fs::remove_dir_all(&data);
    fs::create_dir_all(&data).map_err(|e| e.to_string())?;
    let base = format!("http://127.0.0.1:{PORT}");
    let mut server = Command::new(target_dir(root).join("debug/medmemory"))
        .arg("serve")
        .env("MEDMEMORY_DATA_DIR", &data)
        .env("MEDMEMORY_BIND", format!("127.0.0.1:{PORT}"))
        .env("MEDMEMORY_MODELS_DIR", root.join("data/models"))
        .env("MEDMEMORY_PLUGINS_DIR", root.join("data/plugins"))
        .env("MEDMEMORY_LOG", "warn")
        .env("MEDMEMORY_RATE_LIMIT_PER_MINUTE", "10000000")
        .env("MEDMEMORY_RATE_LIMIT_ADDRESS_PER_MINUTE", "10000000")
        .stdout(Stdio::piped())
        // Its log (no PHI; errors with their request ids) for what fails.
        .stderr(fs::File::create(data.join("server.log")).map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| e.to_string())?;
    let result = (|| {
        // The first start prints the platform-admin token.
        let mut admin = String::new();
        let stdout = server.stdout.take().ok_or("no server stdout")?;
        BufReader::new(stdout)
            .read_line(&mut admin)
            .map_err(|e| e.to_string())?;
        let admin = admin.trim().to_owned();
        let up = (0..60).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(500));
            succeeds(Command::new("curl").args(["-sf", &format!("{base}/health")]))
        });
        if !up {
            return Err("the server did not start".to_owned());
        }
        let api = format!("{base}/api/v1");
        let clinic = create(
            &format!("{api}/clinics"),
            &admin,
            r#"{"name":"Schemathesis"}"#,
            "id",
        )?;
        let clinician = create(
            &format!("{api}/tokens"),
            &admin,
            &format!(r#"{{"name":"clinician","clinic":"{clinic}","role":"clinician"}}"#),
            "secret",
        )?;
        let mut failed = Vec::new();
        for (who, token) in [("platform admin", &admin), ("clinician", &clinician)] {
            eprintln!("xtask: schemathesis as the {who}");
            // Its cache and reports go to the scratch folder, not the checkout.
            let ok = Command::new(&st)
                .current_dir(&data)
                .args(["run", &format!("{base}/openapi.json"), "--checks", "all"])
                .args(["--workers", "2", "--max-examples", "10"])
                .args(["--exclude-operation-id", "revoke"])
                .args(["--exclude-operation-id", "install"])
                .args(["-H", &format!("Authorization: Bearer {token}")])
                .args(extra)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                failed.push(who);
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "schemathesis found failures as: {}",
                failed.join(", ")
            ))
        }
    })();
    let _ = server.kill();
    let _ = server.wait();
    result
}
