//! The built-in permission catalog and roles, shared by every tenant.
//!
//! This is the single list of every permission the product's nine modules
//! check. The PostgreSQL seed (`migrations/*_tenancy.sql`) inserts exactly
//! these rows, and a Postgres test proves the two agree, so the in-memory
//! backend and the database can never drift apart.

use super::model::RoleScope;

/// `(code, description)` of every permission, grouped by module.
pub const PERMISSIONS: &[(&str, &str)] = &[
    // 1. tenancy & identity
    (
        "tenant.manage",
        "Change tenant settings or delete the tenant",
    ),
    ("member.read", "See the tenant's members"),
    ("member.invite", "Invite people and manage invitations"),
    ("member.manage", "Suspend, reactivate and remove members"),
    (
        "team.manage",
        "Create, change and delete teams and their members",
    ),
    ("role.manage", "Create, change and delete tenant roles"),
    ("role.assign", "Grant and revoke roles"),
    ("sso.manage", "Configure SSO providers and link identities"),
    ("api_key.manage", "Create, list and revoke API keys"),
    // 2. projects & environments
    ("project.create", "Create projects"),
    ("project.update", "Rename and archive projects"),
    ("project.delete", "Delete projects"),
    ("environment.manage", "Create and delete environments"),
    // 3. integrations & webhooks
    ("integration.read", "See integrations"),
    ("integration.manage", "Configure integrations"),
    ("webhook.read", "See webhooks and deliveries"),
    ("webhook.manage", "Configure webhooks"),
    // 4. audit, policies, secrets
    ("audit.read", "Read the audit trail"),
    (
        "data_policy.manage",
        "Configure retention and anonymization",
    ),
    ("consent.manage", "Record and withdraw consents"),
    ("secret.read", "Read secret values"),
    ("secret.manage", "Create, rotate and delete secrets"),
    // 5. billing & usage
    (
        "billing.read",
        "See billing accounts, invoices and payments",
    ),
    (
        "billing.manage",
        "Change plans, billing details and payment methods",
    ),
    ("usage.read", "See metered usage"),
    // 6. data sources, BI, alerts
    ("data_source.read", "See data sources"),
    ("data_source.manage", "Configure data sources"),
    ("dashboard.read", "See dashboards"),
    ("dashboard.create", "Create dashboards"),
    ("dashboard.update", "Change dashboards and widgets"),
    ("dashboard.delete", "Delete dashboards"),
    ("query.run", "Run saved queries"),
    ("query.manage", "Create and change saved queries"),
    ("alert.read", "See alerts and their events"),
    ("alert.manage", "Configure alerts and channels"),
    // 7. AI
    ("ai.use", "Run prompts against LLMs"),
    ("prompt.manage", "Manage prompt templates"),
    ("rag.read", "Search RAG documents"),
    ("rag.manage", "Ingest and delete RAG documents"),
    ("ocr.submit", "Submit OCR jobs"),
    // 8. support & workflows
    ("ticket.read", "See tickets"),
    ("ticket.create", "Open tickets and comment"),
    ("ticket.update", "Change tickets"),
    ("ticket.assign", "Assign tickets"),
    ("workflow.read", "See workflows and runs"),
    ("workflow.manage", "Define workflows"),
    ("workflow.run", "Start workflow runs"),
    // 9. domains
    ("domain.read", "See domains, DNS records and certificates"),
    (
        "domain.manage",
        "Manage domains, DNS records and certificates",
    ),
];

/// A built-in role.
#[derive(Debug, Clone, Copy)]
pub struct BuiltinRole {
    /// Its name.
    pub name: &'static str,
    /// Where it may be granted.
    pub scope: RoleScope,
    /// What it is for.
    pub description: &'static str,
    /// Its permissions (`*` = every permission of the catalog).
    pub permissions: &'static [&'static str],
}

/// The name of the role granted to a tenant's creator.
pub const ADMIN_ROLE: &str = "Admin";

/// The built-in roles.
pub const BUILTIN_ROLES: &[BuiltinRole] = &[
    BuiltinRole {
        name: ADMIN_ROLE,
        scope: RoleScope::Org,
        description: "Everything in the tenant",
        permissions: &["*"],
    },
    BuiltinRole {
        name: "Developer",
        scope: RoleScope::Global,
        description: "Build and operate projects",
        permissions: &[
            "member.read",
            "api_key.manage",
            "project.create",
            "project.update",
            "environment.manage",
            "integration.read",
            "integration.manage",
            "webhook.read",
            "webhook.manage",
            "secret.read",
            "secret.manage",
            "usage.read",
            "data_source.read",
            "data_source.manage",
            "dashboard.read",
            "dashboard.create",
            "dashboard.update",
            "dashboard.delete",
            "query.run",
            "query.manage",
            "alert.read",
            "alert.manage",
            "ai.use",
            "prompt.manage",
            "rag.read",
            "rag.manage",
            "ocr.submit",
            "ticket.read",
            "ticket.create",
            "ticket.update",
            "ticket.assign",
            "workflow.read",
            "workflow.manage",
            "workflow.run",
            "domain.read",
        ],
    },
    BuiltinRole {
        name: "Viewer",
        scope: RoleScope::Global,
        description: "Read-only access",
        permissions: &[
            "member.read",
            "integration.read",
            "webhook.read",
            "usage.read",
            "data_source.read",
            "dashboard.read",
            "alert.read",
            "rag.read",
            "ticket.read",
            "workflow.read",
            "domain.read",
        ],
    },
    BuiltinRole {
        name: "Billing Admin",
        scope: RoleScope::Org,
        description: "Billing, plans and usage",
        permissions: &[
            "member.read",
            "billing.read",
            "billing.manage",
            "usage.read",
        ],
    },
];

impl BuiltinRole {
    /// The role's permission codes with `*` expanded.
    pub fn permission_codes(&self) -> Vec<&'static str> {
        if self.permissions == ["*"] {
            PERMISSIONS.iter().map(|(c, _)| *c).collect()
        } else {
            self.permissions.to_vec()
        }
    }
}

/// Whether `code` is in the catalog.
pub fn is_known_permission(code: &str) -> bool {
    PERMISSIONS.iter().any(|(c, _)| *c == code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::PermissionCode;

    #[test]
    fn catalog_codes_are_valid_unique_and_cover_roles() {
        let mut seen = std::collections::HashSet::new();
        for (code, _) in PERMISSIONS {
            PermissionCode::parse(code).unwrap();
            assert!(seen.insert(*code), "duplicate permission {code}");
        }
        assert!(PERMISSIONS.len() >= 30);
        for role in BUILTIN_ROLES {
            for code in role.permission_codes() {
                assert!(
                    is_known_permission(code),
                    "{} names unknown {code}",
                    role.name
                );
            }
        }
    }
}
