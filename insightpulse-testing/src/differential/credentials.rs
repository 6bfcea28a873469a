//! Operations of `SsoRepo` (providers and identities) and `ApiKeyRepo`.

use super::env::{sorted_names, Env, Outcome};
use super::generate::Gen;
use super::model::{acting_tenant, made, rows, set_alive, KeyM, Model, Row};
use super::ops::{Kind, ModuleOp, Ref, Who};
use super::rbac::{project, some_permissions, CHECKED_BY_SDK};
use async_trait::async_trait;
use insightpulse_core::tenancy::{ApiKeyScope, NewApiKey, NewSsoProvider, SsoConfig};
use insightpulse_core::{Context, Name, PermissionCode, Repos, Result};
use std::fmt;

/// What an API key is scoped to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyScope {
    /// The whole tenant.
    Tenant,
    /// A project.
    Project(Ref),
    /// An environment.
    Environment(Ref),
}

impl fmt::Display for KeyScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tenant => f.write_str("tenant"),
            Self::Project(p) => write!(f, "project {p}"),
            Self::Environment(e) => write!(f, "environment {e}"),
        }
    }
}

/// One call of `SsoRepo` or `ApiKeyRepo`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum CredentialOp {
    CreateProvider {
        provider: Ref,
        name: u8,
        config: u8,
    },
    ListProviders,
    UpdateProvider {
        provider: Ref,
        config: Option<u8>,
        enabled: Option<bool>,
    },
    DeleteProvider {
        provider: Ref,
    },
    LinkIdentity {
        identity: Ref,
        provider: Ref,
        subject: u8,
        user: Ref,
    },
    FindUserByIdentity {
        provider: Ref,
        subject: u8,
    },
    ListIdentities {
        user: Ref,
    },
    UnlinkIdentity {
        identity: Ref,
    },
    CreateApiKey {
        key: Ref,
        name: u8,
        scope: KeyScope,
        permissions: Vec<PermissionCode>,
        expires: u8,
    },
    ListApiKeys,
    GetApiKey {
        key: Ref,
    },
    RevokeApiKey {
        key: Ref,
    },
}

/// SSO provider names (case and non-ASCII vary their order).
fn provider_name(i: u8) -> String {
    match i {
        0..=3 => format!("IdP {i}"),
        4 => "idp 1".to_owned(),
        5 => "Ünïcode IdP".to_owned(),
        _ => "Zulu".to_owned(),
    }
}

/// Subjects; 4 is 1 padded with blanks, 5 and 6 are invalid, 7 differs
/// from 1 by case only, 8 is at the limit in characters (twice as many
/// bytes), 9 holds a NUL character.
fn subject(i: u8) -> String {
    match i {
        0..=3 => format!("sub-{i}"),
        4 => "  sub-1  ".to_owned(),
        5 => String::new(),
        6 => "x".repeat(256),
        7 => "Sub-1".to_owned(),
        8 => "é".repeat(255),
        _ => "sub\u{0}nul".to_owned(),
    }
}

const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIBdiff\n-----END CERTIFICATE-----";

/// SSO configurations; 3 to 5 are invalid, 6 holds a NUL character.
fn sso_config(i: u8) -> SsoConfig {
    let url = |s: &str| insightpulse_core::url::Url::parse(s).expect("valid url");
    let oidc = |client: &str, secret: &str, scopes: &[&str]| SsoConfig::Oidc {
        issuer: url("https://idp.example.com/"),
        client_id: client.to_owned(),
        client_secret_ref: secret.to_owned(),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
    };
    match i {
        0 => SsoConfig::Saml {
            idp_entity_id: "urn:idp:example".to_owned(),
            sso_url: url("https://idp.example.com/sso"),
            x509_certificate_pem: CERT.to_owned(),
        },
        1 => oidc("client-1", "secret://okta", &["openid", "email"]),
        2 => oidc("client-2", "secret://okta-2", &["openid"]),
        3 => SsoConfig::Saml {
            idp_entity_id: "urn:idp:example".to_owned(),
            sso_url: url("http://idp.example.com/sso"),
            x509_certificate_pem: CERT.to_owned(),
        },
        4 => oidc("client-1", "secret://okta", &["email"]),
        5 => oidc("client-1", "plaintext", &["openid"]),
        _ => oidc("client\u{0}nul", "secret://okta", &["openid"]),
    }
}

/// Key expiries in seconds from now; 3 and 4 are not in the future.
const EXPIRES: &[Option<i64>] = &[None, Some(3_600), Some(30 * 86_400), Some(-1), Some(0)];

fn perms_text(p: &[PermissionCode]) -> String {
    let codes: Vec<&str> = p.iter().map(|c| c.as_str()).collect();
    format!("[{}]", codes.join(","))
}

