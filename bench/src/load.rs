//! `bench load`: the real `medmemory serve` binary on loopback under many
//! concurrent clients for a fixed time, each with its own clinician token:
//! a mix of search (55 %), record reads (30 %), uploads (10 %) and `/ask`
//! (5 %, with the local model). Reports throughput, p50/p99 per route,
//! answers by status, and the server's RSS (peak, and its median in the
//! first and the last minute, which bound its growth). Fails on any answer
//! but 2xx and 429, and on RSS growth above [`RSS_GROWTH_BOUND`].

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{Value, json};

use crate::{Rng, median, percentile};

/// The largest allowed growth of the server's RSS from the first to the
/// last minute of a run (median of each), as a fraction of the first.
pub const RSS_GROWTH_BOUND: f64 = 0.25;

/// What a run needs.
pub struct Options {
    pub server: PathBuf,
    pub models: PathBuf,
    pub plugins: PathBuf,
    pub samples: PathBuf,
    pub scratch: PathBuf,
    pub clients: usize,
    pub seconds: u64,
    pub ask: bool,
}

const QUESTIONS: [&str; 4] = [
    "What was the last potassium?",
    "Which medications is the patient taking?",
    "Any allergies?",
    "What did the last clinic note say about pain?",
];
const QUERIES: [&str; 6] = [
    "potassium",
    "hemoglobin a1c",
    "knee pain after cycling",
    "penicillin allergy",
    "blood pressure",
    "metformin dose",
];

struct Server {
    child: Child,
    base: String,
    admin: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(options: &Options) -> anyhow::Result<Server> {
    std::fs::create_dir_all(&options.scratch)?;
    let mut child = Command::new(&options.server)
        .arg("serve")
        .env("MEDMEMORY_BIND", "127.0.0.1:0")
        .env("MEDMEMORY_DATA_DIR", &options.scratch)
        .env("MEDMEMORY_MODELS_DIR", &options.models)
        .env("MEDMEMORY_PLUGINS_DIR", &options.plugins)
        .env("MEDMEMORY_LOG", "info,lance=warn,lancedb=warn,sqlx=warn")
        // Every client comes from 127.0.0.1, which a deployment never sees:
        // the per-address limit is lifted; the per-credential one stays.
        .env("MEDMEMORY_RATE_LIMIT_ADDRESS_PER_MINUTE", "100000000")
        .env(
            "MEDMEMORY_GENERATOR",
            if options.ask { "local" } else { "none" },
        )
        .env("MEDMEMORY_ANSWER_QUEUE", "256")
        .current_dir(&options.scratch)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", options.server.display()))?;
    let (addr_tx, addr_rx) = mpsc::channel();
    let stderr = child.stderr.take().context("stderr")?;
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && v["fields"]["message"] == "listening"
                && let Some(addr) = v["fields"]["addr"].as_str()
            {
                let _ = addr_tx.send(addr.to_owned());
            }
        }
    });
    let stdout = child.stdout.take().context("stdout")?;
    let mut admin = String::new();
    BufReader::new(stdout).read_line(&mut admin)?;
    let addr = addr_rx.recv_timeout(Duration::from_secs(120))?;
    Ok(Server {
        child,
        base: format!("http://{addr}/api/v1"),
        admin: admin.trim().to_owned(),
    })
}

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> anyhow::Result<(u16, Value)> {
    let mut request = http.request(method, url).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await.unwrap_or(Value::Null)))
}

async fn created(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    body: Value,
) -> anyhow::Result<Value> {
    let (status, body) = call(http, reqwest::Method::POST, url, token, Some(body)).await?;
    anyhow::ensure!(status == 201 || status == 202, "{url}: {status} {body}");
    Ok(body)
}

/// One clinic's patients and the clinicians' tokens.
struct Clinic {
    id: String,
    patients: Vec<String>,
}

