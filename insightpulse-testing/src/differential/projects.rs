//! Operations of `ProjectRepo`.

use super::env::{Env, Outcome};
use super::generate::Gen;
use super::model::{acting_tenant, made, rows, set_alive, EnvM, Model, Row};
use super::ops::{display_name, project_slug, Kind, ModuleOp, Ref, Who};
use async_trait::async_trait;
use insightpulse_core::projects::{EnvironmentKind, NewProject};
use insightpulse_core::{Context, Name, Repos, Slug};
use std::fmt;

/// One call of `ProjectRepo`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum ProjectOp {
    CreateProject {
        project: Ref,
        slug: u8,
        name: u8,
        description: u8,
    },
    GetProject {
        project: Ref,
    },
    ListProjects {
        include_archived: bool,
    },
    RenameProject {
        project: Ref,
        name: u8,
    },
    ArchiveProject {
        project: Ref,
    },
    UnarchiveProject {
        project: Ref,
    },
    DeleteProject {
        project: Ref,
    },
    CreateEnvironment {
        environment: Ref,
        project: Ref,
        kind: u8,
    },
    GetEnvironment {
        environment: Ref,
    },
    ListEnvironments {
        project: Ref,
    },
    DeleteEnvironment {
        environment: Ref,
    },
}

const KINDS: [EnvironmentKind; 3] = [
    EnvironmentKind::Development,
    EnvironmentKind::Staging,
    EnvironmentKind::Production,
];

/// Descriptions; 3 is one character over the limit, 4 is at the limit in
/// characters (twice as many bytes), 5 holds a NUL character.
fn description(i: u8) -> Option<String> {
    match i {
        0 => None,
        1 => Some("The web app".to_owned()),
        2 => Some(String::new()),
        3 => Some("d".repeat(2_001)),
        4 => Some("é".repeat(2_000)),
        _ => Some("nul\u{0}byte".to_owned()),
    }
}

impl fmt::Display for ProjectOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ProjectOp::*;
        match self {
            CreateProject {
                project,
                slug,
                name,
                description: d,
            } => write!(
                f,
                "create_project {project} slug={} name={:?} description={}",
                project_slug(*slug),
                display_name(*name),
                match description(*d) {
                    Some(s) if s.len() > 40 => format!("<{} chars>", s.len()),
                    other => format!("{other:?}"),
                }
            ),
            GetProject { project } => write!(f, "get_project {project}"),
            ListProjects { include_archived } => {
                write!(f, "list_projects include_archived={include_archived}")
            }
            RenameProject { project, name } => {
                write!(f, "rename_project {project} {:?}", display_name(*name))
            }
            ArchiveProject { project } => write!(f, "archive_project {project}"),
            UnarchiveProject { project } => write!(f, "unarchive_project {project}"),
            DeleteProject { project } => write!(f, "delete_project {project}"),
            CreateEnvironment {
                environment,
                project,
                kind,
            } => write!(
                f,
                "create_environment {environment} project={project} kind={}",
                KINDS[*kind as usize % 3].as_str()
            ),
            GetEnvironment { environment } => write!(f, "get_environment {environment}"),
            ListEnvironments { project } => write!(f, "list_environments {project}"),
            DeleteEnvironment { environment } => write!(f, "delete_environment {environment}"),
        }
    }
}

const METHODS: &[&str] = &[
    "create_project",
    "get_project",
    "list_projects",
    "rename_project",
    "archive_project",
    "unarchive_project",
    "delete_project",
    "create_environment",
    "get_environment",
    "list_environments",
    "delete_environment",
];

const WEIGHTS: &[u32] = &[8, 3, 3, 3, 3, 2, 2, 9, 3, 2, 2];

fn project(g: &mut Gen, t: Ref) -> Ref {
    match g.key_project() {
        Some(p) if g.chance(0.85) => Ref::new(Kind::Project, p),
        _ => g.row_in(Kind::Project, &rows(&g.model.projects), t),
    }
}

fn environment(g: &mut Gen, t: Ref) -> Ref {
    let envs: Vec<(u32, bool)> = g
        .model
        .environments
        .iter()
        .map(|e| (e.tenant, e.alive))
        .collect();
    g.row_in(Kind::Environment, &envs, t)
}

