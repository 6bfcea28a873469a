//! SSO providers and federated identities.

use super::{oidc_config, saml_config};
use crate::conformance::{assert_err, Harness};
use crate::fixtures::*;
use chrono::Duration;
use insightpulse_core::tenancy::{NewSsoProvider, SsoConfig};
use insightpulse_core::{
    Clock, Context, Entity, Error, PermissionCode, Requirement, SsoProviderId,
};

/// SSO providers: configuration validated before anything is written, names
/// unique per tenant, managed with `sso.manage`.
pub async fn sso_providers_are_validated_and_unique(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let (_, vctx) = member_with_role(r, &actx, "viewer@acme.io", Some("Viewer")).await;
    let okta = r
        .sso
        .create_provider(
            &actx,
            NewSsoProvider {
                name: name("Okta"),
                config: oidc_config(),
            },
        )
        .await
        .unwrap();
    let azure = r
        .sso
        .create_provider(
            &actx,
            NewSsoProvider {
                name: name("Azure"),
                config: saml_config(),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (okta.tenant_id, okta.enabled, okta.created_at),
        (acme.id, true, h.clock.now())
    );
    assert_eq!(okta.config.kind(), "oidc");
    assert_eq!(azure.config.kind(), "saml");
    assert_eq!(
        r.sso.list_providers(&actx).await.unwrap(),
        vec![azure.clone(), okta.clone()]
    );
    // The configuration is for those who manage it.
    assert_err!(
        r.sso.list_providers(&vctx).await,
        Error::PermissionDenied {
            required: Requirement::Permission(PermissionCode::SSO_MANAGE)
        }
    );

    let saml = |entity: &str, sso: &str, pem: &str| SsoConfig::Saml {
        idp_entity_id: entity.to_owned(),
        sso_url: sso.parse().unwrap(),
        x509_certificate_pem: pem.to_owned(),
    };
    let oidc = |issuer: &str, client: &str, secret: &str, scopes: &[&str]| SsoConfig::Oidc {
        issuer: issuer.parse().unwrap(),
        client_id: client.to_owned(),
        client_secret_ref: secret.to_owned(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
    };
    let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----";
    let invalid = [
        (
            saml("  ", "https://idp.example.com/sso", pem),
            "idp_entity_id",
        ),
        (saml("idp", "http://idp.example.com/sso", pem), "sso_url"),
        (
            saml("idp", "https://idp.example.com/sso", "not a certificate"),
            "x509_certificate_pem",
        ),
        (
            oidc("http://login.example.com", "c", "secret://s", &["openid"]),
            "issuer",
        ),
        (
            oidc("https://login.example.com", " ", "secret://s", &["openid"]),
            "client_id",
        ),
        (
            oidc(
                "https://login.example.com",
                "c",
                "plaintext-secret",
                &["openid"],
            ),
            "client_secret_ref",
        ),
        (
            oidc("https://login.example.com", "c", "secret://s", &["email"]),
            "scopes",
        ),
    ];
    for (config, field) in invalid {
        match r
            .sso
            .create_provider(
                &actx,
                NewSsoProvider {
                    name: name("Broken"),
                    config: config.clone(),
                },
            )
            .await
        {
            Err(Error::Validation { field: f, .. }) => assert_eq!(f, field),
            other => panic!("expected Validation {{ {field} }}, got {other:?}"),
        }
        assert_err!(
            r.sso
                .update_provider(&actx, okta.id, Some(config), None)
                .await,
            Error::Validation { .. }
        );
    }
    assert_eq!(
        r.sso.list_providers(&actx).await.unwrap(),
        vec![azure.clone(), okta.clone()]
    );

    assert_err!(
        r.sso
            .create_provider(
                &actx,
                NewSsoProvider {
                    name: name("Okta"),
                    config: saml_config()
                }
            )
            .await,
        Error::Conflict {
            entity: Entity::SsoProvider,
            ..
        }
    );
    assert_err!(
        r.sso
            .create_provider(
                &vctx,
                NewSsoProvider {
                    name: name("Mine"),
                    config: oidc_config()
                }
            )
            .await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.sso
            .update_provider(&vctx, okta.id, None, Some(false))
            .await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.sso.delete_provider(&vctx, okta.id).await,
        Error::PermissionDenied { .. }
    );

    h.clock.advance(Duration::minutes(1));
    let disabled = r
        .sso
        .update_provider(&actx, okta.id, None, Some(false))
        .await
        .unwrap();
    assert!(!disabled.enabled);
    assert_eq!(disabled.config, okta.config);
    assert_eq!(disabled.updated_at, h.clock.now());
    assert_eq!(disabled.created_at, okta.created_at);
    let reconfigured = r
        .sso
        .update_provider(&actx, okta.id, Some(saml_config()), None)
        .await
        .unwrap();
    assert_eq!(reconfigured.config, saml_config());
    assert!(!reconfigured.enabled);

    r.sso.delete_provider(&actx, azure.id).await.unwrap();
    assert_eq!(
        r.sso.list_providers(&actx).await.unwrap(),
        vec![reconfigured]
    );
    assert_err!(
        r.sso.delete_provider(&actx, azure.id).await,
        Error::NotFound {
            entity: Entity::SsoProvider
        }
    );
    assert_err!(
        r.sso
            .update_provider(&actx, azure.id, None, Some(true))
            .await,
        Error::NotFound {
            entity: Entity::SsoProvider
        }
    );
}

/// Identities link a provider subject to a member, once per subject; lookups
/// through a disabled provider are refused.
pub async fn identities_link_subjects_to_members(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let (_, stranger, _) = tenant_with_owner(r, "umbrella").await;
    let (bob, _) = member_with_role(r, &actx, "bob@acme.io", None).await;
    let (carol, vctx) = member_with_role(r, &actx, "carol@acme.io", Some("Viewer")).await;
    let provider = r
        .sso
        .create_provider(
            &actx,
            NewSsoProvider {
                name: name("Okta"),
                config: oidc_config(),
            },
        )
        .await
        .unwrap();

    let first = r
        .sso
        .link_identity(&actx, provider.id, "sub-123", bob.id)
        .await
        .unwrap();
    assert_eq!(
        (first.tenant_id, first.provider_id, first.user_id),
        (acme.id, provider.id, bob.id)
    );
    assert_eq!(first.subject, "sub-123");
    assert_eq!(first.created_at, h.clock.now());
    assert_err!(
        r.sso
            .link_identity(&actx, provider.id, "sub-123", carol.id)
            .await,
        Error::Conflict {
            entity: Entity::Identity,
            ..
        }
    );
    assert_err!(
        r.sso
            .link_identity(&actx, provider.id, "sub-123", bob.id)
            .await,
        Error::Conflict {
            entity: Entity::Identity,
            ..
        }
    );
    assert_err!(
        r.sso
            .link_identity(&actx, provider.id, "sub-9", stranger.id)
            .await,
        Error::NotFound {
            entity: Entity::Member
        }
    );
    // A taken subject is the conflict even when the target is no member.
    assert_err!(
        r.sso
            .link_identity(&actx, provider.id, " sub-123 ", stranger.id)
            .await,
        Error::Conflict {
            entity: Entity::Identity,
            field: "subject"
        }
    );
    assert_err!(
        r.sso
            .link_identity(&actx, SsoProviderId::new(), "sub-9", bob.id)
            .await,
        Error::NotFound {
            entity: Entity::SsoProvider
        }
    );
    let too_long = "s".repeat(256);
    for bad in ["", "   ", too_long.as_str()] {
        assert_err!(
            r.sso.link_identity(&actx, provider.id, bad, bob.id).await,
            Error::Validation {
                field: "subject",
                ..
            }
        );
    }
    assert_err!(
        r.sso
            .link_identity(&vctx, provider.id, "sub-9", carol.id)
            .await,
        Error::PermissionDenied { .. }
    );
    assert_eq!(
        r.sso.list_identities(&actx, bob.id).await.unwrap(),
        vec![first.clone()]
    );
    // Another member's identities need sso.manage; one's own do not.
    assert_err!(
        r.sso.list_identities(&vctx, bob.id).await,
        Error::PermissionDenied {
            required: Requirement::Permission(PermissionCode::SSO_MANAGE)
        }
    );
    assert!(r
        .sso
        .list_identities(&vctx, carol.id)
        .await
        .unwrap()
        .is_empty());
    assert!(r
        .sso
        .list_identities(&actx, carol.id)
        .await
        .unwrap()
        .is_empty());

    // The system links at just-in-time login; 255 characters are fine.
    h.clock.advance(Duration::seconds(1));
    let longest = "s".repeat(255);
    let second = r
        .sso
        .link_identity(&system().in_tenant(acme.id), provider.id, &longest, bob.id)
        .await
        .unwrap();
    assert_eq!(
        r.sso.list_identities(&actx, bob.id).await.unwrap(),
        vec![first.clone(), second.clone()]
    );

    let found = r
        .sso
        .find_user_by_identity(&actx, provider.id, "sub-123")
        .await
        .unwrap();
    assert_eq!(found.map(|u| u.id), Some(bob.id));
    // A subject is looked up as it is linked: without surrounding
    // whitespace; a subject that could never be linked finds nobody.
    let padded = r
        .sso
        .find_user_by_identity(&actx, provider.id, " sub-123\t")
        .await
        .unwrap();
    assert_eq!(padded.map(|u| u.id), Some(bob.id));
    for never in ["", "  ", too_long.as_str()] {
        let found = r.sso.find_user_by_identity(&actx, provider.id, never);
        assert_eq!(found.await.unwrap(), None);
    }
    assert_eq!(
        r.sso
            .find_user_by_identity(&actx, provider.id, "nobody")
            .await
            .unwrap(),
        None
    );
    // Who is behind a subject is for `sso.manage` (and the system, at
    // login): a Viewer is refused, an outsider finds no provider.
    assert_err!(
        r.sso
            .find_user_by_identity(&vctx, provider.id, "sub-123")
            .await,
        Error::PermissionDenied { .. }
    );
    assert_eq!(
        r.sso
            .find_user_by_identity(&system().in_tenant(acme.id), provider.id, "sub-123")
            .await
            .unwrap()
            .map(|u| u.id),
        Some(bob.id)
    );
    assert_err!(
        r.sso
            .find_user_by_identity(
                &Context::user(stranger.id).in_tenant(acme.id),
                provider.id,
                "sub-123"
            )
            .await,
        Error::NotFound { .. }
    );
    assert_err!(
        r.sso
            .find_user_by_identity(&actx, SsoProviderId::new(), "sub-123")
            .await,
        Error::NotFound {
            entity: Entity::SsoProvider
        }
    );
    r.sso
        .update_provider(&actx, provider.id, None, Some(false))
        .await
        .unwrap();
    assert_err!(
        r.sso
            .find_user_by_identity(&actx, provider.id, "sub-123")
            .await,
        Error::InvalidState {
            entity: Entity::SsoProvider,
            ..
        }
    );
    r.sso
        .update_provider(&actx, provider.id, None, Some(true))
        .await
        .unwrap();

    assert_err!(
        r.sso.unlink_identity(&vctx, first.id).await,
        Error::PermissionDenied { .. }
    );
    r.sso.unlink_identity(&actx, first.id).await.unwrap();
    assert_err!(
        r.sso.unlink_identity(&actx, first.id).await,
        Error::NotFound {
            entity: Entity::Identity
        }
    );
    assert_eq!(
        r.sso
            .find_user_by_identity(&actx, provider.id, "sub-123")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        r.sso.list_identities(&actx, bob.id).await.unwrap(),
        vec![second]
    );

    // Deleting the provider deletes its identities.
    r.sso.delete_provider(&actx, provider.id).await.unwrap();
    assert!(r
        .sso
        .list_identities(&actx, bob.id)
        .await
        .unwrap()
        .is_empty());
}
