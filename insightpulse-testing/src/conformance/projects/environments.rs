//! Environments: one per kind and project, in kind order; deleting one
//! removes the API keys scoped to it.

use super::super::{assert_err, Harness};
use super::create;
use crate::fixtures::*;
use chrono::Duration;
use insightpulse_core::projects::EnvironmentKind;
use insightpulse_core::tenancy::ApiKeyScope;
use insightpulse_core::{Clock, Entity, EnvironmentId, Error, ProjectId, Rejection, RequestMeta};

/// One environment per kind and project, listed in kind order.
pub async fn environments_are_one_per_kind_in_kind_order(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let p = create(r, &actx, "web", None).await.unwrap();
    let q = create(r, &actx, "api", None).await.unwrap();
    let prod = environment(r, &actx, p.id, EnvironmentKind::Production).await;
    assert_eq!(
        (prod.tenant_id, prod.project_id, prod.kind),
        (acme.id, p.id, EnvironmentKind::Production)
    );
    assert_eq!(prod.created_at, h.clock.now());
    h.clock.advance(Duration::seconds(1));
    let dev = environment(r, &actx, p.id, EnvironmentKind::Development).await;
    h.clock.advance(Duration::seconds(1));
    let staging = environment(r, &actx, p.id, EnvironmentKind::Staging).await;
    assert_eq!(
        r.projects.list_environments(&actx, p.id).await.unwrap(),
        vec![dev.clone(), staging.clone(), prod.clone()]
    );
    assert_err!(
        r.projects
            .create_environment(&actx, p.id, EnvironmentKind::Production)
            .await,
        Error::Conflict {
            entity: Entity::Environment,
            ..
        }
    );
    assert_eq!(
        r.projects
            .list_environments(&actx, p.id)
            .await
            .unwrap()
            .len(),
        3
    );
    let q_prod = environment(r, &actx, q.id, EnvironmentKind::Production).await;
    assert_eq!(
        r.projects.list_environments(&actx, q.id).await.unwrap(),
        vec![q_prod]
    );
    assert_eq!(
        r.projects.get_environment(&actx, staging.id).await.unwrap(),
        staging
    );

    r.projects
        .delete_environment(&actx, staging.id)
        .await
        .unwrap();
    assert_eq!(
        r.projects.list_environments(&actx, p.id).await.unwrap(),
        vec![dev, prod]
    );
    assert_err!(
        r.projects.get_environment(&actx, staging.id).await,
        Error::NotFound {
            entity: Entity::Environment
        }
    );
    assert_err!(
        r.projects.delete_environment(&actx, staging.id).await,
        Error::NotFound {
            entity: Entity::Environment
        }
    );
    assert_err!(
        r.projects
            .delete_environment(&actx, EnvironmentId::new())
            .await,
        Error::NotFound {
            entity: Entity::Environment
        }
    );
    assert_err!(
        r.projects.list_environments(&actx, ProjectId::new()).await,
        Error::NotFound {
            entity: Entity::Project
        }
    );
    // The kind is free again.
    environment(r, &actx, p.id, EnvironmentKind::Staging).await;
}

/// Deleting an environment deletes the keys scoped to it only.
pub async fn deleting_an_environment_cascades_its_keys(h: Harness) {
    let r = &h.repos;
    let (_, _, actx) = tenant_with_owner(r, "acme").await;
    let p = create(r, &actx, "web", None).await.unwrap();
    let dev = environment(r, &actx, p.id, EnvironmentKind::Development).await;
    let prod = environment(r, &actx, p.id, EnvironmentKind::Production).await;
    let (_, dev_secret, _) = api_key(
        r,
        &actx,
        ApiKeyScope::Environment(dev.id),
        &["environment.manage"],
    )
    .await;
    let (_, prod_secret, _) = api_key(
        r,
        &actx,
        ApiKeyScope::Environment(prod.id),
        &["environment.manage"],
    )
    .await;
    let (_, project_secret, _) = api_key(
        r,
        &actx,
        ApiKeyScope::Project(p.id),
        &["environment.manage"],
    )
    .await;

    r.projects.delete_environment(&actx, dev.id).await.unwrap();
    assert_err!(
        r.auth
            .authenticate(&dev_secret, RequestMeta::default())
            .await,
        Error::Unauthenticated {
            reason: Rejection::Unknown,
            ..
        }
    );
    let prod_ctx = r
        .auth
        .authenticate(&prod_secret, RequestMeta::default())
        .await
        .unwrap();
    assert_eq!(
        prod_ctx.api_key_principal().unwrap().environment_id,
        Some(prod.id)
    );
    r.auth
        .authenticate(&project_secret, RequestMeta::default())
        .await
        .unwrap();
    assert_eq!(r.api_keys.list_api_keys(&actx).await.unwrap().len(), 2);
    assert_eq!(
        r.projects.list_environments(&actx, p.id).await.unwrap(),
        vec![prod]
    );
}
