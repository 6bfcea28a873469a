//! The pure permission evaluator.
//!
//! Rule (the same in SQL's `insightpulse_auth.user_has_permission(code, tenant, project)`):
//! a user holds a permission in a tenant when their membership there is
//! active and they are an owner, or one of their grants in that tenant is
//! tenant-wide or on the asked project and its role carries the permission.
//! An API key holds exactly its listed permissions, and only within its
//! project when it is project- or environment-scoped.

use crate::context::ApiKeyPrincipal;
use crate::ids::ProjectId;
use crate::tenancy::MembershipStatus;
use crate::values::PermissionCode;

/// One grant as the evaluator sees it.
#[derive(Debug, Clone)]
pub struct GrantFacts {
    /// `None` for a tenant-wide grant.
    pub project: Option<ProjectId>,
    /// The permissions of the granted role.
    pub permissions: Vec<PermissionCode>,
}

/// Everything the evaluator needs about one user in one tenant.
#[derive(Debug, Clone, Default)]
pub struct UserFacts {
    /// The membership, if any: `(is_owner, status)`.
    pub membership: Option<(bool, MembershipStatus)>,
    /// The user's grants in the tenant.
    pub grants: Vec<GrantFacts>,
}

impl UserFacts {
    /// Whether the user holds `code` tenant-wide (`project = None`) or on
    /// `project`.
    ///
    /// ```
    /// use insightpulse_core::tenancy::{GrantFacts, MembershipStatus, UserFacts};
    /// use insightpulse_core::{PermissionCode, ProjectId};
    /// let read: PermissionCode = "dashboard.read".parse().unwrap();
    /// let p = ProjectId::new();
    /// let facts = UserFacts {
    ///     membership: Some((false, MembershipStatus::Active)),
    ///     grants: vec![GrantFacts { project: Some(p), permissions: vec![read.clone()] }],
    /// };
    /// assert!(facts.allows(&read, Some(p)));
    /// assert!(!facts.allows(&read, None));
    /// ```
    pub fn allows(&self, code: &PermissionCode, project: Option<ProjectId>) -> bool {
        match self.membership {
            Some((_, MembershipStatus::Suspended)) | None => false,
            Some((true, MembershipStatus::Active)) => true,
            Some((false, MembershipStatus::Active)) => self.grants.iter().any(|g| {
                (g.project.is_none() || g.project == project) && g.permissions.contains(code)
            }),
        }
    }
}

/// Whether a verified API key holds `code` (tenant-wide or on `project`).
pub fn api_key_allows(
    key: &ApiKeyPrincipal,
    code: &PermissionCode,
    project: Option<ProjectId>,
) -> bool {
    (key.project_id.is_none() || key.project_id == project) && key.permissions.contains(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ApiKeyId, TenantId};

    fn code(s: &str) -> PermissionCode {
        s.parse().unwrap()
    }

    #[test]
    fn owners_hold_everything_unless_suspended() {
        let mut f = UserFacts {
            membership: Some((true, MembershipStatus::Active)),
            grants: vec![],
        };
        assert!(f.allows(&PermissionCode::BILLING_MANAGE, None));
        f.membership = Some((true, MembershipStatus::Suspended));
        assert!(!f.allows(&PermissionCode::BILLING_MANAGE, None));
        f.membership = None;
        assert!(!f.allows(&PermissionCode::BILLING_MANAGE, None));
    }

    #[test]
    fn tenant_wide_grants_reach_every_project_project_grants_only_theirs() {
        let (p, q) = (ProjectId::new(), ProjectId::new());
        let f = UserFacts {
            membership: Some((false, MembershipStatus::Active)),
            grants: vec![
                GrantFacts {
                    project: None,
                    permissions: vec![code("dashboard.read")],
                },
                GrantFacts {
                    project: Some(p),
                    permissions: vec![code("dashboard.delete")],
                },
            ],
        };
        assert!(f.allows(&PermissionCode::DASHBOARD_READ, None));
        assert!(f.allows(&PermissionCode::DASHBOARD_READ, Some(q)));
        assert!(f.allows(&PermissionCode::DASHBOARD_DELETE, Some(p)));
        assert!(!f.allows(&PermissionCode::DASHBOARD_DELETE, Some(q)));
        assert!(!f.allows(&PermissionCode::DASHBOARD_DELETE, None));
    }

    #[test]
    fn api_keys_hold_exactly_their_permissions_within_their_project() {
        let p = ProjectId::new();
        let mut key = ApiKeyPrincipal {
            key_id: ApiKeyId::new(),
            tenant_id: TenantId::new(),
            project_id: None,
            environment_id: None,
            permissions: vec![code("ticket.read")],
        };
        assert!(api_key_allows(&key, &code("ticket.read"), None));
        assert!(!api_key_allows(&key, &code("ticket.update"), None));
        key.project_id = Some(p);
        assert!(api_key_allows(&key, &code("ticket.read"), Some(p)));
        assert!(!api_key_allows(&key, &code("ticket.read"), None));
        assert!(!api_key_allows(
            &key,
            &code("ticket.read"),
            Some(ProjectId::new())
        ));
    }
}