async fn fill(
    server: &Server,
    http: &reqwest::Client,
    samples: &Path,
) -> anyhow::Result<Vec<Clinic>> {
    let bundle = std::fs::read(samples.join("fhir/bundle.json"))?;
    let oru = std::fs::read(samples.join("hl7/oru_r01.hl7"))?;
    let mut clinics = Vec::new();
    let mut jobs = Vec::new();
    for c in 0..2 {
        let clinic = created(
            http,
            &format!("{}/clinics", server.base),
            &server.admin,
            json!({"name": format!("Load {c}")}),
        )
        .await?;
        let id = clinic["id"].as_str().context("clinic id")?.to_owned();
        let mut patients = Vec::new();
        for p in 0..10 {
            let patient = created(
                http,
                &format!("{}/clinics/{id}/patients", server.base),
                &server.admin,
                json!({"given_name": "Load", "family_name": format!("Patient {p}"), "birth_date": "1960-01-01", "sex": "female"}),
            )
            .await?;
            let pid = patient["id"].as_str().context("patient id")?.to_owned();
            let note = format!(
                "Clinic note {p}: knee pain after cycling, ibuprofen 400 mg helps. Blood pressure 128/82."
            );
            for (media, bytes) in [
                ("application/fhir+json", bundle.clone()),
                ("application/x-hl7-v2+er7", oru.clone()),
                ("text/plain", note.into_bytes()),
            ] {
                let response = http
                    .post(format!(
                        "{}/clinics/{id}/patients/{pid}/documents",
                        server.base
                    ))
                    .bearer_auth(&server.admin)
                    .header("content-type", media)
                    .body(bytes)
                    .send()
                    .await?;
                let body: Value = response.json().await?;
                jobs.push((
                    id.clone(),
                    body["job"]["id"].as_str().context("job id")?.to_owned(),
                ));
            }
            patients.push(pid);
        }
        clinics.push(Clinic { id, patients });
    }
    for (clinic, job) in jobs {
        loop {
            let (_, body) = call(
                http,
                reqwest::Method::GET,
                &format!("{}/clinics/{clinic}/jobs/{job}", server.base),
                &server.admin,
                None,
            )
            .await?;
            match body["status"].as_str() {
                Some("succeeded") => break,
                Some("failed") => anyhow::bail!("a fill job failed: {body}"),
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
    Ok(clinics)
}

/// One answer: route, status, seconds.
type Sample = (&'static str, u16, f64);

async fn client(
    base: String,
    token: String,
    clinic: String,
    patients: Vec<String>,
    seed: u64,
    until: Instant,
    ask: bool,
) -> Vec<Sample> {
    let http = reqwest::Client::new();
    let mut rng = Rng(seed);
    let mut samples = Vec::new();
    let mut n = 0u64;
    while Instant::now() < until {
        n += 1;
        let patient = &patients[(rng.next() % patients.len() as u64) as usize];
        let at = format!("{base}/clinics/{clinic}/patients/{patient}");
        let roll = rng.next() % 100;
        let (route, request) = if roll < 55 {
            let query = QUERIES[(rng.next() % QUERIES.len() as u64) as usize];
            (
                "search",
                http.post(format!("{at}/search"))
                    .json(&json!({"query": query, "limit": 5})),
            )
        } else if roll < 85 {
            ("records", http.get(format!("{at}/records?limit=50")))
        } else if roll < 95 || !ask {
            let note =
                format!("Load note {seed}-{n}: patient reports mild headache, resolved with rest.");
            (
                "upload",
                http.post(format!("{at}/documents"))
                    .header("content-type", "text/plain")
                    .body(note),
            )
        } else {
            let question = QUESTIONS[(rng.next() % QUESTIONS.len() as u64) as usize];
            (
                "ask",
                http.post(format!("{at}/ask"))
                    .json(&json!({"question": question})),
            )
        };
        let started = Instant::now();
        let status = match request.bearer_auth(&token).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let _ = response.bytes().await;
                status
            }
            Err(_) => 0,
        };
        samples.push((route, status, started.elapsed().as_secs_f64()));
        if status == 429 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    samples
}

fn rss_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

pub async fn run(options: &Options) -> anyhow::Result<()> {
    let server = start(options)?;
    let pid = server.child.id();
    let http = reqwest::Client::new();
    let clinics = fill(&server, &http, &options.samples).await?;
    let mut tokens = Vec::new();
    for i in 0..options.clients {
        let clinic = &clinics[i % clinics.len()];
        let body = created(
            &http,
            &format!("{}/tokens", server.base),
            &server.admin,
            json!({"name": format!("load client {i}"), "clinic": clinic.id, "role": "clinician"}),
        )
        .await?;
        tokens.push(body["secret"].as_str().context("secret")?.to_owned());
    }
    eprintln!(
        "bench load: {} clients for {} s",
        options.clients, options.seconds
    );
    let rss = Arc::new(Mutex::new(Vec::new()));
    let sampler = {
        let rss = rss.clone();
        tokio::spawn(async move {
            loop {
                if let Some(kib) = rss_kib(pid, "VmRSS:") {
                    rss.lock().unwrap().push(kib);
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    let started = Instant::now();
    let until = started + Duration::from_secs(options.seconds);
    let mut tasks = Vec::new();
    for (i, token) in tokens.into_iter().enumerate() {
        let clinic = &clinics[i % clinics.len()];
        tasks.push(tokio::spawn(client(
            server.base.clone(),
            token,
            clinic.id.clone(),
            clinic.patients.clone(),
            0x9e37_79b9 + i as u64,
            until,
            options.ask,
        )));
    }
    let mut samples: Vec<Sample> = Vec::new();
    for task in tasks {
        samples.extend(task.await?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    sampler.abort();
    let peak = rss_kib(pid, "VmHWM:").unwrap_or_default();
    report(&samples, elapsed, &rss.lock().unwrap(), peak, options)
}

fn report(
    samples: &[Sample],
    elapsed: f64,
    rss: &[u64],
    peak_kib: u64,
    options: &Options,
) -> anyhow::Result<()> {
    println!(
        "bench load: {} clients, {:.0} s, {} requests, {:.1} requests/s (2 cores, server and clients on one machine)",
        options.clients,
        elapsed,
        samples.len(),
        samples.len() as f64 / elapsed
    );
    let mut routes: BTreeMap<&str, Vec<&Sample>> = BTreeMap::new();
    for s in samples {
        routes.entry(s.0).or_default().push(s);
    }
    println!(
        "{:<8} {:>8} {:>9} {:>9}  statuses",
        "route", "count", "p50 ms", "p99 ms"
    );
    let mut bad = BTreeMap::new();
    for (route, list) in &routes {
        let times: Vec<f64> = list.iter().map(|s| s.2 * 1000.0).collect();
        let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
        for s in list {
            *statuses.entry(s.1).or_default() += 1;
            if !(200..300).contains(&s.1) && s.1 != 429 {
                *bad.entry(s.1).or_insert(0) += 1;
            }
        }
        println!(
            "{route:<8} {:>8} {:>9.1} {:>9.1}  {statuses:?}",
            list.len(),
            median(times.clone()),
            percentile(times, 0.99)
        );
    }
    let minute = rss.len().min(60);
    anyhow::ensure!(minute > 0, "no RSS samples");
    let first = median(rss[..minute].iter().map(|&k| k as f64).collect());
    let last = median(
        rss[rss.len() - minute..]
            .iter()
            .map(|&k| k as f64)
            .collect(),
    );
    let growth = last / first - 1.0;
    println!(
        "server RSS: peak {} MiB; median {:.0} MiB in the first minute, {:.0} MiB in the last ({:+.1} %, bound {:+.0} %)",
        peak_kib / 1024,
        first / 1024.0,
        last / 1024.0,
        growth * 100.0,
        RSS_GROWTH_BOUND * 100.0
    );
    anyhow::ensure!(bad.is_empty(), "answers other than 2xx and 429: {bad:?}");
    anyhow::ensure!(
        growth <= RSS_GROWTH_BOUND,
        "the server's RSS grew by {:.1} %",
        growth * 100.0
    );
    Ok(())
}
