//! Which contract a component implements, read from the names it exports
//! (`medmemory:plugin/document-parser@0.1.0`), and whether this host can run it.

use super::{WIT_VERSION, WIT_VERSIONS};

/// The kind of a plugin, from the interface it exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Exports `document-parser`.
    Parser,
    /// Exports `clinical-rules`.
    ClinicalRule,
    /// Exports `evidence-retriever`.
    Retriever,
}

impl Kind {
    /// The name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Parser => "parser",
            Kind::ClinicalRule => "clinical-rule",
            Kind::Retriever => "retriever",
        }
    }

    /// The inverse of [`Kind::as_str`].
    pub fn parse(s: &str) -> Option<Kind> {
        [Kind::Parser, Kind::ClinicalRule, Kind::Retriever]
            .into_iter()
            .find(|k| k.as_str() == s)
    }

    fn from_interface(name: &str) -> Option<Kind> {
        match name {
            "document-parser" => Some(Kind::Parser),
            "clinical-rules" => Some(Kind::ClinicalRule),
            "evidence-retriever" => Some(Kind::Retriever),
            _ => None,
        }
    }
}

/// What a component's exports say about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contract {
    /// The kind it implements.
    pub kind: Kind,
    /// The contract version it was built against.
    pub version: String,
}

impl Contract {
    /// Whether it was built against the frozen 0.1 contract.
    pub fn is_v0_1(&self) -> bool {
        compatible(&self.version, "0.1.0")
    }
}

/// Why a component's contract is not one this host runs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContractError {
    /// It exports no plugin interface at all.
    #[error(
        "the component exports no medmemory:plugin interface (document-parser, clinical-rules or evidence-retriever)"
    )]
    NoPluginExport,
    /// It exports more than one plugin interface.
    #[error(
        "the component exports more than one medmemory:plugin interface; a plugin implements one world"
    )]
    SeveralKinds,
    /// It was built against an incompatible version.
    #[error(
        "the component was built against medmemory:plugin@{found}; this host implements @{host} and accepts {accepts}"
    )]
    Incompatible {
        /// The version the component names.
        found: String,
        /// The host's version.
        host: &'static str,
        /// What the host accepts, e.g. `0.1.x`.
        accepts: String,
    },
}

/// Reads the contract from export names and checks it against this host.
pub fn check<'a>(
    export_names: impl IntoIterator<Item = &'a str>,
) -> Result<Contract, ContractError> {
    let mut found: Option<Contract> = None;
    for name in export_names {
        let Some(rest) = name.strip_prefix("medmemory:plugin/") else {
            continue;
        };
        let (interface, version) = rest.split_once('@').unwrap_or((rest, ""));
        let Some(kind) = Kind::from_interface(interface) else {
            continue;
        };
        if found.is_some() {
            return Err(ContractError::SeveralKinds);
        }
        found = Some(Contract {
            kind,
            version: version.to_owned(),
        });
    }
    let contract = found.ok_or(ContractError::NoPluginExport)?;
    if !WIT_VERSIONS
        .iter()
        .any(|host| compatible(&contract.version, host))
    {
        return Err(ContractError::Incompatible {
            found: contract.version,
            host: WIT_VERSION,
            accepts: WIT_VERSIONS
                .iter()
                .map(|v| accepted_range(v))
                .collect::<Vec<_>>()
                .join(" and "),
        });
    }
    Ok(contract)
}

fn parts(version: &str) -> Option<(u64, u64, u64)> {
    let core = version.split(['-', '+']).next()?;
    let mut it = core.split('.').map(|p| p.parse::<u64>().ok());
    Some((it.next()??, it.next()??, it.next()??))
}

/// Semver compatibility as cargo reads it: same major, and while the major is
/// 0, the same minor.
pub fn compatible(plugin: &str, host: &str) -> bool {
    match (parts(plugin), parts(host)) {
        (Some((0, pm, _)), Some((0, hm, _))) => pm == hm,
        (Some((pmaj, _, _)), Some((hmaj, _, _))) => pmaj == hmaj && pmaj != 0,
        _ => false,
    }
}

fn accepted_range(host: &str) -> String {
    match parts(host) {
        Some((0, minor, _)) => format!("0.{minor}.x"),
        Some((major, _, _)) => format!("{major}.x"),
        None => host.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_follow_cargo_semver() {
        assert!(compatible("0.1.0", "0.1.0"));
        assert!(compatible("0.1.9", "0.1.0"));
        assert!(compatible("0.1.0", "0.1.3"));
        assert!(!compatible("0.2.0", "0.1.0"));
        assert!(!compatible("1.0.0", "0.1.0"));
        assert!(compatible("1.4.0", "1.0.0"));
        assert!(!compatible("2.0.0", "1.0.0"));
        assert!(!compatible("", "0.1.0"));
        assert!(!compatible("banana", "0.1.0"));
    }

    #[test]
    fn the_kind_and_version_come_from_the_exports() {
        let got = check([
            "wasi:cli/run@0.2.0",
            "medmemory:plugin/document-parser@0.1.4",
        ])
        .unwrap();
        assert_eq!(got.kind, Kind::Parser);
        assert_eq!(got.version, "0.1.4");
        assert_eq!(
            check(["medmemory:plugin/clinical-rules@0.1.0"])
                .unwrap()
                .kind,
            Kind::ClinicalRule
        );
        assert_eq!(
            check(["something:else/x@1.0.0"]),
            Err(ContractError::NoPluginExport)
        );
        assert_eq!(
            check([
                "medmemory:plugin/document-parser@0.1.0",
                "medmemory:plugin/evidence-retriever@0.1.0"
            ]),
            Err(ContractError::SeveralKinds)
        );
        let err = check(["medmemory:plugin/document-parser@0.3.0"]).unwrap_err();
        assert!(err.to_string().contains("accepts 0.2.x and 0.1.x"), "{err}");
        let legacy = check(["medmemory:plugin/document-parser@0.1.0"]).unwrap();
        assert!(legacy.is_v0_1());
        assert!(
            !check(["medmemory:plugin/document-parser@0.2.1"])
                .unwrap()
                .is_v0_1()
        );
    }
}
