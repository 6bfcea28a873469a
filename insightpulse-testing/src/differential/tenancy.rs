//! Operations of `AuthRepo`, `TenantRepo` and `UserRepo`.

use super::env::{Env, Outcome};
use super::generate::Gen;
use super::model::{indices, MemberM, Model, TenantM, UserM};
use super::ops::{
    display_name, email, email_shouted, password, tenant_slug, Kind, ModuleOp, Ref, Who, TIME_ZONES,
};
use async_trait::async_trait;
use insightpulse_core::tenancy::tokens::TokenKind;
use insightpulse_core::tenancy::{NewTenant, NewUser, TenantUpdate};
use insightpulse_core::{Context, Email, Name, Repos, Result, SecretString, Slug, TimeZone};
use std::fmt;

/// What is presented as a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented {
    /// The token kept for this key or invitation (a well-formed unknown
    /// one if none was kept).
    Token(Ref),
    /// Garbage.
    Malformed,
}

impl fmt::Display for Presented {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Token(r) => write!(f, "token-of-{r}"),
            Self::Malformed => f.write_str("malformed-token"),
        }
    }
}

impl Presented {
    pub(crate) fn secret(self, env: &Env) -> SecretString {
        match self {
            Self::Token(r) => env.token(
                r,
                if r.kind == Kind::Key {
                    TokenKind::ApiKey
                } else {
                    TokenKind::Invitation
                },
            ),
            Self::Malformed => SecretString::from("ipk_not-a-token"),
        }
    }
}

/// One call of `AuthRepo`, `TenantRepo` or `UserRepo`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum TenancyOp {
    SignUp {
        user: Ref,
        email: u8,
        tenant: Ref,
        slug: u8,
        password: u8,
        full_name: Option<u8>,
    },
    SignIn {
        email: u8,
        password: u8,
    },
    Authenticate {
        key: Ref,
        token: Presented,
    },
    CreateTenant {
        tenant: Ref,
        slug: u8,
        name: u8,
        tz: u8,
    },
    GetTenant {
        tenant: Ref,
    },
    GetTenantBySlug {
        slug: u8,
    },
    ListMyTenants,
    UpdateTenant {
        name: Option<u8>,
        tz: Option<u8>,
        settings: Option<u8>,
    },
    DeleteTenant,
    CreateUser {
        user: Ref,
        email: u8,
        full_name: Option<u8>,
    },
    GetUser {
        user: Ref,
    },
    FindUserByEmail {
        email: u8,
        shouted: bool,
    },
    UpdateProfile {
        full_name: Option<u8>,
    },
    SetPassword {
        user: Ref,
        password: u8,
    },
}

/// Tenant settings; 3 and 4 are not JSON objects (a `Validation` error),
/// 5 holds a NUL character, 6 numbers at the edges of JSON's.
fn settings(i: u8) -> serde_json::Value {
    use serde_json::json;
    match i {
        0 => json!({}),
        1 => json!({"theme": "dark"}),
        2 => json!({"b": 1, "a": {"z": [true, null, "é"]}, "n": 2.5}),
        3 => json!([1, 2]),
        4 => json!("text"),
        5 => json!({"note": "nul\u{0}byte"}),
        _ => {
            json!({"big": 1.5e300, "u": 12_345_678_901_234_567_890_u64, "tiny": 1.5e-7, "f": 1e16})
        }
    }
}

fn name(i: u8) -> Result<Name> {
    Name::parse(&display_name(i))
}

fn opt_name(i: Option<u8>) -> Result<Option<Name>> {
    i.map(name).transpose()
}

