//! Who a casbin rule or an audit entry is about: a signed-in user, a
//! service token or a registered CDS client, written `user:<uuid>`,
//! `token:<uuid>` or `cds-client:<uuid>` in the policy tables and the audit
//! trail. Parsed once; code past that holds a
//! [`Subject`] and asks it what it is.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

/// A principal's casbin subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    /// A person known through the OIDC provider.
    User(Uuid),
    /// A service API token.
    Token(Uuid),
    /// An EHR registered as a CDS Hooks client of a clinic.
    CdsClient(Uuid),
}

impl Subject {
    /// The user's id, if this is a user.
    pub fn user(self) -> Option<Uuid> {
        match self {
            Subject::User(id) => Some(id),
            Subject::Token(_) | Subject::CdsClient(_) => None,
        }
    }

    /// Whether this is a service token.
    pub fn is_token(self) -> bool {
        matches!(self, Subject::Token(_))
    }

    /// Whether `text` is the canonical form of a subject (`user:<uuid>`,
    /// `token:<uuid>` or `cds-client:<uuid>`, the UUID lower-case and
    /// hyphenated).
    pub fn is_valid(text: &str) -> bool {
        text.parse::<Subject>().is_ok()
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::User(id) => write!(f, "user:{id}"),
            Subject::Token(id) => write!(f, "token:{id}"),
            Subject::CdsClient(id) => write!(f, "cds-client:{id}"),
        }
    }
}

/// The text is not a canonical subject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a subject is user:<id>, token:<id> or cds-client:<id>")]
pub struct NotASubject;

impl FromStr for Subject {
    type Err = NotASubject;

    fn from_str(text: &str) -> Result<Subject, NotASubject> {
        let (kind, id) = text.split_once(':').ok_or(NotASubject)?;
        let parsed = Uuid::try_parse(id).map_err(|_| NotASubject)?;
        // One spelling per subject: the policy tables compare text.
        if parsed.to_string() != id {
            return Err(NotASubject);
        }
        match kind {
            "user" => Ok(Subject::User(parsed)),
            "token" => Ok(Subject::Token(parsed)),
            "cds-client" => Ok(Subject::CdsClient(parsed)),
            _ => Err(NotASubject),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_have_one_spelling() {
        let id = Uuid::now_v7();
        assert_eq!(
            format!("user:{id}").parse::<Subject>(),
            Ok(Subject::User(id))
        );
        assert_eq!(Subject::Token(id).to_string(), format!("token:{id}"));
        assert!(Subject::is_valid(&format!("token:{id}")));
        assert!(!Subject::is_valid("user:*"));
        assert!(!Subject::is_valid(&format!("group:{id}")));
        assert!(!Subject::is_valid(&format!("user:{}", id.simple())));
        assert!(!Subject::is_valid(&format!(
            "user:{}",
            id.to_string().to_uppercase()
        )));
    }
}
