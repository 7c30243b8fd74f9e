//! A casbin adapter over our own tables (`role_permissions`, `role_assignments`).
//!
//! The crates.io sqlx adapter targets an older sqlx and its own table layout;
//! ours keeps RBAC in the same schema, migrations and transactions as the rest.

use casbin::{Adapter, Filter, Model, error::AdapterError};

use crate::db::Db;
use crate::db::rbac::{Assignment, RolePermission};

/// Loads and stores casbin `p` and `g` lines in the MedMemory database.
pub struct SqlAdapter {
    db: Db,
}

impl SqlAdapter {
    /// An adapter over `db`.
    pub fn new(db: Db) -> SqlAdapter {
        SqlAdapter { db }
    }
}

fn adapter_error(e: sqlx::Error) -> casbin::Error {
    casbin::Error::AdapterError(AdapterError(Box::new(e)))
}

fn to_permission(rule: &[String]) -> Option<RolePermission> {
    match rule {
        [role, resource, action] => Some(RolePermission {
            role: role.clone(),
            resource: resource.clone(),
            action: action.clone(),
        }),
        _ => None,
    }
}

fn to_assignment(rule: &[String]) -> Option<Assignment> {
    match rule {
        [subject, role, domain] => Some(Assignment {
            subject: subject.clone(),
            role: role.clone(),
            domain: domain.clone(),
        }),
        _ => None,
    }
}

#[async_trait::async_trait]
impl Adapter for SqlAdapter {
    async fn load_policy(&mut self, m: &mut dyn Model) -> casbin::Result<()> {
        for p in self.db.permissions().await.map_err(adapter_error)? {
            m.add_policy("p", "p", vec![p.role, p.resource, p.action]);
        }
        // A clinic's custom roles are namespaced by the clinic, so one
        // clinic's `nurse` never grants anything in another.
        for (clinic, p) in self.db.clinic_permissions().await.map_err(adapter_error)? {
            m.add_policy(
                "p",
                "p",
                vec![
                    super::custom_role(&clinic.to_string(), &p.role),
                    p.resource,
                    p.action,
                ],
            );
        }
        for g in self.db.assignments().await.map_err(adapter_error)? {
            let role = if super::BUILTIN_ROLES.contains(&g.role.as_str()) {
                g.role
            } else {
                super::custom_role(&g.domain, &g.role)
            };
            m.add_policy("g", "g", vec![g.subject, role, g.domain]);
        }
        Ok(())
    }

    async fn load_filtered_policy<'a>(
        &mut self,
        m: &mut dyn Model,
        _f: Filter<'a>,
    ) -> casbin::Result<()> {
        // The whole policy is small (role templates + assignments); load it all.
        self.load_policy(m).await
    }

    async fn save_policy(&mut self, m: &mut dyn Model) -> casbin::Result<()> {
        let permissions: Vec<RolePermission> = m
            .get_policy("p", "p")
            .iter()
            .filter_map(|r| to_permission(r))
            .collect();
        let assignments: Vec<Assignment> = m
            .get_policy("g", "g")
            .iter()
            .filter_map(|r| to_assignment(r))
            .collect();
        self.db
            .add_permissions(&permissions)
            .await
            .map_err(adapter_error)?;
        self.db
            .add_assignments(&assignments)
            .await
            .map_err(adapter_error)?;
        Ok(())
    }

    async fn clear_policy(&mut self) -> casbin::Result<()> {
        let permissions = self.db.permissions().await.map_err(adapter_error)?;
        let assignments = self.db.assignments().await.map_err(adapter_error)?;
        self.db
            .remove_permissions(&permissions)
            .await
            .map_err(adapter_error)?;
        self.db
            .remove_assignments(&assignments)
            .await
            .map_err(adapter_error)?;
        Ok(())
    }

    fn is_filtered(&self) -> bool {
        false
    }

    async fn add_policy(
        &mut self,
        sec: &str,
        ptype: &str,
        rule: Vec<String>,
    ) -> casbin::Result<bool> {
        self.add_policies(sec, ptype, vec![rule]).await
    }

    async fn add_policies(
        &mut self,
        sec: &str,
        _ptype: &str,
        rules: Vec<Vec<String>>,
    ) -> casbin::Result<bool> {
        let added = if sec == "p" {
            let rows: Vec<RolePermission> = rules.iter().filter_map(|r| to_permission(r)).collect();
            self.db.add_permissions(&rows).await
        } else {
            let rows: Vec<Assignment> = rules.iter().filter_map(|r| to_assignment(r)).collect();
            self.db.add_assignments(&rows).await
        };
        Ok(added.map_err(adapter_error)? > 0)
    }

    async fn remove_policy(
        &mut self,
        sec: &str,
        ptype: &str,
        rule: Vec<String>,
    ) -> casbin::Result<bool> {
        self.remove_policies(sec, ptype, vec![rule]).await
    }

    async fn remove_policies(
        &mut self,
        sec: &str,
        _ptype: &str,
        rules: Vec<Vec<String>>,
    ) -> casbin::Result<bool> {
        let removed = if sec == "p" {
            let rows: Vec<RolePermission> = rules.iter().filter_map(|r| to_permission(r)).collect();
            self.db.remove_permissions(&rows).await
        } else {
            let rows: Vec<Assignment> = rules.iter().filter_map(|r| to_assignment(r)).collect();
            self.db.remove_assignments(&rows).await
        };
        Ok(removed.map_err(adapter_error)? > 0)
    }

    async fn remove_filtered_policy(
        &mut self,
        sec: &str,
        ptype: &str,
        field_index: usize,
        field_values: Vec<String>,
    ) -> casbin::Result<bool> {
        let matches = |rule: &[String]| {
            field_values
                .iter()
                .enumerate()
                .all(|(i, v)| v.is_empty() || rule.get(field_index + i) == Some(v))
        };
        let rules: Vec<Vec<String>> = if sec == "p" {
            let all = self.db.permissions().await.map_err(adapter_error)?;
            all.into_iter()
                .map(|p| vec![p.role, p.resource, p.action])
                .filter(|r| matches(r))
                .collect()
        } else {
            let all = self.db.assignments().await.map_err(adapter_error)?;
            all.into_iter()
                .map(|g| vec![g.subject, g.role, g.domain])
                .filter(|r| matches(r))
                .collect()
        };
        self.remove_policies(sec, ptype, rules).await
    }
}
