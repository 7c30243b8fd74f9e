//! Test helpers: spawn the real `medmemory` binary on a random port with a fresh
//! data folder, talk HTTP to it, and make fresh PostgreSQL databases.
//!
//! Tests read like a user's session: `server.create_clinic(...)`,
//! `server.upload(...)`, `server.search(...)`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub mod chat_peer;
pub mod oidc;
pub mod s3;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `tests/fixtures`: reference data the suite compares against (see its README).
pub fn fixtures_dir() -> PathBuf {
    repo_root().join("tests/fixtures")
}

/// Where `cargo xtask models` put the model.
pub fn models_dir() -> PathBuf {
    std::env::var_os("MEDMEMORY_TEST_MODELS_DIR")
        .map_or_else(|| repo_root().join("data/models"), PathBuf::from)
}

/// Where `cargo xtask plugins` put the components.
pub fn plugins_dir() -> PathBuf {
    std::env::var_os("MEDMEMORY_TEST_PLUGINS_DIR")
        .map_or_else(|| repo_root().join("data/plugins"), PathBuf::from)
}

/// Where `cargo xtask plugins` put the hostile test components.
pub fn hostile_plugins_dir() -> PathBuf {
    std::env::var_os("MEDMEMORY_TEST_HOSTILE_DIR")
        .map_or_else(|| repo_root().join("data/test-plugins"), PathBuf::from)
}

