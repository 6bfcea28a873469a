//! Conformance cases of the projects module: projects and environments.
//!
//! Rule guarded here: slugs are unique per tenant, one environment per kind
//! and project, archived projects refuse renames and new environments,
//! project-level permissions are checked on the target project (which is
//! looked up first), other tenants' projects are `NotFound`, deletes cascade
//! like the database's foreign keys, and bad input writes nothing. Every
//! change that changes something is audited once; no-ops and refused calls
//! write no entry.

mod audited;
mod environments;
// Sub-concepts are named by their nouns in every crate (DESIGN.md).
#[allow(clippy::module_inception)]
mod projects;

pub use audited::*;
pub use environments::*;
pub use projects::*;

use crate::fixtures::*;
use insightpulse_core::projects::{NewProject, Project};
use insightpulse_core::{Context, Repos, Result};

pub(super) async fn create(
    r: &Repos,
    ctx: &Context,
    s: &str,
    description: Option<String>,
) -> Result<Project> {
    r.projects
        .create_project(
            ctx,
            NewProject {
                slug: slug(s),
                name: name(s),
                description,
            },
        )
        .await
}

pub(super) fn slugs(projects: Vec<Project>) -> Vec<String> {
    projects.into_iter().map(|p| p.slug.to_string()).collect()
}

/// This module's conformance cases, for [`conformance_tests!`](crate::conformance_tests):
/// a new case is listed here, next to its module.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases_projects {
    ($backend:tt) => {
        $crate::__conformance_module!($backend projects [
            project_lifecycle,
            project_slugs_are_unique_per_tenant,
            archived_projects_refuse_renames_and_environments,
            project_permissions_are_checked,
            projects_of_other_tenants_are_invisible,
            environments_are_one_per_kind_in_kind_order,
            deleting_a_project_cascades,
            deleting_an_environment_cascades_its_keys,
            bad_input_is_rejected_before_anything_is_written,
            project_changes_are_audited,
        ]);
    };
}
