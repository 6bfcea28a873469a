//! The final comparison: every actor of a sequence reads everything it can,
//! on both backends. The view is made of ordinary read steps derived from
//! the sequence alone, so a shrunk sequence gets the view of its own
//! actors and rows.
//!
//! Actors: in each tenant the sequence names, every user that acted there,
//! every API key that acted, and the system; every user outside any tenant;
//! the system in the platform's trail (erasures are recorded there).

use super::audit::{AuditOp, Filter};
use super::credentials::CredentialOp;
use super::jobs::JobOp;
use super::members::MemberOp;
use super::ops::{Kind, Op, Ref, Step, Who, PLATFORM};
use super::outbox::{At, OutboxOp};
use super::privacy::PrivacyOp;
use super::projects::ProjectOp;
use super::rbac::RbacOp;
use super::tenancy::TenancyOp;
use insightpulse_core::PermissionCode;
use std::collections::BTreeSet;

/// Permissions every actor's view checks, tenant-wide.
const CHECKED: &[PermissionCode] = &[
    PermissionCode::TENANT_MANAGE,
    PermissionCode::MEMBER_READ,
    PermissionCode::MEMBER_MANAGE,
    PermissionCode::ROLE_ASSIGN,
    PermissionCode::API_KEY_MANAGE,
    PermissionCode::PROJECT_CREATE,
    PermissionCode::PROJECT_UPDATE,
    PermissionCode::ENVIRONMENT_MANAGE,
    PermissionCode::AUDIT_READ,
    PermissionCode::DASHBOARD_DELETE,
    PermissionCode::BILLING_MANAGE,
];

/// Every ref the sequence names, by kind.
fn names(steps: &[Step]) -> BTreeSet<Ref> {
    let mut out = BTreeSet::new();
    for s in steps {
        match &s.by {
            Who::User(u, t) => {
                out.insert(*u);
                out.extend(*t);
            }
            Who::Key(k) => {
                out.insert(*k);
            }
            Who::System(t) => out.extend(*t),
            Who::Nobody => {}
        }
        collect_refs(&format!("{:?}", s.op), &mut out);
    }
    out.retain(|r| r.idx != super::ops::GHOST && r.idx != PLATFORM);
    out
}

