//! The catalog: the plugin platform as the rest of MedMemory sees it. Installs
//! that persist (component in the plugin store, row in SQL), each clinic's
//! enablement, settings and limits, and ([`calls`]) calls that go through the
//! circuit breaker and are audited (fail closed: a call that cannot be audited
//! fails).

mod calls;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::db::Db;
use crate::db::plugins::{ClinicPlugin, PluginRow};
use crate::plugins::breaker::{Breaker, BreakerPolicy};
use crate::plugins::contract::Kind;
use crate::plugins::failure::PluginFailure;
use crate::plugins::limits::LimitOverrides;
use crate::plugins::registry::{InstallError, InstalledPlugin, PluginInfo, Registry, ServiceInfo};
use crate::plugins::sandbox::CallContext;

/// A plugin as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PluginView {
    /// SHA-256 of the component: the plugin's id.
    pub id: String,
    /// Name from `describe()`.
    pub name: String,
    /// The plugin's own version.
    pub version: String,
    /// parser, clinical-rule or retriever.
    pub kind: String,
    /// One line for admins.
    pub description: String,
    /// Media types a parser handles.
    pub media_types: Vec<String>,
    /// The contract version it was built against.
    pub wit_version: String,
    /// Component size in bytes.
    pub size_bytes: i64,
    /// Shipped with MedMemory: enabled in every clinic unless it disables it.
    pub first_party: bool,
    /// When it was installed.
    pub installed_at: chrono::DateTime<chrono::Utc>,
    /// Set when a newer version with the same name replaced it.
    pub retired_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Clinics that enabled it explicitly.
    pub enabled_clinics: Vec<Uuid>,
    /// Clinics that disabled it explicitly.
    pub disabled_clinics: Vec<Uuid>,
    /// For clinical rules: the CDS services it offers.
    pub services: Vec<ServiceInfo>,
    /// Whether its circuit breaker is open in this instance: for the clinic,
    /// in a clinic's list; for any clinic, in the platform's.
    pub circuit_open: bool,
}

/// A plugin as one clinic sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ClinicPluginView {
    /// The plugin.
    pub plugin: PluginView,
    /// Whether this clinic uses it.
    pub enabled: bool,
    /// This clinic's settings (the plugin's `config` import).
    pub settings: BTreeMap<String, String>,
    /// This clinic's limit overrides.
    pub limits: LimitOverrides,
}

/// Why a call through the platform failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The plugin failed (or was not called).
    #[error(transparent)]
    Plugin(#[from] PluginFailure),
    /// The call could not be audited, so its result is withheld.
    #[error("the plugin call could not be audited: {0}")]
    Audit(String),
}

/// Who a call is made for.
#[derive(Debug, Clone, Default)]
pub struct CallFor {
    /// The clinic.
    pub clinic: Option<Uuid>,
    /// The patient.
    pub patient: Option<Uuid>,
    /// The HTTP request behind it.
    pub request_id: Option<String>,
}

/// A circuit breaker's key: the clinic (none for calls outside one) and the
/// plugin id.
type BreakerKey = (Option<Uuid>, String);

/// Installed plugins, persisted and audited.
pub struct Plugins {
    registry: Arc<Registry>,
    db: Db,
    store_dir: PathBuf,
    breaker: BreakerPolicy,
    /// One breaker per clinic and plugin: a clinic whose calls keep failing
    /// (its documents, its lowered limits) pauses the plugin for itself only.
    breakers: Mutex<HashMap<BreakerKey, Arc<Breaker>>>,
}