impl fmt::Display for TenancyOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use TenancyOp::*;
        let n = |i: &Option<u8>| i.map_or("None".to_owned(), |i| format!("{:?}", display_name(i)));
        match self {
            SignUp {
                user,
                email: e,
                tenant,
                slug,
                password: p,
                full_name,
            } => write!(
                f,
                "sign_up {user}={} password={:?} full_name={} tenant {tenant}={}",
                email(*e),
                password(*p),
                n(full_name),
                tenant_slug(*slug)
            ),
            SignIn {
                email: e,
                password: p,
            } => {
                write!(f, "sign_in {} password={:?}", email(*e), password(*p))
            }
            Authenticate { key, token } => write!(f, "authenticate {token} (as {key})"),
            CreateTenant {
                tenant,
                slug,
                name: nm,
                tz,
            } => write!(
                f,
                "create_tenant {tenant} slug={} name={:?} tz={}",
                tenant_slug(*slug),
                display_name(*nm),
                TIME_ZONES[*tz as usize % TIME_ZONES.len()]
            ),
            GetTenant { tenant } => write!(f, "get_tenant {tenant}"),
            GetTenantBySlug { slug } => write!(f, "get_tenant_by_slug {}", tenant_slug(*slug)),
            ListMyTenants => f.write_str("list_my_tenants"),
            UpdateTenant {
                name: nm,
                tz,
                settings: s,
            } => write!(
                f,
                "update_tenant name={} tz={:?} settings={}",
                n(nm),
                tz.map(|t| TIME_ZONES[t as usize % TIME_ZONES.len()]),
                s.map_or("None".to_owned(), |s| settings(s).to_string())
            ),
            DeleteTenant => f.write_str("delete_tenant"),
            CreateUser {
                user,
                email: e,
                full_name,
            } => {
                write!(
                    f,
                    "create_user {user}={} full_name={}",
                    email(*e),
                    n(full_name)
                )
            }
            GetUser { user } => write!(f, "get_user {user}"),
            FindUserByEmail { email: e, shouted } => write!(
                f,
                "find_user_by_email {}",
                if *shouted {
                    email_shouted(*e)
                } else {
                    email(*e)
                }
            ),
            UpdateProfile { full_name } => write!(f, "update_profile full_name={}", n(full_name)),
            SetPassword { user, password: p } => {
                write!(f, "set_password {user} {:?}", password(*p))
            }
        }
    }
}

const METHODS: &[&str] = &[
    "sign_up",
    "sign_in",
    "authenticate",
    "create_tenant",
    "get_tenant",
    "get_tenant_by_slug",
    "list_my_tenants",
    "update_tenant",
    "delete_tenant",
    "create_user",
    "get_user",
    "find_user_by_email",
    "update_profile",
    "set_password",
];

/// Weights, in `METHODS` order.
const WEIGHTS: &[u32] = &[5, 2, 5, 3, 2, 1, 2, 3, 3, 5, 2, 2, 2, 2];

/// An email index nobody holds yet (mostly), or any.
fn email_for_new_user(g: &mut Gen) -> u8 {
    let taken: Vec<u8> = g.model.users.iter().filter_map(|u| u.email).collect();
    let free: Vec<u8> = (0..16u8).filter(|e| !taken.contains(e)).collect();
    if !free.is_empty() && g.chance(0.85) {
        g.pick(&free)
    } else {
        g.small(16)
    }
}

fn slug_for_new_tenant(g: &mut Gen) -> u8 {
    let taken: Vec<u8> = g.model.tenants.iter().map(|t| t.slug).collect();
    let free: Vec<u8> = (0..12u8).filter(|s| !taken.contains(s)).collect();
    if !free.is_empty() && g.chance(0.88) {
        g.pick(&free)
    } else {
        g.small(12)
    }
}

fn password_idx(g: &mut Gen) -> u8 {
    if g.chance(0.05) {
        9
    } else {
        g.small(3)
    }
}

fn tz(g: &mut Gen) -> u8 {
    g.small(TIME_ZONES.len() as u8)
}

