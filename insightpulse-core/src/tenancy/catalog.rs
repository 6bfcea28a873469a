//! The built-in permission catalog and roles, shared by every tenant.
//!
//! This is the single list of every permission the product's nine modules
//! check, each a typed constant ([`PermissionCode::DASHBOARD_DELETE`], …).
//! [`PermissionCode::parse`] accepts only these codes. The PostgreSQL seed
//! (`migrations/*_tenancy.sql`) inserts exactly these rows, and a Postgres
//! test proves the two agree, so the in-memory backend and the database can
//! never drift apart.

use super::RoleScope;
use crate::values::PermissionCode;

/// Declares the catalog once: a constant per permission, [`PERMISSIONS`]
/// with the descriptions, and [`PermissionCode::ALL`].
macro_rules! permission_catalog {
    ($( $konst:ident = $code:literal, $desc:literal; )+) => {
        impl PermissionCode {
            $(
                #[doc = concat!("`", $code, "`: ", $desc, ".")]
                pub const $konst: PermissionCode = PermissionCode($code);
            )+
            /// Every permission of the catalog, grouped by module.
            pub const ALL: &'static [PermissionCode] = &[$(PermissionCode::$konst),+];
        }

        /// `(permission, description)` of every permission, grouped by module.
        pub const PERMISSIONS: &[(PermissionCode, &str)] = &[$((PermissionCode::$konst, $desc)),+];
    };
}

permission_catalog! {
    TENANT_MANAGE = "tenant.manage", "Change tenant settings or delete the tenant";
    MEMBER_READ = "member.read", "See the tenant's members";
    MEMBER_INVITE = "member.invite", "Invite people and manage invitations";
    MEMBER_MANAGE = "member.manage", "Suspend, reactivate and remove members";
    TEAM_MANAGE = "team.manage", "Create, change and delete teams and their members";
    ROLE_MANAGE = "role.manage", "Create, change and delete tenant roles";
    ROLE_ASSIGN = "role.assign", "Grant and revoke roles";
    SSO_MANAGE = "sso.manage", "Configure SSO providers and link identities";
    API_KEY_MANAGE = "api_key.manage", "Create, list and revoke API keys";
    PROJECT_CREATE = "project.create", "Create projects";
    PROJECT_UPDATE = "project.update", "Rename and archive projects";
    PROJECT_DELETE = "project.delete", "Delete projects";
    ENVIRONMENT_MANAGE = "environment.manage", "Create and delete environments";
    INTEGRATION_READ = "integration.read", "See integrations";
    INTEGRATION_MANAGE = "integration.manage", "Configure integrations";
    WEBHOOK_READ = "webhook.read", "See webhooks and deliveries";
    WEBHOOK_MANAGE = "webhook.manage", "Configure webhooks";
    AUDIT_READ = "audit.read", "Read the audit trail";
    EVENT_READ = "event.read", "Read and follow domain events";
    DATA_POLICY_MANAGE = "data_policy.manage", "Configure retention and anonymization";
    CONSENT_MANAGE = "consent.manage", "Record and withdraw consents";
    SECRET_READ = "secret.read", "Read secret values";
    SECRET_MANAGE = "secret.manage", "Create, rotate and delete secrets";
    BILLING_READ = "billing.read", "See billing accounts, invoices and payments";
    BILLING_MANAGE = "billing.manage", "Change plans, billing details and payment methods";
    USAGE_READ = "usage.read", "See metered usage";
    DATA_SOURCE_READ = "data_source.read", "See data sources";
    DATA_SOURCE_MANAGE = "data_source.manage", "Configure data sources";
    DASHBOARD_READ = "dashboard.read", "See dashboards";
    DASHBOARD_CREATE = "dashboard.create", "Create dashboards";
    DASHBOARD_UPDATE = "dashboard.update", "Change dashboards and widgets";
    DASHBOARD_DELETE = "dashboard.delete", "Delete dashboards";
    QUERY_RUN = "query.run", "Run saved queries";
    QUERY_MANAGE = "query.manage", "Create and change saved queries";
    ALERT_READ = "alert.read", "See alerts and their events";
    ALERT_MANAGE = "alert.manage", "Configure alerts and channels";
    AI_USE = "ai.use", "Run prompts against LLMs";
    PROMPT_MANAGE = "prompt.manage", "Manage prompt templates";
    RAG_READ = "rag.read", "Search RAG documents";
    RAG_MANAGE = "rag.manage", "Ingest and delete RAG documents";
    OCR_SUBMIT = "ocr.submit", "Submit OCR jobs";
    TICKET_READ = "ticket.read", "See tickets";
    TICKET_CREATE = "ticket.create", "Open tickets and comment";
    TICKET_UPDATE = "ticket.update", "Change tickets";
    TICKET_ASSIGN = "ticket.assign", "Assign tickets";
    WORKFLOW_READ = "workflow.read", "See workflows and runs";
    WORKFLOW_MANAGE = "workflow.manage", "Define workflows";
    WORKFLOW_RUN = "workflow.run", "Start workflow runs";
    DOMAIN_READ = "domain.read", "See domains, DNS records and certificates";
    DOMAIN_MANAGE = "domain.manage", "Manage domains, DNS records and certificates";
    JOB_READ = "job.read", "See the tenant's background jobs";
}