/// The refs in an operation's `Debug` text (`Ref { kind: Project, idx: 3 }`).
fn collect_refs(text: &str, out: &mut BTreeSet<Ref>) {
    const KINDS: &[(&str, Kind)] = &[
        ("User", Kind::User),
        ("Tenant", Kind::Tenant),
        ("Project", Kind::Project),
        ("Environment", Kind::Environment),
        ("Team", Kind::Team),
        ("Role", Kind::Role),
        ("Grant", Kind::Grant),
        ("Invitation", Kind::Invitation),
        ("Provider", Kind::Provider),
        ("Identity", Kind::Identity),
        ("Key", Kind::Key),
        ("Entry", Kind::Entry),
        ("Consent", Kind::Consent),
        ("Event", Kind::Event),
        ("Job", Kind::Job),
    ];
    let mut rest = text;
    while let Some(pos) = rest.find("Ref { kind: ") {
        rest = &rest[pos + "Ref { kind: ".len()..];
        let Some(comma) = rest.find(", idx: ") else {
            break;
        };
        let kind = KINDS
            .iter()
            .find(|(k, _)| *k == &rest[..comma])
            .map(|(_, k)| *k);
        rest = &rest[comma + ", idx: ".len()..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if let (Some(kind), Ok(idx)) = (kind, digits.parse::<u32>()) {
            out.insert(Ref::new(kind, idx));
        }
    }
}

/// The events after each consumer's cursor, and the cursors.
fn outbox_reads() -> Vec<Op> {
    (0..2)
        .flat_map(|consumer| {
            [
                Op::Outbox(OutboxOp::ReadEvents {
                    consumer,
                    after: At::Committed,
                    limit: 3,
                }),
                Op::Outbox(OutboxOp::ConsumerCursor { consumer }),
            ]
        })
        .collect()
}

/// What every actor lists.
fn lists(by: &Who, tenant: Option<Ref>, projects: &[Ref], users: &[Ref]) -> Vec<Step> {
    let read = |op: Op| Step {
        by: by.clone(),
        idem: None,
        op,
    };
    let mut out: Vec<Step> = tenant
        .map(|t| read(Op::Tenancy(TenancyOp::GetTenant { tenant: t })))
        .into_iter()
        .collect();
    for op in [
        Op::Members(MemberOp::ListMembers),
        Op::Members(MemberOp::ListInvitations),
        Op::Members(MemberOp::ListTeams),
        Op::Rbac(RbacOp::ListRoles),
        Op::Rbac(RbacOp::ListGrants { user: None }),
        Op::Credentials(CredentialOp::ListProviders),
        Op::Credentials(CredentialOp::ListApiKeys),
        Op::Projects(ProjectOp::ListProjects {
            include_archived: true,
        }),
        Op::Audit(AuditOp::Query {
            days: 3,
            limit: 3,
            filter: Filter::Nothing,
            pages: 3,
        }),
        Op::Audit(AuditOp::VerifyChain),
        Op::Privacy(PrivacyOp::ListDataPolicies),
        Op::Jobs(JobOp::ListJobs {
            state: None,
            kind: None,
            limit: 1,
            pages: 3,
        }),
    ]
    .into_iter()
    .chain(outbox_reads())
    {
        out.push(read(op));
    }
    for p in CHECKED {
        out.push(read(Op::Rbac(RbacOp::HasPermission {
            permission: *p,
            project: None,
        })));
    }
    // Who sees whom.
    for u in users {
        out.push(read(Op::Tenancy(TenancyOp::GetUser { user: *u })));
    }
    for p in projects {
        out.push(read(Op::Rbac(RbacOp::HasPermission {
            permission: PermissionCode::PROJECT_UPDATE,
            project: Some(*p),
        })));
        out.push(read(Op::Projects(ProjectOp::ListEnvironments {
            project: *p,
        })));
    }
    out
}

/// The read steps of the final view of `steps`.
pub fn view_steps(steps: &[Step]) -> Vec<Step> {
    let all = names(steps);
    let of = |kind: Kind| -> Vec<Ref> { all.iter().filter(|r| r.kind == kind).copied().collect() };
    let (tenants, users, teams, projects, jobs) = (
        of(Kind::Tenant),
        of(Kind::User),
        of(Kind::Team),
        of(Kind::Project),
        of(Kind::Job),
    );
    // (tenant, user) of every user that acted in a tenant or made one.
    let mut members: BTreeSet<(Ref, Ref)> = BTreeSet::new();
    let mut keys: BTreeSet<Ref> = BTreeSet::new();
    for s in steps {
        match (&s.by, &s.op) {
            (Who::User(u, Some(t)), _) => {
                members.insert((*t, *u));
            }
            (Who::User(u, None), Op::Tenancy(TenancyOp::CreateTenant { tenant, .. })) => {
                members.insert((*tenant, *u));
            }
            (Who::Key(k), _) => {
                keys.insert(*k);
            }
            (_, Op::Tenancy(TenancyOp::SignUp { user, tenant, .. })) => {
                members.insert((*tenant, *user));
            }
            _ => {}
        }
    }
    members.retain(|(t, u)| t.idx != super::ops::GHOST && u.idx != super::ops::GHOST);
    let mut out = Vec::new();
    for t in &tenants {
        for (_, u) in members.iter().filter(|(tt, _)| tt == t) {
            out.extend(lists(&Who::User(*u, Some(*t)), Some(*t), &projects, &users));
        }
        let system = Who::System(Some(*t));
        out.extend(lists(&system, Some(*t), &projects, &users));
        // Rows one by one, as the tenant's system sees them.
        let read = |op: Op| Step {
            by: system.clone(),
            idem: None,
            op,
        };
        for team in &teams {
            out.push(read(Op::Members(MemberOp::ListTeamMembers { team: *team })));
        }
        for u in &users {
            out.push(read(Op::Members(MemberOp::GetMember { user: *u })));
            out.push(read(Op::Credentials(CredentialOp::ListIdentities {
                user: *u,
            })));
            out.push(read(Op::Privacy(PrivacyOp::ConsentHistory { user: *u })));
        }
        for job in &jobs {
            out.push(read(Op::Jobs(JobOp::GetJob { job: *job })));
        }
    }
    for k in &keys {
        out.extend(lists(&Who::Key(*k), None, &projects, &users));
    }
    for u in &users {
        let read = |by: Who, op: Op| Step { by, idem: None, op };
        out.push(read(
            Who::User(*u, None),
            Op::Tenancy(TenancyOp::ListMyTenants),
        ));
        out.push(read(
            Who::System(None),
            Op::Tenancy(TenancyOp::GetUser { user: *u }),
        ));
    }
    let platform = Who::System(Some(Ref::new(Kind::Tenant, PLATFORM)));
    let read = |op: Op| Step {
        by: platform.clone(),
        idem: None,
        op,
    };
    out.push(read(Op::Audit(AuditOp::Query {
        days: 3,
        limit: 3,
        filter: Filter::Nothing,
        pages: 3,
    })));
    out.push(read(Op::Audit(AuditOp::VerifyChain)));
    // Every tenant's events, as the system without a tenant reads them.
    let all = |op: Op| Step {
        by: Who::System(None),
        idem: None,
        op,
    };
    out.extend(outbox_reads().into_iter().map(all));
    out
}