/// Whether this run is CI, where nothing may be skipped.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// The `medmemory` binary built in the same profile as this test.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("MEDMEMORY_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/medmemory
    let profile_dir = exe
        .parent()
        .and_then(|p| p.parent())
        .expect("target profile folder");
    let bin = profile_dir.join("medmemory");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p medmemory` first (cargo xtask test does)",
        bin.display()
    );
    bin
}

/// Sets the environment of a `medmemory` process for a data folder.
fn configure(cmd: &mut Command, data: &Path, options: &Options) {
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("MEDMEMORY_BIND", "127.0.0.1:0")
        .env("MEDMEMORY_DATA_DIR", data)
        .env("MEDMEMORY_MODELS_DIR", models_dir())
        .env("MEDMEMORY_PLUGINS_DIR", plugins_dir())
        .env("MEDMEMORY_LOG", "debug,lance=warn,lancedb=warn,sqlx=warn,datafusion=warn,cranelift=warn,wasmtime=warn,hyper=warn")
        // Tests poll fast; the rate-limit test sets its own limits.
        .env("MEDMEMORY_RATE_LIMIT_PER_MINUTE", "1000000")
        .env("MEDMEMORY_RATE_LIMIT_ADDRESS_PER_MINUTE", "1000000")
        // A killed server's jobs come back after the shortest lease.
        .env("MEDMEMORY_JOB_LEASE_SECS", "5")
        // One instance per data folder: orphans may go at once.
        .env("MEDMEMORY_SWEEP_GRACE_SECS", "0")
        // Sixty servers need not each load a 600 MB decoder: the answer
        // tests choose their generator (the local one, or a scripted peer).
        .env("MEDMEMORY_GENERATOR", "none")
        .current_dir(data);
    if let Some(url) = &options.database_url {
        cmd.env("MEDMEMORY_DATABASE_URL", url);
    }
    for (k, v) in &options.env {
        cmd.env(k, v);
    }
}

/// A running server and a client for it.
pub struct TestServer {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The bootstrap platform-admin token.
    pub admin: String,
    /// The HTTP client.
    pub http: reqwest::Client,
    /// The server's data folder.
    pub data: tempfile::TempDir,
    logs: Arc<Mutex<Vec<String>>>,
    options: Options,
}

/// Options for starting a server.
#[derive(Default, Clone)]
pub struct Options {
    /// A database URL; default: SQLite in the data folder.
    pub database_url: Option<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
}

impl TestServer {
    /// Starts a server with the embedded defaults and waits until `/ready`.
    pub async fn start() -> TestServer {
        Self::start_with(Options::default()).await
    }

    /// Starts a server with options and waits until `/ready`.
    pub async fn start_with(options: Options) -> TestServer {
        let data = tempfile::tempdir().expect("temp data folder");
        Self::launch(data, options, None, true).await
    }

    /// Starts a server and returns as soon as it listens, ready or not.
    pub async fn start_unready(options: Options) -> TestServer {
        let data = tempfile::tempdir().expect("temp data folder");
        Self::launch(data, options, None, false).await
    }

    /// Waits until `/ready` answers 200.
    pub async fn until_ready(&self) {
        self.wait_ready().await;
    }

    /// Starts another instance on the same database (its own data folder),
    /// as a second host behind a load balancer would be; waits until `/ready`.
    pub async fn second_instance(&self) -> TestServer {
        let data = tempfile::tempdir().expect("temp data folder");
        let options = Options {
            database_url: Some(self.database_url()),
            env: self.options.env.clone(),
        };
        Self::launch(data, options, Some(self.admin.clone()), true).await
    }

    /// Stops the server (SIGKILL) and starts it again on the same data folder
    /// and database; waits until `/ready`.
    pub async fn restart(self) -> TestServer {
        self.relaunch(true).await
    }

    /// As [`Self::restart`], but returns as soon as the server listens, ready
    /// or not.
    pub async fn restart_unready(self) -> TestServer {
        self.relaunch(false).await
    }

    async fn relaunch(mut self, wait: bool) -> TestServer {
        self.stop();
        let data = std::mem::replace(&mut self.data, tempfile::tempdir().expect("temp folder"));
        let options = self.options.clone();
        let admin = self.admin.clone();
        drop(self);
        Self::launch(data, options, Some(admin), wait).await
    }

    /// Kills the server process (SIGKILL) and waits for it to die.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The database URL the server uses.
    pub fn database_url(&self) -> String {
        self.options.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}",
                self.data.path().join("medmemory.db").display()
            )
        })
    }

    /// Runs a `medmemory` command with the server's settings; returns its
    /// output.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = Command::new(binary());
        configure(&mut cmd, self.data.path(), &self.options);
        cmd.args(args).output().expect("run medmemory")
    }

    /// `GET /ready`: status and body.
    pub async fn ready_status(&self) -> (u16, Value) {
        let response = self
            .http
            .get(self.url("/ready"))
            .send()
            .await
            .expect("ready");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn launch(
        data: tempfile::TempDir,
        options: Options,
        admin: Option<String>,
        wait: bool,
    ) -> TestServer {
        let mut cmd = Command::new(binary());
        cmd.arg("serve")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        configure(&mut cmd, data.path(), &options);
        let mut child = cmd.spawn().expect("spawn medmemory");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = mpsc::channel::<String>();
        let (token_tx, token_rx) = mpsc::channel::<String>();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("mm_") {
                    let _ = token_tx.send(line);
                }
            }
        });
        let stderr = child.stderr.take().expect("stderr");
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && v["fields"]["message"] == "listening"
                    && let Some(addr) = v["fields"]["addr"].as_str()
                {
                    let _ = addr_tx.send(addr.to_owned());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                panic!(
                    "server did not start; logs:\n{}",
                    logs.lock().unwrap().join("\n")
                )
            });
        let admin = admin.unwrap_or_else(|| {
            token_rx
                .recv_timeout(Duration::from_secs(5))
                .expect("bootstrap token on stdout")
        });
        let server = TestServer {
            child,
            base: format!("http://{addr}"),
            admin,
            http: reqwest::Client::new(),
            data,
            logs,
            options,
        };
        if wait {
            server.wait_ready().await;
        }
        server
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let response = self.http.get(self.url("/ready")).send().await;
            if let Ok(r) = &response
                && r.status() == 200
            {
                return;
            }
            if Instant::now() > deadline {
                let body = match response {
                    Ok(r) => r.text().await.unwrap_or_default(),
                    Err(e) => e.to_string(),
                };
                panic!(
                    "server not ready: {body}\nlogs:\n{}",
                    self.logs().join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Everything the server wrote to stderr so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// An absolute URL for `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The server process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// An API URL for `path` under `/api/v1`.
    pub fn api(&self, path: &str) -> String {
        format!("{}/api/v1{}", self.base, path)
    }

    /// Sends a request with a bearer token and returns status and JSON body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, self.api(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Creates a clinic as the platform admin; returns its id.
    pub async fn create_clinic(&self, name: &str) -> String {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/clinics",
                Some(&self.admin),
                Some(json!({ "name": name })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().expect("clinic id").to_owned()
    }

    /// Creates a patient as `token`; returns its id.
    pub async fn create_patient(
        &self,
        token: &str,
        clinic: &str,
        given: &str,
        family: &str,
    ) -> String {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                &format!("/clinics/{clinic}/patients"),
                Some(token),
                Some(json!({ "given_name": given, "family_name": family, "birth_date": "1961-04-12", "sex": "female" })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().expect("patient id").to_owned()
    }

    /// Issues a clinic token with `role`; returns the secret.
    pub async fn clinic_token(&self, clinic: &str, role: &str) -> String {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/tokens",
                Some(&self.admin),
                Some(json!({ "name": format!("{role} of {clinic}"), "clinic": clinic, "role": role })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["secret"].as_str().expect("secret").to_owned()
    }

    /// Sends raw bytes with a bearer token; returns status and JSON body.
    pub async fn send_bytes(&self, path: &str, token: &str, bytes: Vec<u8>) -> (u16, Value) {
        let response = self
            .http
            .post(self.api(path))
            .bearer_auth(token)
            .header("content-type", "application/wasm")
            .body(bytes)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Uploads raw bytes; returns status and body.
    pub async fn upload(
        &self,
        token: &str,
        clinic: &str,
        patient: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> (u16, Value) {
        let response = self
            .http
            .post(self.api(&format!("/clinics/{clinic}/patients/{patient}/documents")))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(bytes)
            .send()
            .await
            .expect("upload");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Polls a job until it is `succeeded` or `failed`; returns it.
    pub async fn wait_job(&self, token: &str, clinic: &str, job: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (status, body) = self
                .call(
                    reqwest::Method::GET,
                    &format!("/clinics/{clinic}/jobs/{job}"),
                    Some(token),
                    None,
                )
                .await;
            assert_eq!(status, 200, "{body}");
            if body["status"] == "succeeded" || body["status"] == "failed" {
                return body;
            }
            assert!(Instant::now() < deadline, "job stuck: {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Uploads text and waits for its job to succeed; returns the document id.
    pub async fn ingest_text(
        &self,
        token: &str,
        clinic: &str,
        patient: &str,
        text: &str,
    ) -> String {
        let (status, body) = self
            .upload(
                token,
                clinic,
                patient,
                "text/plain",
                text.as_bytes().to_vec(),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        let job = self
            .wait_job(token, clinic, body["job"]["id"].as_str().unwrap())
            .await;
        assert_eq!(job["status"], "succeeded", "{job}");
        body["document"]["id"].as_str().unwrap().to_owned()
    }

    /// Erases a patient (`POST .../erase`); returns status and body.
    pub async fn erase(&self, token: &str, clinic: &str, patient: &str) -> (u16, Value) {
        self.call(
            reqwest::Method::POST,
            &format!("/clinics/{clinic}/patients/{patient}/erase"),
            Some(token),
            None,
        )
        .await
    }

    /// The id of the installed plugin called `name`.
    pub async fn plugin_id(&self, name: &str) -> String {
        let (status, body) = self
            .call(reqwest::Method::GET, "/plugins", Some(&self.admin), None)
            .await;
        assert_eq!(status, 200, "{body}");
        body["items"]
            .as_array()
            .and_then(|items| items.iter().find(|p| p["name"] == name))
            .and_then(|p| p["id"].as_str())
            .unwrap_or_else(|| panic!("no plugin {name} installed: {body}"))
            .to_owned()
    }

    /// Installs the test plugin `component` as the platform admin and
    /// enables it in `clinic`; returns the plugin's id.
    pub async fn install_for(&self, component: &str, clinic: &str) -> String {
        let (status, body) = self
            .send_bytes("/plugins", &self.admin, crate::component(component))
            .await;
        assert_eq!(status, 201, "{body}");
        let plugin = body["id"].as_str().expect("plugin id").to_owned();
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                &format!("/clinics/{clinic}/plugins/{plugin}/enable"),
                Some(&self.admin),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        plugin
    }

    /// Searches a patient's memory; returns the hits.
    pub async fn search(
        &self,
        token: &str,
        clinic: &str,
        patient: &str,
        query: &str,
    ) -> Vec<Value> {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                &format!("/clinics/{clinic}/patients/{patient}/search"),
                Some(token),
                Some(json!({ "query": query, "limit": 5 })),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["items"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A PostgreSQL database made for one test and dropped after it.
pub struct PgDatabase {
    admin_url: String,
    name: String,
    /// The URL of the fresh database.
    pub url: String,
}

/// The PostgreSQL server to test against. In CI it must be configured;
/// elsewhere the PostgreSQL half of a test is skipped with a message.
pub fn postgres_url() -> Option<String> {
    match std::env::var("MEDMEMORY_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(!in_ci(), "MEDMEMORY_TEST_POSTGRES_URL must be set in CI");
            eprintln!("MEDMEMORY_TEST_POSTGRES_URL is not set: skipping the PostgreSQL half");
            None
        }
    }
}

impl PgDatabase {
    /// Creates a fresh, empty database on the test server.
    pub async fn create(admin_url: &str) -> PgDatabase {
        use sqlx::Connection;
        let name = format!("mm_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to PostgreSQL at {admin_url}: {e}"));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let base = admin_url.rsplit_once('/').map_or(admin_url, |(b, _)| b);
        PgDatabase {
            admin_url: admin_url.to_owned(),
            url: format!("{base}/{name}"),
            name,
        }
    }

    /// Drops the database.
    pub async fn drop_db(self) {
        use sqlx::Connection;
        if let Ok(mut conn) = sqlx::PgConnection::connect(&self.admin_url).await {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            )))
            .execute(&mut conn)
            .await;
        }
    }
}

/// Starts a server on a fresh PostgreSQL database, or `None` (with a message)
/// where no PostgreSQL is configured outside CI. Drop the server, then
/// [`PgDatabase::drop_db`].
pub async fn start_on_postgres(env: Vec<(String, String)>) -> Option<(TestServer, PgDatabase)> {
    let admin_url = postgres_url()?;
    let db = PgDatabase::create(&admin_url).await;
    let server = TestServer::start_with(Options {
        database_url: Some(db.url.clone()),
        env,
    })
    .await;
    Some((server, db))
}

/// A built component by file stem: first-party (`data/plugins`) or test
/// (`data/test-plugins`). Panics if `cargo xtask plugins` has not run.
pub fn component(name: &str) -> Vec<u8> {
    let file = format!("{name}.wasm");
    [plugins_dir(), hostile_plugins_dir()]
        .iter()
        .find_map(|dir| std::fs::read(dir.join(&file)).ok())
        .unwrap_or_else(|| {
            panic!("{file} is missing: run `cargo xtask plugins` (cargo xtask test does)")
        })
}

/// A sample document from `tests/samples`.
pub fn sample(path: &str) -> Vec<u8> {
    let full = repo_root().join("tests/samples").join(path);
    std::fs::read(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}
