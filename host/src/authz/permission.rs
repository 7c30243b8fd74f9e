//! The permissions routes check: one constant per `(resource, action)` pair of
//! the casbin policy. A handler names a constant, never two strings, and a test
//! holds this list, `policies/roles.csv` and the custom-role vocabulary
//! together.

use std::fmt;

/// A `(resource, action)` pair of the casbin policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Permission {
    /// The resource type, e.g. `patient`.
    pub resource: &'static str,
    /// The action, e.g. `read`.
    pub action: &'static str,
}

macro_rules! permissions {
    ($($name:ident = $resource:literal . $action:literal;)*) => {
        impl Permission {
            $(
                #[doc = concat!("`", $resource, "`, `", $action, "`")]
                pub const $name: Permission = Permission { resource: $resource, action: $action };
            )*
            /// Every permission a route checks.
            pub const ALL: &'static [Permission] = &[$(Permission::$name),*];
        }
    };
}

permissions! {
    CLINIC_CREATE = "clinic"."create";
    CLINIC_LIST = "clinic"."list";
    CLINIC_READ = "clinic"."read";
    PATIENT_CREATE = "patient"."create";
    PATIENT_READ = "patient"."read";
    PATIENT_UPDATE = "patient"."update";
    PATIENT_DELETE = "patient"."delete";
    PATIENT_ERASE = "patient"."erase";
    RECORD_CREATE = "record"."create";
    RECORD_READ = "record"."read";
    DOCUMENT_CREATE = "document"."create";
    DOCUMENT_READ = "document"."read";
    DOCUMENT_DELETE = "document"."delete";
    JOB_READ = "job"."read";
    MEMORY_SEARCH = "memory"."search";
    MEMORY_ASK = "memory"."ask";
    ALERT_READ = "alert"."read";
    ALERT_UPDATE = "alert"."update";
    CDS_CALL = "cds"."call";
    CDS_CLIENT_READ = "cds-client"."read";
    CDS_CLIENT_MANAGE = "cds-client"."manage";
    TOKEN_CREATE = "token"."create";
    TOKEN_READ = "token"."read";
    TOKEN_DELETE = "token"."delete";
    POLICY_READ = "policy"."read";
    POLICY_UPDATE = "policy"."update";
    PLUGIN_READ = "plugin"."read";
    PLUGIN_INSTALL = "plugin"."install";
    PLUGIN_UPDATE = "plugin"."update";
    AUDIT_READ = "audit"."read";
    AUDIT_VERIFY = "audit"."verify";
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.resource, self.action)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::authz::{role_templates, vocabulary};

    #[test]
    fn the_shipped_policy_grants_exactly_the_permissions_routes_check() {
        let checked: BTreeSet<(String, String)> = Permission::ALL
            .iter()
            .map(|p| (p.resource.to_owned(), p.action.to_owned()))
            .collect();
        assert_eq!(
            checked.len(),
            Permission::ALL.len(),
            "a permission is listed twice"
        );
        let granted: BTreeSet<(String, String)> = role_templates()
            .expect("roles.csv parses")
            .into_iter()
            .map(|p| (p.resource, p.action))
            .collect();
        assert_eq!(
            checked, granted,
            "policies/roles.csv and Permission::ALL disagree"
        );
        // Custom roles are built from a subset: what clinic roles hold.
        let vocabulary = vocabulary();
        assert!(vocabulary.is_subset(&checked));
        for platform_only in [
            Permission::CLINIC_CREATE,
            Permission::PLUGIN_INSTALL,
            Permission::AUDIT_VERIFY,
        ] {
            let pair = (
                platform_only.resource.to_owned(),
                platform_only.action.to_owned(),
            );
            assert!(
                !vocabulary.contains(&pair),
                "{platform_only} in the vocabulary"
            );
        }
    }
}