/// A built-in role.
#[derive(Debug, Clone, Copy)]
pub struct BuiltinRole {
    /// Its name.
    pub name: &'static str,
    /// Where it may be granted.
    pub scope: RoleScope,
    /// What it is for.
    pub description: &'static str,
    /// Its permissions.
    pub permissions: &'static [PermissionCode],
}

/// The name of the role granted to a tenant's creator.
pub const ADMIN_ROLE: &str = "Admin";

/// The built-in roles.
pub const BUILTIN_ROLES: &[BuiltinRole] = &[
    BuiltinRole {
        name: ADMIN_ROLE,
        scope: RoleScope::Org,
        description: "Everything in the tenant",
        permissions: PermissionCode::ALL,
    },
    BuiltinRole {
        name: "Developer",
        scope: RoleScope::Global,
        description: "Build and operate projects",
        permissions: &[
            PermissionCode::MEMBER_READ,
            PermissionCode::API_KEY_MANAGE,
            PermissionCode::PROJECT_CREATE,
            PermissionCode::PROJECT_UPDATE,
            PermissionCode::ENVIRONMENT_MANAGE,
            PermissionCode::INTEGRATION_READ,
            PermissionCode::INTEGRATION_MANAGE,
            PermissionCode::WEBHOOK_READ,
            PermissionCode::WEBHOOK_MANAGE,
            PermissionCode::SECRET_READ,
            PermissionCode::SECRET_MANAGE,
            PermissionCode::USAGE_READ,
            PermissionCode::DATA_SOURCE_READ,
            PermissionCode::DATA_SOURCE_MANAGE,
            PermissionCode::DASHBOARD_READ,
            PermissionCode::DASHBOARD_CREATE,
            PermissionCode::DASHBOARD_UPDATE,
            PermissionCode::DASHBOARD_DELETE,
            PermissionCode::QUERY_RUN,
            PermissionCode::QUERY_MANAGE,
            PermissionCode::ALERT_READ,
            PermissionCode::ALERT_MANAGE,
            PermissionCode::AI_USE,
            PermissionCode::PROMPT_MANAGE,
            PermissionCode::RAG_READ,
            PermissionCode::RAG_MANAGE,
            PermissionCode::OCR_SUBMIT,
            PermissionCode::TICKET_READ,
            PermissionCode::TICKET_CREATE,
            PermissionCode::TICKET_UPDATE,
            PermissionCode::TICKET_ASSIGN,
            PermissionCode::WORKFLOW_READ,
            PermissionCode::WORKFLOW_MANAGE,
            PermissionCode::WORKFLOW_RUN,
            PermissionCode::DOMAIN_READ,
        ],
    },
    BuiltinRole {
        name: "Viewer",
        scope: RoleScope::Global,
        description: "Read-only access",
        permissions: &[
            PermissionCode::MEMBER_READ,
            PermissionCode::INTEGRATION_READ,
            PermissionCode::WEBHOOK_READ,
            PermissionCode::USAGE_READ,
            PermissionCode::DATA_SOURCE_READ,
            PermissionCode::DASHBOARD_READ,
            PermissionCode::ALERT_READ,
            PermissionCode::RAG_READ,
            PermissionCode::TICKET_READ,
            PermissionCode::WORKFLOW_READ,
            PermissionCode::DOMAIN_READ,
        ],
    },
    BuiltinRole {
        name: "Billing Admin",
        scope: RoleScope::Org,
        description: "Billing, plans and usage",
        permissions: &[
            PermissionCode::MEMBER_READ,
            PermissionCode::BILLING_READ,
            PermissionCode::BILLING_MANAGE,
            PermissionCode::USAGE_READ,
        ],
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_codes_are_well_formed_unique_and_parse_back() {
        let mut seen = std::collections::HashSet::new();
        let segment = |s: &str| {
            s.as_bytes()[0].is_ascii_lowercase()
                && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        };
        for (code, description) in PERMISSIONS {
            let parts: Vec<&str> = code.as_str().split('.').collect();
            assert!(
                parts.len() == 2 && parts.iter().all(|p| segment(p)),
                "{code}"
            );
            assert!(seen.insert(*code), "duplicate permission {code}");
            assert_eq!(PermissionCode::parse(code.as_str()).unwrap(), *code);
            assert_eq!(code.description(), *description);
        }
        assert_eq!(PERMISSIONS.len(), 51);
        assert_eq!(PermissionCode::ALL.len(), PERMISSIONS.len());
    }

    #[test]
    fn builtin_roles_name_known_permissions_only() {
        for role in BUILTIN_ROLES {
            for code in role.permissions {
                assert!(
                    PermissionCode::ALL.contains(code),
                    "{} names {code}",
                    role.name
                );
            }
        }
        assert_eq!(BUILTIN_ROLES[0].name, ADMIN_ROLE);
        assert_eq!(BUILTIN_ROLES[0].permissions, PermissionCode::ALL);
    }
}
