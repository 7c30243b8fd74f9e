//! May they? Casbin RBAC with clinic domains.
//!
//! Role permissions are shared templates (`policies/roles.csv`, seeded into
//! `role_permissions`); assignments carry the clinic (`role_assignments`). The
//! live enforcer is rebuilt from the database and swapped atomically, so a
//! policy change never leaves a half-loaded enforcer in use.
//!
//! Owns: the enforcer, the permission vocabulary ([`Permission`]), the role
//! templates, and the poll that picks up changes made by other instances.
//! Uses: `db` (policy tables). Beside `http`, which checks it on every route.

mod adapter;
mod permission;

use std::sync::{Arc, RwLock};

use casbin::{CoreApi, DefaultModel, Enforcer};
use uuid::Uuid;

pub use adapter::SqlAdapter;
pub use permission::Permission;

use crate::db::Db;
use crate::db::rbac::{PLATFORM_DOMAIN, RolePermission};

/// The casbin model, shipped with the binary.
pub const MODEL: &str = include_str!("../../../policies/model.conf");
/// The role templates, shipped with the binary.
pub const ROLES: &str = include_str!("../../../policies/roles.csv");

/// Roles every deployment has.
pub const BUILTIN_ROLES: [&str; 5] = [
    "platform-admin",
    "clinic-admin",
    "clinician",
    "auditor",
    "cds-client",
];

/// Roles a clinic admin or platform admin may assign inside a clinic.
pub const CLINIC_ROLES: [&str; 4] = ["clinic-admin", "clinician", "auditor", "cds-client"];

/// The most custom roles one clinic may define.
pub const MAX_CUSTOM_ROLES: usize = 32;
/// The most permissions one custom role may hold.
pub const MAX_ROLE_PERMISSIONS: usize = 64;
/// The most role assignments one policy document may carry.
pub const MAX_ASSIGNMENTS: usize = 10_000;

/// The casbin name of a clinic's custom role.
pub fn custom_role(domain: &str, role: &str) -> String {
    format!("{domain}/{role}")
}

/// The fixed vocabulary custom roles are built from: every `(resource,
/// action)` a shipped clinic role holds. Platform-only permissions (creating
/// clinics, installing plugins, verifying the audit chain) are not in it, so
/// no custom role can reach beyond a clinic admin.
pub fn vocabulary() -> std::collections::BTreeSet<(String, String)> {
    role_templates()
        .unwrap_or_default()
        .into_iter()
        .filter(|p| CLINIC_ROLES.contains(&p.role.as_str()))
        .map(|p| (p.resource, p.action))
        .collect()
}

/// Whether a custom role name is acceptable: 1 to 40 of `a-z 0-9 -`,
/// starting with a letter, and not a shipped role.
pub fn valid_role_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && name.len() <= 40
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !BUILTIN_ROLES.contains(&name)
}

/// Whether a subject names a user or a token by id (`user:<uuid>`,
/// `token:<uuid>`).
pub fn valid_subject(subject: &str) -> bool {
    crate::db::subject::Subject::is_valid(subject)
}

/// Where a permission is checked: one clinic, or the platform itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    /// Platform-wide operations such as creating clinics.
    Platform,
    /// Operations inside one clinic.
    Clinic(Uuid),
}

impl Domain {
    fn as_casbin(&self) -> String {
        match self {
            Domain::Platform => PLATFORM_DOMAIN.to_owned(),
            Domain::Clinic(id) => id.to_string(),
        }
    }
}

/// The outcome of an authorization check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Allowed.
    Allow,
    /// The subject holds a role here, but not one that allows this.
    Deny,
    /// The subject holds no role here: the domain is invisible to them.
    Invisible,
}