fn view(
    row: &PluginRow,
    choices: &[ClinicPlugin],
    compiled: Option<&InstalledPlugin>,
    circuit_open: bool,
) -> PluginView {
    let mine = choices.iter().filter(|c| c.plugin_id == row.id);
    let (on, off): (Vec<&ClinicPlugin>, Vec<&ClinicPlugin>) = mine.partition(|c| c.enabled);
    PluginView {
        id: row.id.clone(),
        name: row.name.clone(),
        version: row.version.clone(),
        kind: row.kind.clone(),
        description: row.description.clone(),
        media_types: serde_json::from_str(&row.media_types).unwrap_or_default(),
        wit_version: row.wit_version.clone(),
        size_bytes: row.size_bytes,
        first_party: row.first_party,
        installed_at: row.installed_at,
        retired_at: row.retired_at,
        enabled_clinics: on.iter().map(|c| c.clinic_id).collect(),
        disabled_clinics: off.iter().map(|c| c.clinic_id).collect(),
        services: compiled
            .map(|p| p.info.services.clone())
            .unwrap_or_default(),
        circuit_open,
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn row_of(info: &PluginInfo, first_party: bool) -> PluginRow {
    PluginRow {
        id: info.id.clone(),
        name: info.name.clone(),
        version: info.version.clone(),
        kind: info.kind.as_str().to_owned(),
        description: info.description.clone(),
        media_types: serde_json::to_string(&info.media_types).unwrap_or_else(|_| "[]".into()),
        wit_version: info.wit_version.clone(),
        size_bytes: info.size_bytes as i64,
        first_party,
        installed_at: crate::db::now(),
        retired_at: None,
    }
}

impl Plugins {
    /// The platform over `registry`, persisting to `db` and `store_dir`.
    pub fn new(
        registry: Arc<Registry>,
        db: Db,
        store_dir: PathBuf,
        breaker: BreakerPolicy,
    ) -> Plugins {
        Plugins {
            registry,
            db,
            store_dir,
            breaker,
            breakers: Mutex::new(HashMap::new()),
        }
    }

    /// The breaker of `plugin` for `clinic` (`None`: calls made for no clinic).
    fn breaker_for(&self, clinic: Option<Uuid>, plugin: &str) -> Arc<Breaker> {
        self.breakers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((clinic, plugin.to_owned()))
            .or_default()
            .clone()
    }

    /// Whether `plugin`'s breaker is open for `clinic`, or for any clinic
    /// when `clinic` is `None`.
    pub fn circuit_open(&self, clinic: Option<Uuid>, plugin: &str) -> bool {
        let now = Instant::now();
        self.breakers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|((c, p), b)| p == plugin && (clinic.is_none() || *c == clinic) && b.is_open(now))
    }

    /// How long an open breaker stays open.
    pub fn cool_down(&self) -> std::time::Duration {
        self.breaker.cool_down
    }

    /// The compiled plugins of this process.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Vets, compiles and records a component. `explicit` installs make it the
    /// current version of its name.
    pub async fn install(
        &self,
        bytes: Vec<u8>,
        first_party: bool,
        explicit: bool,
    ) -> Result<Arc<InstalledPlugin>, InstallError> {
        let registry = self.registry.clone();
        let store = self.store_dir.clone();
        let plugin = tokio::task::spawn_blocking(move || {
            let plugin = registry.install(&bytes)?;
            let path = store.join(format!("{}.wasm", plugin.info.id));
            if !path.exists() {
                std::fs::create_dir_all(&store)?;
                let tmp = path.with_extension(format!("tmp{}", std::process::id()));
                std::fs::write(&tmp, &bytes)?;
                std::fs::rename(&tmp, &path)?;
            }
            Ok::<_, InstallError>(plugin)
        })
        .await
        .map_err(|e| InstallError::Compile(e.to_string()))??;
        self.db
            .record_plugin_install(&row_of(&plugin.info, first_party), explicit)
            .await
            .map_err(|e| InstallError::Cache(std::io::Error::other(e)))?;
        Ok(plugin)
    }

    /// Installs every `*.wasm` in `dir` as first-party; a refused file is
    /// logged and skipped. Returns how many were installed.
    pub async fn install_dir(&self, dir: &Path) -> usize {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
            .collect();
        paths.sort();
        let mut installed = 0;
        for path in paths {
            let bytes = match std::fs::read(&path) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "plugin unreadable");
                    continue;
                }
            };
            match self.install(bytes, true, false).await {
                Ok(plugin) => {
                    tracing::info!(plugin = %plugin.info.name, version = %plugin.info.version, id = %plugin.info.id, "plugin installed");
                    installed += 1;
                }
                Err(e) => {
                    tracing::warn!(file = %path.display(), code = e.code(), error = %e, "plugin refused")
                }
            }
        }
        installed
    }

    /// Compiles every current plugin recorded in the database (installed
    /// through the API, here or by another instance) that is not loaded yet.
    pub async fn load_recorded(&self) -> anyhow::Result<usize> {
        let mut loaded = 0;
        for row in self.db.plugins(false).await? {
            if self.compiled(&row.id).await.is_some() {
                loaded += 1;
            }
        }
        Ok(loaded)
    }

    /// The compiled plugin with this id, compiling it from the plugin store if
    /// this instance has not yet.
    async fn compiled(&self, id: &str) -> Option<Arc<InstalledPlugin>> {
        if let Some(p) = self.registry.get(id) {
            return Some(p);
        }
        let path = self.store_dir.join(format!("{id}.wasm"));
        let registry = self.registry.clone();
        let result = tokio::task::spawn_blocking(move || registry.install_file(&path)).await;
        match result {
            Ok(Ok(p)) => Some(p),
            Ok(Err(e)) => {
                tracing::error!(plugin = id, code = e.code(), error = %e, "recorded plugin cannot be loaded");
                None
            }
            Err(_) => None,
        }
    }

    /// Installed plugins with their clinic choices.
    pub async fn list(&self, include_retired: bool) -> anyhow::Result<Vec<PluginView>> {
        let rows = self.db.plugins(include_retired).await?;
        let choices = self.db.all_clinic_plugins().await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let compiled = self.registry.get(&row.id);
            let open = self.circuit_open(None, &row.id);
            out.push(view(row, &choices, compiled.as_deref(), open));
        }
        Ok(out)
    }

    /// One installed plugin.
    pub async fn get(&self, id: &str) -> anyhow::Result<Option<PluginView>> {
        let Some(row) = self.db.plugin(id).await? else {
            return Ok(None);
        };
        let choices = self.db.all_clinic_plugins().await?;
        let open = self.circuit_open(None, id);
        Ok(Some(view(
            &row,
            &choices,
            self.registry.get(id).as_deref(),
            open,
        )))
    }

    /// Every current plugin as `clinic` sees it.
    pub async fn for_clinic(&self, clinic: Uuid) -> anyhow::Result<Vec<ClinicPluginView>> {
        let rows = self.db.plugins(false).await?;
        let choices = self.db.clinic_plugins(clinic).await?;
        Ok(rows
            .iter()
            .map(|row| {
                let choice = choices.iter().find(|c| c.plugin_id == row.id);
                ClinicPluginView {
                    plugin: view(
                        row,
                        &choices,
                        self.registry.get(&row.id).as_deref(),
                        self.circuit_open(Some(clinic), &row.id),
                    ),
                    enabled: choice.map_or(row.first_party, |c| c.enabled),
                    settings: choice
                        .and_then(|c| serde_json::from_str(&c.config).ok())
                        .unwrap_or_default(),
                    limits: choice
                        .and_then(|c| serde_json::from_str(&c.limits).ok())
                        .unwrap_or_default(),
                }
            })
            .collect())
    }

    /// The call context of `plugin` in `clinic`: its limits and settings.
    fn context(&self, choice: Option<&ClinicPluginView>) -> CallContext {
        let host = self.registry.host();
        let Some(choice) = choice else {
            return host.default_context();
        };
        CallContext {
            limits: host.limits().with(&choice.limits).unwrap_or(host.limits()),
            config: choice.settings.clone(),
        }
    }

    /// The parser `clinic` has enabled for `media_type`, with its context.
    pub async fn parser_for(
        &self,
        clinic: Uuid,
        media_type: &str,
    ) -> anyhow::Result<Option<(Arc<InstalledPlugin>, CallContext)>> {
        self.pick(clinic, Kind::Parser, |p| {
            p.media_types.iter().any(|m| m == media_type)
        })
        .await
    }

    /// The plugin of `kind` that `clinic` has enabled and `wanted` accepts,
    /// compiled and with its context. Explicitly enabled plugins win over
    /// first-party defaults, newer installs over older ones; one that cannot
    /// be loaded gives way to the next.
    pub async fn pick(
        &self,
        clinic: Uuid,
        kind: Kind,
        wanted: impl Fn(&PluginView) -> bool,
    ) -> anyhow::Result<Option<(Arc<InstalledPlugin>, CallContext)>> {
        let mut candidates: Vec<ClinicPluginView> = self
            .for_clinic(clinic)
            .await?
            .into_iter()
            .filter(|c| c.enabled && c.plugin.kind == kind.as_str() && wanted(&c.plugin))
            .collect();
        candidates.sort_by_key(|c| {
            (
                c.plugin.first_party,
                std::cmp::Reverse(c.plugin.installed_at),
            )
        });
        for candidate in candidates {
            if let Some(loaded) = self.loaded(&candidate).await {
                return Ok(Some(loaded));
            }
        }
        Ok(None)
    }

    /// A clinic's choice of a plugin, compiled and with its context; `None`
    /// if this instance cannot load it.
    pub async fn loaded(
        &self,
        choice: &ClinicPluginView,
    ) -> Option<(Arc<InstalledPlugin>, CallContext)> {
        self.compiled(&choice.plugin.id)
            .await
            .map(|plugin| (plugin, self.context(Some(choice))))
    }

    /// Enables or disables a plugin for a clinic.
    pub async fn set_enabled(&self, clinic: Uuid, id: &str, enabled: bool) -> anyhow::Result<()> {
        self.db
            .set_clinic_plugin(clinic, id, Some(enabled), None, None)
            .await?;
        Ok(())
    }

    /// Stores a clinic's settings and limits for a plugin (validated by the caller).
    pub async fn set_config(
        &self,
        clinic: Uuid,
        id: &str,
        settings: &BTreeMap<String, String>,
        limits: &LimitOverrides,
    ) -> anyhow::Result<()> {
        let settings = serde_json::to_string(settings)?;
        let limits = serde_json::to_string(limits)?;
        self.db
            .set_clinic_plugin(clinic, id, None, Some(&settings), Some(&limits))
            .await?;
        Ok(())
    }
}
