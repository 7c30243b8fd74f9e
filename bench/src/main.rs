//! `medmemory-bench`: the measurements behind `cargo xtask bench memory`,
//! `bench answers` and `bench authz`, in their own binary so that none of this code
//! ships in `medmemory`. Each works in a scratch folder and prints a report.

mod answers;
mod ask;
mod authz;
mod load;
mod memory;
mod rules;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use medmemory::config::Settings;

#[derive(Parser)]
#[command(name = "medmemory-bench", about = "MedMemory's benchmarks.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Embedding throughput, ingest throughput and search latency.
    Memory {
        /// Documents to ingest; 0 skips the ingest run.
        #[arg(long, default_value_t = 1000)]
        documents: usize,
        /// Synthetic table sizes for the search run, comma-separated.
        #[arg(long, value_delimiter = ',', default_values_t = [100_000usize, 1_000_000])]
        table_sizes: Vec<usize>,
        /// The folder with the HL7 and FHIR samples (`tests/samples`).
        #[arg(long)]
        samples: PathBuf,
        /// A scratch folder, removed after.
        #[arg(long)]
        scratch: PathBuf,
    },
    /// The answer model: time to first token, prefill and decode speed,
    /// peak RSS; beside an OpenAI-compatible peer when one is given.
    Answers {
        /// The models folder (`data/models`).
        #[arg(long)]
        models: PathBuf,
        /// Prompt length in tokens.
        #[arg(long, default_value_t = 1000)]
        prompt_tokens: usize,
        /// Base URL of an OpenAI-compatible server on the same GGUF.
        #[arg(long)]
        peer: Option<String>,
        /// Writes the chat prompt as JSON here (for the transformers side).
        #[arg(long)]
        prompt_out: Option<PathBuf>,
    },
    /// `/ask` end to end with the local model at 1 and 4 concurrent clients.
    Ask {
        /// The models folder (`data/models`).
        #[arg(long)]
        models: PathBuf,
        /// The first-party plugins folder (`data/plugins`).
        #[arg(long)]
        plugins: PathBuf,
        /// Rounds per concurrency level (each client asks once per round).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// CDS Hooks calls and alerts on arrival with every first-party rule.
    Rules {
        /// The first-party plugins folder (`data/plugins`).
        #[arg(long)]
        plugins: PathBuf,
        /// Records of the patient.
        #[arg(long, default_value_t = 500)]
        records: usize,
        /// Calls per service.
        #[arg(long, default_value_t = 200)]
        rounds: usize,
    },
    /// The real server under concurrent clients: throughput, p50/p99 per
    /// route, statuses, RSS.
    Load {
        /// The `medmemory` binary.
        #[arg(long)]
        server: PathBuf,
        /// The models folder (`data/models`).
        #[arg(long)]
        models: PathBuf,
        /// The first-party plugins folder (`data/plugins`).
        #[arg(long)]
        plugins: PathBuf,
        /// The samples folder (`tests/samples`).
        #[arg(long)]
        samples: PathBuf,
        /// A scratch folder for the server's data.
        #[arg(long)]
        scratch: PathBuf,
        /// Concurrent clients, each with its own clinician token.
        #[arg(long, default_value_t = 100)]
        clients: usize,
        /// How long the load lasts.
        #[arg(long, default_value_t = 300)]
        seconds: u64,
        /// Leave `/ask` out (and the local model unloaded).
        #[arg(long)]
        no_ask: bool,
    },
    /// casbin enforce() cost and enforcer rebuilds.
    Authz {
        /// Role assignments to load.
        #[arg(long, default_value_t = 10_000)]
        assignments: usize,
        /// A scratch folder, removed after.
        #[arg(long)]
        scratch: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("medmemory-bench: invalid settings: {e}");
            return ExitCode::from(2);
        }
    };
    medmemory::telemetry::init_logs(&settings.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("medmemory-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Memory {
                documents,
                table_sizes,
                samples,
                scratch,
            } => {
                let options = memory::Options {
                    documents,
                    table_sizes,
                    samples,
                    scratch,
                };
                memory::memory(&settings, &options).await
            }
            Command::Authz {
                assignments,
                scratch,
            } => authz::run(&scratch, assignments).await,
            Command::Answers {
                models,
                prompt_tokens,
                peer,
                prompt_out,
            } => answers::run(&models, prompt_tokens, peer, prompt_out.as_deref()).await,
            Command::Rules {
                plugins,
                records,
                rounds,
            } => rules::run(&plugins, records, rounds).await,
            Command::Ask {
                models,
                plugins,
                rounds,
            } => ask::run(&models, &plugins, rounds).await,
            Command::Load {
                server,
                models,
                plugins,
                samples,
                scratch,
                clients,
                seconds,
                no_ask,
            } => {
                let options = load::Options {
                    server,
                    models,
                    plugins,
                    samples,
                    scratch,
                    clients,
                    seconds,
                    ask: !no_ask,
                };
                load::run(&options).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("medmemory-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A clinic named `Bench` with one patient, Ada Bench, in `app`'s store.
async fn bench_patient(
    app: &medmemory::app::App,
) -> anyhow::Result<(uuid::Uuid, medmemory::db::patients::Patient)> {
    let clinic = app.db().create_clinic("Bench").await?.id;
    let patient = app
        .db()
        .create_patient(
            clinic,
            &medmemory::db::patients::PatientFields {
                given_name: "Ada".into(),
                family_name: "Bench".into(),
                birth_date: "1960-01-01".parse()?,
                sex: "female".into(),
                mrn: Some("BENCH-1".into()),
            },
        )
        .await?;
    Ok((clinic, patient))
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn percentile(mut xs: Vec<f64>, p: f64) -> f64 {
    xs.sort_by(f64::total_cmp);
    let i = ((xs.len() as f64 - 1.0) * p).round() as usize;
    xs[i]
}

/// A small deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    }
}