impl fmt::Display for CredentialOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use CredentialOp::*;
        match self {
            CreateProvider { provider, name, config } => write!(
                f,
                "create_provider {provider} name={:?} config={:?}",
                provider_name(*name),
                sso_config(*config)
            ),
            ListProviders => f.write_str("list_providers"),
            UpdateProvider { provider, config, enabled } => write!(
                f,
                "update_provider {provider} config={:?} enabled={enabled:?}",
                config.map(sso_config)
            ),
            DeleteProvider { provider } => write!(f, "delete_provider {provider}"),
            LinkIdentity { identity, provider, subject: s, user } => {
                write!(f, "link_identity {identity} provider={provider} subject={:?} user={user}", subject(*s))
            }
            FindUserByIdentity { provider, subject: s } => {
                write!(f, "find_user_by_identity provider={provider} subject={:?}", subject(*s))
            }
            ListIdentities { user } => write!(f, "list_identities {user}"),
            UnlinkIdentity { identity } => write!(f, "unlink_identity {identity}"),
            CreateApiKey { key, name, scope, permissions, expires } => write!(
                f,
                "create_api_key {key} name=\"key {name}\" scope={scope} permissions={} expires_in={}",
                perms_text(permissions),
                EXPIRES[*expires as usize % EXPIRES.len()]
                    .map_or("never".to_owned(), |s| format!("{s}s"))
            ),
            ListApiKeys => f.write_str("list_api_keys"),
            GetApiKey { key } => write!(f, "get_api_key {key}"),
            RevokeApiKey { key } => write!(f, "revoke_api_key {key}"),
        }
    }
}

const METHODS: &[&str] = &[
    "create_provider",
    "list_providers",
    "update_provider",
    "delete_provider",
    "link_identity",
    "find_user_by_identity",
    "list_identities",
    "unlink_identity",
    "create_api_key",
    "list_api_keys",
    "get_api_key",
    "revoke_api_key",
];

const WEIGHTS: &[u32] = &[4, 1, 3, 2, 7, 4, 2, 6, 9, 2, 2, 3];