/// Errors loading policies.
#[derive(Debug, thiserror::Error)]
pub enum AuthzError {
    /// Casbin rejected the model or policy.
    #[error("casbin: {0}")]
    Casbin(#[from] casbin::Error),
    /// A line of `roles.csv` is not `p, role, resource, action`.
    #[error("policies/roles.csv line {0} is not `p, role, resource, action`")]
    BadTemplate(usize),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// The live enforcer.
#[derive(Clone)]
pub struct Authz {
    db: Db,
    enforcer: Arc<RwLock<Arc<Enforcer>>>,
}

impl Authz {
    /// Seeds the shipped role templates into the database and loads the enforcer.
    pub async fn load(db: Db) -> Result<Authz, AuthzError> {
        db.add_permissions(&role_templates()?).await?;
        let enforcer = build_enforcer(&db).await?;
        Ok(Authz {
            db,
            enforcer: Arc::new(RwLock::new(Arc::new(enforcer))),
        })
    }

    /// Rebuilds the enforcer from the database and swaps it in.
    pub async fn reload(&self) -> Result<(), AuthzError> {
        let fresh = Arc::new(build_enforcer(&self.db).await?);
        *self.enforcer.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }

    /// Reloads the enforcer whenever the policy tables change, checking every
    /// `poll` (changes made by the CLI or another instance). Runs forever.
    pub async fn keep_in_sync(self, poll: std::time::Duration) {
        let mut seen = self.db.policy_fingerprint().await.ok();
        loop {
            tokio::time::sleep(poll).await;
            let Ok(now) = self.db.policy_fingerprint().await else {
                continue;
            };
            if seen.as_ref() != Some(&now) {
                match self.reload().await {
                    Ok(()) => seen = Some(now),
                    Err(e) => tracing::error!(error = %e, "policy reload failed"),
                }
            }
        }
    }

    /// Checks whether `subject` holds `permission` in `domain`.
    pub fn check(&self, subject: &str, domain: Domain, permission: Permission) -> Decision {
        let (resource, action) = (permission.resource, permission.action);
        let enforcer = self
            .enforcer
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let dom = domain.as_casbin();
        let allowed = |obj: &str, act: &str| {
            enforcer
                .enforce((subject, dom.as_str(), obj, act))
                .unwrap_or(false)
        };
        if allowed(resource, action) {
            return Decision::Allow;
        }
        let visible = match domain {
            Domain::Platform => true,
            Domain::Clinic(_) => allowed(
                Permission::CLINIC_READ.resource,
                Permission::CLINIC_READ.action,
            ),
        };
        if visible {
            Decision::Deny
        } else {
            Decision::Invisible
        }
    }
}

async fn build_enforcer(db: &Db) -> Result<Enforcer, AuthzError> {
    let model = DefaultModel::from_str(MODEL).await?;
    let mut enforcer = Enforcer::new(model, SqlAdapter::new(db.clone())).await?;
    // Writes go through the repositories (validated and transactional), never
    // through the enforcer.
    enforcer.enable_auto_save(false);
    Ok(enforcer)
}

/// Parses the shipped role templates.
pub fn role_templates() -> Result<Vec<RolePermission>, AuthzError> {
    let mut out = Vec::new();
    for (n, line) in ROLES.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        match fields.as_slice() {
            ["p", role, resource, action] => out.push(RolePermission {
                role: (*role).to_owned(),
                resource: (*resource).to_owned(),
                action: (*action).to_owned(),
            }),
            _ => return Err(AuthzError::BadTemplate(n + 1)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_excludes_platform_only_permissions() {
        let words = vocabulary();
        assert!(words.contains(&("patient".into(), "read".into())));
        assert!(!words.contains(&("clinic".into(), "create".into())));
        assert!(!words.contains(&("plugin".into(), "install".into())));
        assert!(
            !words
                .iter()
                .any(|(r, a)| r.contains('*') || a.contains('*'))
        );
    }

    #[test]
    fn role_names_and_subjects_are_checked() {
        assert!(valid_role_name("nurse"));
        assert!(valid_role_name("front-desk-2"));
        assert!(!valid_role_name("clinic-admin"));
        assert!(!valid_role_name("*"));
        assert!(!valid_role_name("Nurse"));
        assert!(!valid_role_name(""));
        let id = Uuid::now_v7();
        assert!(valid_subject(&format!("user:{id}")));
        assert!(valid_subject(&format!("token:{id}")));
        assert!(!valid_subject("user:*"));
        assert!(!valid_subject(&format!("group:{id}")));
        assert!(!valid_subject(&format!("user:{}", id.simple())));
    }

    #[test]
    fn templates_parse_and_cover_every_builtin_role() {
        let templates = role_templates().expect("roles.csv parses");
        for role in BUILTIN_ROLES {
            assert!(
                templates
                    .iter()
                    .any(|p| p.role == role && p.resource == "clinic"),
                "{role} has no clinic permission"
            );
        }
    }
}