/// A sign-up of a new user with a new tenant (mostly fresh email and slug).
pub(crate) fn sign_up(g: &mut Gen) -> (Who, TenancyOp) {
    let e = email_for_new_user(g);
    let user = g.fresh(Kind::User, g.model.users.len());
    g.model.users.push(UserM {
        email: Some(e),
        password: None,
        alive: false,
    });
    let slug = slug_for_new_tenant(g);
    let tenant = g.fresh(Kind::Tenant, g.model.tenants.len());
    g.model.tenants.push(TenantM { slug, alive: false });
    let op = TenancyOp::SignUp {
        user,
        email: e,
        tenant,
        slug,
        password: password_idx(g),
        full_name: g.maybe(0.7, |g| g.small(12)),
    };
    (Who::Nobody, op)
}

/// What `method` needs first, if it is missing.
fn needs(g: &Gen, method: &'static str) -> Option<&'static str> {
    match method {
        // Deleting a tenant ends most of what a sequence can do there.
        "delete_tenant" if g.model.tenants.iter().filter(|t| t.alive).count() < 3 => {
            Some("update_tenant")
        }
        _ => None,
    }
}

/// A caller that acts as itself (a user, mostly), in `t` or in none.
fn self_actor(g: &mut Gen) -> (Who, Ref) {
    let u = g.user();
    let r = g.below(100);
    let who = if r < 80 {
        Who::User(u, None)
    } else if r < 92 {
        let t = g.tenant();
        Who::User(u, Some(t))
    } else if r < 96 {
        Who::System(None)
    } else {
        let t = g.tenant();
        g.actor(t)
    };
    (who, u)
}

#[async_trait]
impl ModuleOp for TenancyOp {
    fn method(&self) -> &'static str {
        use TenancyOp::*;
        match self {
            SignUp { .. } => "sign_up",
            SignIn { .. } => "sign_in",
            Authenticate { .. } => "authenticate",
            CreateTenant { .. } => "create_tenant",
            GetTenant { .. } => "get_tenant",
            GetTenantBySlug { .. } => "get_tenant_by_slug",
            ListMyTenants => "list_my_tenants",
            UpdateTenant { .. } => "update_tenant",
            DeleteTenant => "delete_tenant",
            CreateUser { .. } => "create_user",
            GetUser { .. } => "get_user",
            FindUserByEmail { .. } => "find_user_by_email",
            UpdateProfile { .. } => "update_profile",
            SetPassword { .. } => "set_password",
        }
    }

    fn is_read(&self) -> bool {
        use TenancyOp::*;
        matches!(
            self,
            SignIn { .. }
                | GetTenant { .. }
                | GetTenantBySlug { .. }
                | ListMyTenants
                | GetUser { .. }
                | FindUserByEmail { .. }
        )
    }

    fn methods() -> &'static [&'static str] {
        METHODS
    }

    fn generate(g: &mut Gen) -> Option<(Who, Self)> {
        use TenancyOp::*;
        let t = g.tenant();
        let method = g.next_method(METHODS, WEIGHTS, needs)?;
        let op = match method {
            "sign_up" => return Some(sign_up(g)),
            "sign_in" => {
                let u = g.user();
                let known = g.model.users.get(u.idx as usize).cloned();
                let e = known
                    .as_ref()
                    .and_then(|u| u.email)
                    .unwrap_or_else(|| g.small(16));
                let p = match known.and_then(|u| u.password) {
                    Some(p) if g.chance(0.75) => p,
                    _ => password_idx(g),
                };
                return Some((
                    Who::Nobody,
                    SignIn {
                        email: e,
                        password: p,
                    },
                ));
            }
            "authenticate" => {
                let live = indices(&g.model.keys, |k| k.alive);
                let key = if !live.is_empty() && g.chance(0.85) {
                    Ref::new(Kind::Key, g.pick(&live))
                } else if !g.model.keys.is_empty() && g.chance(0.7) {
                    Ref::new(Kind::Key, g.below(g.model.keys.len()) as u32)
                } else {
                    Ref::ghost(Kind::Key)
                };
                let r = g.below(100);
                let token = if r < 90 {
                    Presented::Token(key)
                } else if r < 95 || g.model.invitations.is_empty() {
                    Presented::Malformed
                } else {
                    let inv = g.below(g.model.invitations.len()) as u32;
                    Presented::Token(Ref::new(Kind::Invitation, inv))
                };
                return Some((Who::Nobody, Authenticate { key, token }));
            }
            "create_tenant" => {
                let (who, _) = self_actor(g);
                let slug = slug_for_new_tenant(g);
                let tenant = g.fresh(Kind::Tenant, g.model.tenants.len());
                g.model.tenants.push(TenantM { slug, alive: false });
                let op = CreateTenant {
                    tenant,
                    slug,
                    name: g.small(12),
                    tz: tz(g),
                };
                return Some((who, op));
            }
            "get_tenant" => {
                let tenant = if g.chance(0.8) { t } else { g.tenant() };
                GetTenant { tenant }
            }
            "get_tenant_by_slug" => {
                let slug = g.model.tenants.get(t.idx as usize).map(|t| t.slug);
                GetTenantBySlug {
                    slug: slug.unwrap_or_else(|| g.small(12)),
                }
            }
            "list_my_tenants" => {
                let (who, _) = self_actor(g);
                return Some((who, ListMyTenants));
            }
            "update_tenant" => UpdateTenant {
                name: g.maybe(0.5, |g| g.small(12)),
                tz: g.maybe(0.4, tz),
                settings: g.maybe(0.6, |g| {
                    if g.chance(0.1) {
                        5 + g.small(2)
                    } else {
                        g.small(5)
                    }
                }),
            },
            "delete_tenant" => {
                // Mostly a tenant whose keys are in use (their contexts go on
                // being used afterwards), by one of its owners.
                let with_keys: Vec<u32> = g
                    .model
                    .keys
                    .iter()
                    .filter(|k| k.authenticated)
                    .map(|k| k.tenant)
                    .filter(|t| g.model.tenants.get(*t as usize).is_some_and(|t| t.alive))
                    .collect();
                if !with_keys.is_empty() && g.chance(0.7) {
                    let t = Ref::new(Kind::Tenant, g.pick(&with_keys));
                    let owners = g.members_of(t, Some(true), false);
                    if !owners.is_empty() {
                        let owner = Ref::new(Kind::User, g.pick(&owners));
                        return Some((Who::User(owner, Some(t)), DeleteTenant));
                    }
                }
                DeleteTenant
            }
            "create_user" => {
                let e = email_for_new_user(g);
                let user = g.fresh(Kind::User, g.model.users.len());
                g.model.users.push(UserM {
                    email: Some(e),
                    password: None,
                    alive: false,
                });
                let who = if g.chance(0.85) {
                    Who::System(None)
                } else {
                    g.actor(t)
                };
                let op = CreateUser {
                    user,
                    email: e,
                    full_name: g.maybe(0.5, |g| g.small(12)),
                };
                return Some((who, op));
            }
            "get_user" => GetUser { user: g.member(t) },
            "find_user_by_email" => {
                let u = g.member(t);
                let e = g.model.users.get(u.idx as usize).and_then(|u| u.email);
                FindUserByEmail {
                    email: e.unwrap_or_else(|| g.small(16)),
                    shouted: g.chance(0.3),
                }
            }
            "update_profile" => {
                let (who, _) = self_actor(g);
                return Some((
                    who,
                    UpdateProfile {
                        full_name: g.maybe(0.8, |g| g.small(12)),
                    },
                ));
            }
            _ => {
                let (who, me) = self_actor(g);
                let user = if g.chance(0.8) { me } else { g.user() };
                let who = if g.chance(0.2) {
                    Who::System(None)
                } else {
                    who
                };
                return Some((
                    who,
                    SetPassword {
                        user,
                        password: password_idx(g),
                    },
                ));
            }
        };
        Some((g.actor(t), op))
    }

    fn observe(&self, by: &Who, m: &mut Model, ok: bool) {
        use TenancyOp::*;
        if !ok {
            return;
        }
        let ctx_tenant = match by {
            Who::User(_, Some(t)) | Who::System(Some(t)) => Some(*t),
            Who::Key(k) => m
                .keys
                .get(k.idx as usize)
                .map(|k| Ref::new(Kind::Tenant, k.tenant)),
            _ => None,
        };
        let acting_user = match by {
            Who::User(u, _) => Some(*u),
            _ => None,
        };
        match self {
            SignUp {
                user,
                tenant,
                password,
                ..
            } => {
                if let Some(u) = m.users.get_mut(user.idx as usize) {
                    u.alive = true;
                    u.password = Some(*password);
                }
                if let Some(t) = m.tenants.get_mut(tenant.idx as usize) {
                    t.alive = true;
                }
                m.members.insert(
                    (tenant.idx, user.idx),
                    MemberM {
                        owner: true,
                        suspended: false,
                    },
                );
            }
            Authenticate {
                key,
                token: Presented::Token(r),
            } if r == key => {
                if let Some(k) = m.keys.get_mut(key.idx as usize) {
                    k.authenticated = true;
                    k.used_at = Some(m.step);
                }
            }
            CreateTenant { tenant, .. } => {
                if let Some(t) = m.tenants.get_mut(tenant.idx as usize) {
                    t.alive = true;
                }
                if let Some(u) = acting_user {
                    m.members.insert(
                        (tenant.idx, u.idx),
                        MemberM {
                            owner: true,
                            suspended: false,
                        },
                    );
                }
            }
            DeleteTenant => {
                if let Some(t) = ctx_tenant {
                    if let Some(tm) = m.tenants.get_mut(t.idx as usize) {
                        tm.alive = false;
                    }
                    m.forget_tenant(t.idx);
                }
            }
            CreateUser { user, .. } => {
                if let Some(u) = m.users.get_mut(user.idx as usize) {
                    u.alive = true;
                }
            }
            SetPassword { user, password } => {
                if let Some(u) = m.users.get_mut(user.idx as usize) {
                    u.password = Some(*password);
                }
            }
            _ => {}
        }
    }

    async fn apply(&self, ctx: &Context, env: &mut Env, repos: &Repos) -> Outcome {
        use TenancyOp::*;
        match self {
            SignUp {
                user,
                email: e,
                tenant,
                slug,
                password: p,
                full_name,
            } => {
                let input = (|| {
                    Ok(insightpulse_core::tenancy::SignUp {
                        email: Email::parse(&email(*e))?,
                        full_name: opt_name(*full_name)?,
                        password: SecretString::from(password(*p)),
                        tenant: NewTenant {
                            slug: Slug::parse(&tenant_slug(*slug))?,
                            name: Name::parse(&tenant_slug(*slug))?,
                            timezone: TimeZone::utc(),
                        },
                    })
                })();
                let r = match input {
                    Ok(new) => repos.auth.sign_up(ctx.request().clone(), new).await,
                    Err(e) => Err(e),
                };
                if let Ok(s) = &r {
                    env.bind(*user, s.user.id);
                    env.bind(*tenant, s.tenant.id);
                }
                env.outcome(r)
            }
            SignIn {
                email: e,
                password: p,
            } => {
                let r = match Email::parse(&email(*e)) {
                    Ok(addr) => {
                        repos
                            .auth
                            .sign_in(
                                &addr,
                                &SecretString::from(password(*p)),
                                ctx.request().clone(),
                            )
                            .await
                    }
                    Err(e) => Err(e),
                };
                env.outcome(r)
            }
            Authenticate { key, token } => {
                let secret = token.secret(env);
                let r = repos
                    .auth
                    .authenticate(&secret, ctx.request().clone())
                    .await;
                if let (Ok(c), Presented::Token(r)) = (&r, token) {
                    if r == key {
                        env.keep_key_context(*key, c.clone());
                    }
                }
                env.outcome(r)
            }
            CreateTenant {
                tenant,
                slug,
                name: nm,
                tz,
            } => {
                let r = match (Slug::parse(&tenant_slug(*slug)), name(*nm)) {
                    (Ok(slug), Ok(name)) => {
                        let timezone = TimeZone::parse(TIME_ZONES[*tz as usize % TIME_ZONES.len()]);
                        match timezone {
                            Ok(timezone) => {
                                repos
                                    .tenants
                                    .create_tenant(
                                        ctx,
                                        NewTenant {
                                            slug,
                                            name,
                                            timezone,
                                        },
                                    )
                                    .await
                            }
                            Err(e) => Err(e),
                        }
                    }
                    (Err(e), _) | (_, Err(e)) => Err(e),
                };
                if let Ok(t) = &r {
                    env.bind(*tenant, t.id);
                }
                env.outcome(r)
            }
            GetTenant { tenant } => {
                let id = env.id(*tenant);
                let r = repos.tenants.get_tenant(ctx, id).await;
                env.outcome(r)
            }
            GetTenantBySlug { slug } => {
                let r = match Slug::parse(&tenant_slug(*slug)) {
                    Ok(s) => repos.tenants.get_tenant_by_slug(ctx, &s).await,
                    Err(e) => Err(e),
                };
                env.outcome(r)
            }
            ListMyTenants => {
                let r = repos.tenants.list_my_tenants(ctx).await;
                env.outcome(r)
            }
            UpdateTenant {
                name: nm,
                tz,
                settings: s,
            } => {
                let update = (|| {
                    Ok(TenantUpdate {
                        name: opt_name(*nm)?,
                        timezone: tz
                            .map(|t| TimeZone::parse(TIME_ZONES[t as usize % TIME_ZONES.len()]))
                            .transpose()?,
                        settings: s.map(settings),
                    })
                })();
                let r = match update {
                    Ok(u) => repos.tenants.update_tenant(ctx, u).await,
                    Err(e) => Err(e),
                };
                env.outcome(r)
            }
            DeleteTenant => {
                let r = repos.tenants.delete_tenant(ctx).await;
                env.outcome(r)
            }
            CreateUser {
                user,
                email: e,
                full_name,
            } => {
                let new = (|| {
                    Ok(NewUser {
                        email: Email::parse(&email(*e))?,
                        full_name: opt_name(*full_name)?,
                    })
                })();
                let r = match new {
                    Ok(new) => repos.users.create_user(ctx, new).await,
                    Err(e) => Err(e),
                };
                if let Ok(u) = &r {
                    env.bind(*user, u.id);
                }
                env.outcome(r)
            }
            GetUser { user } => {
                let id = env.id(*user);
                let r = repos.users.get_user(ctx, id).await;
                env.outcome(r)
            }
            FindUserByEmail { email: e, shouted } => {
                let text = if *shouted {
                    email_shouted(*e)
                } else {
                    email(*e)
                };
                let r = match Email::parse(&text) {
                    Ok(addr) => repos.users.find_user_by_email(ctx, &addr).await,
                    Err(e) => Err(e),
                };
                env.outcome(r)
            }
            UpdateProfile { full_name } => {
                let r = match opt_name(*full_name) {
                    Ok(n) => repos.users.update_profile(ctx, n).await,
                    Err(e) => Err(e),
                };
                env.outcome(r)
            }
            SetPassword { user, password: p } => {
                let id = env.id(*user);
                let r = repos
                    .users
                    .set_password(ctx, id, &SecretString::from(password(*p)))
                    .await;
                env.outcome(r)
            }
        }
    }
}