#[async_trait]
impl ModuleOp for ProjectOp {
    fn method(&self) -> &'static str {
        use ProjectOp::*;
        let i = match self {
            CreateProject { .. } => 0,
            GetProject { .. } => 1,
            ListProjects { .. } => 2,
            RenameProject { .. } => 3,
            ArchiveProject { .. } => 4,
            UnarchiveProject { .. } => 5,
            DeleteProject { .. } => 6,
            CreateEnvironment { .. } => 7,
            GetEnvironment { .. } => 8,
            ListEnvironments { .. } => 9,
            DeleteEnvironment { .. } => 10,
        };
        METHODS[i]
    }

    fn is_read(&self) -> bool {
        use ProjectOp::*;
        matches!(
            self,
            GetProject { .. }
                | ListProjects { .. }
                | GetEnvironment { .. }
                | ListEnvironments { .. }
        )
    }

    fn methods() -> &'static [&'static str] {
        METHODS
    }

    fn generate(g: &mut Gen) -> Option<(Who, Self)> {
        use ProjectOp::*;
        let t = g.tenant();
        let method = g.next_method(METHODS, WEIGHTS, |g, m| {
            let envs: Vec<(u32, bool)> = g
                .model
                .environments
                .iter()
                .map(|e| (e.tenant, e.alive))
                .collect();
            match m {
                "get_environment" | "delete_environment" if g.live_in(&envs, t) == 0 => {
                    Some("create_environment")
                }
                "create_project" => None,
                _ if g.live_in(&rows(&g.model.projects), t) == 0 => Some("create_project"),
                _ => None,
            }
        })?;
        let op = match method {
            "create_project" => {
                let p = g.fresh(Kind::Project, g.model.projects.len());
                g.model.projects.push(Row {
                    tenant: t.idx,
                    alive: false,
                });
                let description = if g.chance(0.08) {
                    3 + g.small(3)
                } else {
                    g.small(3)
                };
                CreateProject {
                    project: p,
                    slug: g.small(6),
                    name: g.small(12),
                    description,
                }
            }
            "get_project" => GetProject {
                project: project(g, t),
            },
            "list_projects" => ListProjects {
                include_archived: g.chance(0.5),
            },
            "rename_project" => RenameProject {
                project: project(g, t),
                name: g.small(12),
            },
            "archive_project" => ArchiveProject {
                project: project(g, t),
            },
            "unarchive_project" => UnarchiveProject {
                project: project(g, t),
            },
            "delete_project" => DeleteProject {
                project: project(g, t),
            },
            "create_environment" => {
                let e = g.fresh(Kind::Environment, g.model.environments.len());
                let p = project(g, t);
                g.model.environments.push(EnvM {
                    tenant: t.idx,
                    project: p.idx,
                    alive: false,
                });
                CreateEnvironment {
                    environment: e,
                    project: p,
                    kind: g.small(3),
                }
            }
            "get_environment" => GetEnvironment {
                environment: environment(g, t),
            },
            "list_environments" => ListEnvironments {
                project: project(g, t),
            },
            _ => DeleteEnvironment {
                environment: environment(g, t),
            },
        };
        Some((g.actor(t), op))
    }

    fn observe(&self, by: &Who, m: &mut Model, ok: bool) {
        use ProjectOp::*;
        if !ok {
            return;
        }
        let t = acting_tenant(by, m);
        match self {
            CreateProject { project, .. } => made(&mut m.projects, *project, t),
            DeleteProject { project } => {
                set_alive(&mut m.projects, *project, false);
                for e in m
                    .environments
                    .iter_mut()
                    .filter(|e| e.project == project.idx)
                {
                    e.alive = false;
                }
            }
            CreateEnvironment {
                environment,
                project,
                ..
            } => {
                if let Some(e) = m.environments.get_mut(environment.idx as usize) {
                    e.alive = true;
                    e.tenant = t.unwrap_or(e.tenant);
                    e.project = project.idx;
                }
            }
            DeleteEnvironment { environment } => {
                if let Some(e) = m.environments.get_mut(environment.idx as usize) {
                    e.alive = false;
                }
            }
            _ => {}
        }
    }

    async fn apply(&self, ctx: &Context, env: &mut Env, repos: &Repos) -> Outcome {
        use ProjectOp::*;
        let projects = &repos.projects;
        match self {
            CreateProject {
                project,
                slug,
                name,
                description: d,
            } => {
                let new = (|| {
                    Ok(NewProject {
                        slug: Slug::parse(&project_slug(*slug))?,
                        name: Name::parse(&display_name(*name))?,
                        description: description(*d),
                    })
                })();
                let r = match new {
                    Ok(new) => projects.create_project(ctx, new).await,
                    Err(e) => Err(e),
                };
                if let Ok(p) = &r {
                    env.bind(*project, p.id);
                }
                env.outcome(r)
            }
            GetProject { project } => {
                let id = env.id(*project);
                let r = projects.get_project(ctx, id).await;
                env.outcome(r)
            }
            ListProjects { include_archived } => {
                let r = projects.list_projects(ctx, *include_archived).await;
                env.outcome(r)
            }
            RenameProject { project, name } => {
                let id = env.id(*project);
                let r = match Name::parse(&display_name(*name)) {
                    Ok(n) => projects.rename_project(ctx, id, n).await,
                    Err(e) => Err(e),
                };
                env.outcome(r)
            }
            ArchiveProject { project } => {
                let id = env.id(*project);
                let r = projects.archive_project(ctx, id).await;
                env.outcome(r)
            }
            UnarchiveProject { project } => {
                let id = env.id(*project);
                let r = projects.unarchive_project(ctx, id).await;
                env.outcome(r)
            }
            DeleteProject { project } => {
                let id = env.id(*project);
                let r = projects.delete_project(ctx, id).await;
                env.outcome(r)
            }
            CreateEnvironment {
                environment,
                project,
                kind,
            } => {
                let id = env.id(*project);
                let r = projects
                    .create_environment(ctx, id, KINDS[*kind as usize % 3])
                    .await;
                if let Ok(e) = &r {
                    env.bind(*environment, e.id);
                }
                env.outcome(r)
            }
            GetEnvironment { environment } => {
                let id = env.id(*environment);
                let r = projects.get_environment(ctx, id).await;
                env.outcome(r)
            }
            ListEnvironments { project } => {
                let id = env.id(*project);
                let r = projects.list_environments(ctx, id).await;
                env.outcome(r)
            }
            DeleteEnvironment { environment } => {
                let id = env.id(*environment);
                let r = projects.delete_environment(ctx, id).await;
                env.outcome(r)
            }
        }
    }
}