/// What `method` needs first in `t`, if it is missing.
fn needs(g: &Gen, method: &'static str, t: Ref) -> Option<&'static str> {
    let m = &g.model;
    let keys: Vec<(u32, bool)> = m.keys.iter().map(|k| (k.tenant, k.alive)).collect();
    match method {
        "update_provider" | "delete_provider" | "link_identity" | "find_user_by_identity"
            if g.live_in(&rows(&m.providers), t) == 0 =>
        {
            Some("create_provider")
        }
        "unlink_identity" if g.live_in(&rows(&m.identities), t) == 0 => Some("link_identity"),
        "get_api_key" | "revoke_api_key" if g.live_in(&keys, t) == 0 => Some("create_api_key"),
        _ => None,
    }
}

#[async_trait]
impl ModuleOp for CredentialOp {
    fn method(&self) -> &'static str {
        use CredentialOp::*;
        match self {
            CreateProvider { .. } => "create_provider",
            ListProviders => "list_providers",
            UpdateProvider { .. } => "update_provider",
            DeleteProvider { .. } => "delete_provider",
            LinkIdentity { .. } => "link_identity",
            FindUserByIdentity { .. } => "find_user_by_identity",
            ListIdentities { .. } => "list_identities",
            UnlinkIdentity { .. } => "unlink_identity",
            CreateApiKey { .. } => "create_api_key",
            ListApiKeys => "list_api_keys",
            GetApiKey { .. } => "get_api_key",
            RevokeApiKey { .. } => "revoke_api_key",
        }
    }

    fn is_read(&self) -> bool {
        use CredentialOp::*;
        matches!(
            self,
            ListProviders
                | FindUserByIdentity { .. }
                | ListIdentities { .. }
                | ListApiKeys
                | GetApiKey { .. }
        )
    }

    fn methods() -> &'static [&'static str] {
        METHODS
    }

    fn generate(g: &mut Gen) -> Option<(Who, Self)> {
        use CredentialOp::*;
        let t = g.tenant();
        let method = g.next_method(METHODS, WEIGHTS, |g, m| needs(g, m, t))?;
        let op = match method {
            "create_provider" => {
                let provider = g.fresh(Kind::Provider, g.model.providers.len());
                g.model.providers.push(Row {
                    tenant: t.idx,
                    alive: false,
                });
                let config = if g.chance(0.1) {
                    3 + g.small(4)
                } else {
                    g.small(3)
                };
                CreateProvider {
                    provider,
                    name: g.small(7),
                    config,
                }
            }
            "list_providers" => ListProviders,
            "update_provider" => UpdateProvider {
                provider: g.row_in(Kind::Provider, &rows(&g.model.providers), t),
                config: g.maybe(0.4, |g| g.small(7)),
                enabled: g.maybe(0.8, |g| g.chance(0.5)),
            },
            "delete_provider" => DeleteProvider {
                provider: g.row_in(Kind::Provider, &rows(&g.model.providers), t),
            },
            "link_identity" => {
                let identity = g.fresh(Kind::Identity, g.model.identities.len());
                g.model.identities.push(Row {
                    tenant: t.idx,
                    alive: false,
                });
                LinkIdentity {
                    identity,
                    provider: g.row_in(Kind::Provider, &rows(&g.model.providers), t),
                    subject: match g.below(20) {
                        0..=6 => 1,
                        7..=16 => g.small(4),
                        _ => 4 + g.small(6),
                    },
                    user: g.member(t),
                }
            }
            "find_user_by_identity" => {
                let provider = g.row_in(Kind::Provider, &rows(&g.model.providers), t);
                // Mostly `sub-1` (linked most often) as stored, padded or
                // in another case.
                let subject = if g.chance(0.5) {
                    g.pick(&[1, 4, 7])
                } else {
                    g.small(10)
                };
                FindUserByIdentity { provider, subject }
            }
            "list_identities" => ListIdentities { user: g.member(t) },
            "unlink_identity" => UnlinkIdentity {
                identity: g.row_in(Kind::Identity, &rows(&g.model.identities), t),
            },
            "create_api_key" => {
                let key = g.fresh(Kind::Key, g.model.keys.len());
                let permissions = if g.chance(0.7) {
                    let mut p = g.permissions(CHECKED_BY_SDK, 5);
                    p.extend(g.permissions(CHECKED_BY_SDK, 2));
                    p.sort();
                    p.dedup();
                    p
                } else {
                    some_permissions(g)
                };
                g.model.keys.push(KeyM {
                    tenant: t.idx,
                    alive: false,
                    authenticated: false,
                    permissions: permissions.clone(),
                    project: None,
                    made: (g.index(), None),
                    used_at: None,
                });
                // A scope the tenant has rows for, mostly.
                let envs: Vec<(u32, bool)> = g
                    .model
                    .environments
                    .iter()
                    .map(|e| (e.tenant, e.alive))
                    .collect();
                let (has_project, has_env) = (
                    g.live_in(&rows(&g.model.projects), t) > 0,
                    g.live_in(&envs, t) > 0,
                );
                let mut pick = g.below(10);
                if (pick >= 6 && !has_env) || (3..6).contains(&pick) && !has_project {
                    pick = if g.chance(0.85) { 0 } else { pick };
                }
                let scope = match pick {
                    0..=2 => KeyScope::Tenant,
                    3..=5 => KeyScope::Project(project(g, t)),
                    _ => {
                        let envs: Vec<(u32, bool)> = g
                            .model
                            .environments
                            .iter()
                            .map(|e| (e.tenant, e.alive))
                            .collect();
                        KeyScope::Environment(g.row_in(Kind::Environment, &envs, t))
                    }
                };
                // A scoped key mostly manages what it is scoped to.
                let mut permissions = permissions;
                if !matches!(scope, KeyScope::Tenant) && g.chance(0.5) {
                    permissions.push(PermissionCode::ENVIRONMENT_MANAGE);
                    permissions.sort();
                    permissions.dedup();
                }
                if let Some(k) = g.model.keys.get_mut(key.idx as usize) {
                    k.permissions = permissions.clone();
                }
                let limited_to = match scope {
                    KeyScope::Tenant => None,
                    KeyScope::Project(p) => Some(p.idx),
                    KeyScope::Environment(e) => {
                        g.model.environments.get(e.idx as usize).map(|e| e.project)
                    }
                };
                if let Some(k) = g.model.keys.get_mut(key.idx as usize) {
                    k.project = limited_to;
                }
                let expires = if g.chance(0.06) {
                    3 + g.small(2)
                } else {
                    g.small(3)
                };
                if let Some(k) = g.model.keys.get_mut(key.idx as usize) {
                    k.made.1 = EXPIRES[expires as usize % EXPIRES.len()];
                }
                CreateApiKey {
                    key,
                    name: g.small(3),
                    scope,
                    permissions,
                    expires,
                }
            }
            "list_api_keys" => ListApiKeys,
            "get_api_key" => {
                let keys: Vec<(u32, bool)> =
                    g.model.keys.iter().map(|k| (k.tenant, k.alive)).collect();
                GetApiKey {
                    key: g.row_in(Kind::Key, &keys, t),
                }
            }
            _ => {
                let keys: Vec<(u32, bool)> =
                    g.model.keys.iter().map(|k| (k.tenant, k.alive)).collect();
                RevokeApiKey {
                    key: g.row_in(Kind::Key, &keys, t),
                }
            }
        };
        // Keys create keys only through a user: mostly let a user do it.
        let mut who = g.actor(t);
        if matches!(op, CreateApiKey { .. }) && !matches!(who, Who::User(..)) && g.chance(0.7) {
            let owners = g.members_of(t, Some(true), false);
            if !owners.is_empty() {
                who = Who::User(Ref::new(Kind::User, g.pick(&owners)), Some(t));
            }
        }
        Some((who, op))
    }

    fn observe(&self, by: &Who, m: &mut Model, ok: bool) {
        use CredentialOp::*;
        if !ok {
            return;
        }
        let t = acting_tenant(by, m);
        match self {
            CreateProvider { provider, .. } => made(&mut m.providers, *provider, t),
            DeleteProvider { provider } => set_alive(&mut m.providers, *provider, false),
            LinkIdentity { identity, .. } => made(&mut m.identities, *identity, t),
            UnlinkIdentity { identity } => set_alive(&mut m.identities, *identity, false),
            CreateApiKey { key, .. } => {
                if let Some(k) = m.keys.get_mut(key.idx as usize) {
                    k.alive = true;
                    k.tenant = t.unwrap_or(k.tenant);
                }
            }
            _ => {}
        }
    }

    async fn apply(&self, ctx: &Context, env: &mut Env, repos: &Repos) -> Outcome {
        use CredentialOp::*;
        match self {
            CreateProvider {
                provider,
                name,
                config,
            } => {
                let r = match Name::parse(&provider_name(*name)) {
                    Ok(n) => {
                        let new = NewSsoProvider {
                            name: n,
                            config: sso_config(*config),
                        };
                        repos.sso.create_provider(ctx, new).await
                    }
                    Err(e) => Err(e),
                };
                if let Ok(p) = &r {
                    env.bind(*provider, p.id);
                }
                env.outcome(r)
            }
            ListProviders => {
                let r = repos.sso.list_providers(ctx).await;
                env.outcome(r)
            }
            UpdateProvider {
                provider,
                config,
                enabled,
            } => {
                let id = env.id(*provider);
                let r = repos
                    .sso
                    .update_provider(ctx, id, config.map(sso_config), *enabled)
                    .await;
                env.outcome(r)
            }
            DeleteProvider { provider } => {
                let id = env.id(*provider);
                let r = repos.sso.delete_provider(ctx, id).await;
                env.outcome(r)
            }
            LinkIdentity {
                identity,
                provider,
                subject: s,
                user,
            } => {
                let (p, u) = (env.id(*provider), env.id(*user));
                let r = repos.sso.link_identity(ctx, p, &subject(*s), u).await;
                if let Ok(i) = &r {
                    env.bind(*identity, i.id);
                }
                env.outcome(r)
            }
            FindUserByIdentity {
                provider,
                subject: s,
            } => {
                let p = env.id(*provider);
                let r = repos.sso.find_user_by_identity(ctx, p, &subject(*s)).await;
                env.outcome(r)
            }
            ListIdentities { user } => {
                let u = env.id(*user);
                // The trait leaves the order open.
                let r = repos.sso.list_identities(ctx, u).await;
                let r = r.map(|ids| sorted_names(env, &ids));
                env.outcome_text(r)
            }
            UnlinkIdentity { identity } => {
                let id = env.id(*identity);
                let r = repos.sso.unlink_identity(ctx, id).await;
                env.outcome(r)
            }
            CreateApiKey {
                key,
                name,
                scope,
                permissions,
                expires,
            } => {
                let scope = match scope {
                    KeyScope::Tenant => ApiKeyScope::Tenant,
                    KeyScope::Project(p) => ApiKeyScope::Project(env.id(*p)),
                    KeyScope::Environment(e) => ApiKeyScope::Environment(env.id(*e)),
                };
                let expires_at = EXPIRES[*expires as usize % EXPIRES.len()]
                    .map(|s| env.now + chrono::Duration::seconds(s));
                let r: Result<_> = match Name::parse(&format!("key {name}")) {
                    Ok(n) => {
                        let new = NewApiKey {
                            name: n,
                            scope,
                            permissions: permissions.clone(),
                            expires_at,
                        };
                        repos.api_keys.create_api_key(ctx, new).await
                    }
                    Err(e) => Err(e),
                };
                if let Ok(issued) = &r {
                    env.bind(*key, issued.key.id);
                    env.keep_token(*key, issued.secret.clone());
                }
                env.outcome(r)
            }
            ListApiKeys => {
                let r = repos.api_keys.list_api_keys(ctx).await;
                env.outcome(r)
            }
            GetApiKey { key } => {
                let id = env.id(*key);
                let r = repos.api_keys.get_api_key(ctx, id).await;
                env.outcome(r)
            }
            RevokeApiKey { key } => {
                let id = env.id(*key);
                let r = repos.api_keys.revoke_api_key(ctx, id).await;
                env.outcome(r)
            }
        }
    }
}
