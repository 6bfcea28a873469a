//! The seeded generator: a [`Model`] of what probably exists (updated from
//! the fake's answers, so sequences get deep) and [`Gen`], the helpers the
//! modules' generators pick their callers and arguments with.
//!
//! Bias: most calls name rows that exist, in the caller's tenant, made by
//! a caller allowed to make them; a fraction name other tenants' rows,
//! deleted rows, ghosts, or come from odd callers (suspended and removed
//! members, outsiders, API keys of other tenants, the system, contexts of
//! deleted tenants). The model is only a guide: whatever it gets wrong just
//! makes a call invalid, which is tested too.

use super::model::{indices, Model};
use super::ops::{generate_module, Kind, Op, Ref, Step, Who, GHOST};
use insightpulse_core::PermissionCode;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The generator's state: its random source and its model.
#[derive(Debug)]
pub struct Gen {
    rng: StdRng,
    /// What probably exists.
    pub model: Model,
    /// A caller that just arrived (a key just authenticated, a member who
    /// just joined, the key of a tenant just deleted) and acts in most of
    /// the next few steps: `(caller, its tenant, steps left)`.
    focus: Option<(Who, Ref, u8)>,
    /// The method the next module generator is to make, if it has it.
    forced: Option<&'static str>,
    /// The next step is the focused key's.
    key_turn: bool,
    /// The steps generated so far (retries repeat one).
    recent: Vec<Step>,
    /// The step that probes the edge the clock was just moved to.
    probe: Option<Step>,
}

/// The calls that honour idempotency keys.
const IDEMPOTENT: &[&str] = &[
    "sign_up",
    "create_tenant",
    "create_project",
    "create_environment",
    "create_team",
    "create_role",
    "record",
];

/// What a key may be used for, by permission: `(permission, module,
/// method)`. A key in focus mostly calls what its permissions allow.
const KEY_USES: &[(PermissionCode, &str, &str)] = &[
    (
        PermissionCode::ENVIRONMENT_MANAGE,
        "Projects",
        "create_environment",
    ),
    (
        PermissionCode::ENVIRONMENT_MANAGE,
        "Projects",
        "delete_environment",
    ),
    (PermissionCode::PROJECT_CREATE, "Projects", "create_project"),
    (
        PermissionCode::PROJECT_UPDATE,
        "Projects",
        "archive_project",
    ),
    (PermissionCode::PROJECT_UPDATE, "Projects", "rename_project"),
    (PermissionCode::PROJECT_DELETE, "Projects", "delete_project"),
    (
        PermissionCode::API_KEY_MANAGE,
        "Credentials",
        "revoke_api_key",
    ),
    (
        PermissionCode::API_KEY_MANAGE,
        "Credentials",
        "list_api_keys",
    ),
    (PermissionCode::MEMBER_INVITE, "Members", "invite"),
    (PermissionCode::MEMBER_MANAGE, "Members", "suspend_member"),
    (PermissionCode::MEMBER_READ, "Members", "list_members"),
    (PermissionCode::TEAM_MANAGE, "Members", "create_team"),
    (PermissionCode::TENANT_MANAGE, "Tenancy", "update_tenant"),
    (PermissionCode::ROLE_MANAGE, "Rbac", "create_role"),
    (PermissionCode::ROLE_ASSIGN, "Rbac", "grant_role"),
    (PermissionCode::SSO_MANAGE, "Credentials", "link_identity"),
    (PermissionCode::AUDIT_READ, "Audit", "query"),
    (
        PermissionCode::DATA_POLICY_MANAGE,
        "Privacy",
        "set_data_policy",
    ),
    (PermissionCode::CONSENT_MANAGE, "Privacy", "record_consent"),
    (PermissionCode::EVENT_READ, "Outbox", "read_events"),
    (PermissionCode::EVENT_READ, "Outbox", "commit_cursor"),
    (PermissionCode::JOB_READ, "Jobs", "get_job"),
    (PermissionCode::JOB_READ, "Jobs", "list_jobs"),
];

/// How often each module is picked (out of the sum), and the clock.
const MODULE_WEIGHTS: &[(&str, u32)] = &[
    ("Tenancy", 11),
    ("Members", 21),
    ("Rbac", 11),
    ("Credentials", 13),
    ("Projects", 16),
    ("Audit", 9),
    ("Privacy", 14),
    ("Outbox", 10),
    ("Jobs", 16),
    ("Clock", 5),
];

/// Clock moves, in seconds: around the once-a-minute key use, an hour, a
/// day, a week, invitation and retention horizons.
const ADVANCES: &[i64] = &[30, 61, 3_600, 86_400, 7 * 86_400, 31 * 86_400, 40 * 86_400];

/// `secs` as `1d2h3m4s`.
pub fn duration_text(secs: i64) -> String {
    let (d, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3_600,
        secs % 3_600 / 60,
        secs % 60,
    );
    let mut out = String::new();
    for (v, unit) in [(d, "d"), (h, "h"), (m, "m"), (s, "s")] {
        if v != 0 {
            out.push_str(&format!("{v}{unit}"));
        }
    }
    if out.is_empty() {
        out.push_str("0s");
    }
    out
}

impl Gen {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            model: Model::new(),
            focus: None,
            forced: None,
            key_turn: false,
            recent: Vec::new(),
            probe: None,
        }
    }

    /// The index the next step will have in the sequence.
    pub fn index(&self) -> usize {
        self.recent.len()
    }

    /// The next step.
    pub fn next_step(&mut self) -> Step {
        let step = self.next_step_inner();
        self.recent.push(step.clone());
        step
    }

    fn next_step_inner(&mut self) -> Step {
        if let Some(step) = self.probe.take() {
            return step;
        }
        // A client retrying a recent request, as it was (same caller, same
        // idempotency key, same input).
        if !self.recent.is_empty() && self.chance(0.05) {
            let back = self.below(self.recent.len().min(4));
            let step = self.recent[self.recent.len() - 1 - back].clone();
            // Not a worker's claim either: replayed later, it could meet more
            // tenants than its limit has slots (see `jobs`).
            if !step.op.is_read()
                && !matches!(step.op, Op::Advance(_) | Op::AdvanceToEdge { .. })
                && step.op.method() != "claim_jobs"
            {
                return step;
            }
        }
        loop {
            let live = self.model.tenants.iter().filter(|t| t.alive).count();
            if (live == 0 && self.chance(0.8)) || (live < 2 && self.chance(0.25)) {
                let (by, op) = super::tenancy::sign_up(self);
                let idem = self.chance(0.2).then(|| self.below(4) as u8);
                let step = Step {
                    by,
                    idem,
                    op: Op::Tenancy(op),
                };
                return step;
            }
            // A method another module's generator asked for first.
            let redirected = self.forced.and_then(super::ops::module_of);
            let module = match redirected.map(|m| (m, "")).or_else(|| self.key_use()) {
                Some((module, "")) => module,
                Some((module, method)) => {
                    self.forced = Some(method);
                    self.key_turn = true;
                    module
                }
                None => {
                    let weights: Vec<u32> = MODULE_WEIGHTS.iter().map(|(_, w)| *w).collect();
                    MODULE_WEIGHTS[self.weighted(&weights)].0
                }
            };
            let picked = if module == "Clock" {
                let op = match self.chance(0.4).then(|| self.plan_probe()).flatten() {
                    Some(edge) => edge,
                    None => Op::Advance(self.pick(ADVANCES)),
                };
                Some((Who::Nobody, op))
            } else {
                generate_module(self, module)
            };
            self.key_turn = false;
            if let Some((by, op)) = picked {
                self.forced = None;
                // Idempotency keys mostly on the calls that honour them.
                let p = if IDEMPOTENT.contains(&op.method()) {
                    0.3
                } else {
                    0.04
                };
                let idem = self.chance(p).then(|| self.below(4) as u8);
                let step = Step { by, idem, op };
                return step;
            }
        }
    }

    /// Tells the model how the fake answered `step`.
    pub fn observe(&mut self, step: &Step, ok: bool) {
        use super::credentials::CredentialOp;
        use super::members::MemberOp;
        use super::tenancy::{Presented, TenancyOp};
        if let Some((_, _, left)) = &mut self.focus {
            *left = left.saturating_sub(1);
        }
        // Whose session the next steps follow.
        let before_delete = match (&step.op, &step.by) {
            (Op::Tenancy(TenancyOp::DeleteTenant), Who::User(_, Some(t))) => {
                let keys = indices(&self.model.keys, |k| k.authenticated && k.tenant == t.idx);
                (!keys.is_empty()).then(|| (Who::Key(Ref::new(Kind::Key, keys[0])), *t))
            }
            // The keys of a deleted project, and a revoked key, go on being
            // presented too.
            (Op::Projects(super::projects::ProjectOp::DeleteProject { project }), _) => {
                let keys = indices(&self.model.keys, |k| {
                    k.authenticated && k.project == Some(project.idx)
                });
                keys.first().map(|k| {
                    let t = self.model.keys[*k as usize].tenant;
                    (Who::Key(Ref::new(Kind::Key, *k)), Ref::new(Kind::Tenant, t))
                })
            }
            (Op::Credentials(CredentialOp::RevokeApiKey { key }), _) => self
                .model
                .keys
                .get(key.idx as usize)
                .filter(|k| k.authenticated)
                .map(|k| (Who::Key(*key), Ref::new(Kind::Tenant, k.tenant))),
            _ => None,
        };
        self.model.step = self.recent.len().saturating_sub(1);
        step.op.observe(&step.by, &mut self.model, ok);
        if !ok {
            return;
        }
        let focus = match (&step.op, &step.by) {
            (
                Op::Tenancy(TenancyOp::Authenticate {
                    key,
                    token: Presented::Token(r),
                }),
                _,
            ) if r == key => self
                .model
                .keys
                .get(key.idx as usize)
                .map(|k| (Who::Key(*key), Ref::new(Kind::Tenant, k.tenant))),
            (
                Op::Members(MemberOp::AcceptInvitation {
                    token: Presented::Token(inv),
                }),
                Who::User(u, _),
            ) => self.model.invitations.get(inv.idx as usize).map(|i| {
                (
                    Who::User(*u, Some(Ref::new(Kind::Tenant, i.tenant))),
                    Ref::new(Kind::Tenant, i.tenant),
                )
            }),
            (Op::Tenancy(TenancyOp::DeleteTenant), _)
            | (Op::Projects(super::projects::ProjectOp::DeleteProject { .. }), _)
            | (Op::Credentials(CredentialOp::RevokeApiKey { .. }), _) => before_delete,
            _ => None,
        };
        if let Some((who, t)) = focus {
            self.focus = Some((who, t, 6));
        }
    }

    /// Plans a clock move to an instant where a rule flips and the call
    /// that probes it, which runs exactly at that instant: an invitation's
    /// or a key's expiry, a key's once-a-minute use record, the audit
    /// report's window. Returns the clock move; the probe comes next.
    fn plan_probe(&mut self) -> Option<Op> {
        use super::audit::{AuditOp, Filter};
        use super::members::MemberOp;
        use super::tenancy::{Presented, TenancyOp};
        let now = self.index();
        let (made, secs, probe) = match self.below(4) {
            0 => {
                let open = indices(&self.model.invitations, |i| i.alive && !i.used);
                let inv = *open.last()?;
                let i = self.model.invitations[inv as usize].clone();
                let user = Ref::new(Kind::User, self.model.user_with_email(i.email)?);
                let token = Presented::Token(Ref::new(Kind::Invitation, inv));
                let op = Op::Members(MemberOp::AcceptInvitation { token });
                (i.made.0, i.made.1, (Who::User(user, None), op))
            }
            1 => {
                let expiring = indices(&self.model.keys, |k| k.alive && k.made.1.is_some());
                let k = *expiring.last()?;
                let key = Ref::new(Kind::Key, k);
                let op = Op::Tenancy(TenancyOp::Authenticate {
                    key,
                    token: Presented::Token(key),
                });
                let (made, secs) = self.model.keys[k as usize].made;
                (made, secs?, (Who::Nobody, op))
            }
            2 => {
                let used = indices(&self.model.keys, |k| k.alive && k.used_at.is_some());
                let k = *used.last()?;
                let key = Ref::new(Kind::Key, k);
                let op = Op::Tenancy(TenancyOp::Authenticate {
                    key,
                    token: Presented::Token(key),
                });
                let at = self.model.keys[k as usize].used_at?;
                (at, self.pick(&[60, 61]), (Who::Nobody, op))
            }
            _ => {
                let days = self.small(3);
                let back = 1 + self.below(now.clamp(1, 12));
                let t = self.tenant();
                let by = self.actor(t);
                let op = Op::Audit(AuditOp::Query {
                    days,
                    limit: 3,
                    filter: Filter::Nothing,
                    pages: 1,
                });
                (
                    now.saturating_sub(back),
                    [86_400, 7 * 86_400, 30 * 86_400][days as usize],
                    (by, op),
                )
            }
        };
        let back = u8::try_from(now.checked_sub(made)?).ok()?;
        self.probe = Some(Step {
            by: probe.0,
            idem: None,
            op: probe.1,
        });
        Some(Op::AdvanceToEdge { back, secs })
    }

    /// For a key in focus, mostly a call its permissions allow (or one any
    /// principal may make): `(module, method)`.
    fn key_use(&mut self) -> Option<(&'static str, &'static str)> {
        let Some((Who::Key(k), _, left)) = self.focus.clone() else {
            return None;
        };
        if left == 0 || !self.chance(0.6) {
            return None;
        }
        let held = self.model.keys.get(k.idx as usize)?.permissions.clone();
        let mut uses: Vec<(&'static str, &'static str)> = KEY_USES
            .iter()
            .filter(|(p, _, _)| held.contains(p))
            .map(|(_, m, f)| (*m, *f))
            .collect();
        if uses.is_empty() || self.chance(0.25) {
            uses = vec![
                ("Audit", "record"),
                ("Rbac", "has_permission"),
                ("Outbox", "publish_event"),
            ];
        }
        Some(self.pick(&uses))
    }

    /// On the focused key's turn, the project it is limited to.
    pub fn key_project(&self) -> Option<u32> {
        match &self.focus {
            Some((Who::Key(k), _, _)) if self.key_turn => {
                self.model.keys.get(k.idx as usize).and_then(|k| k.project)
            }
            _ => None,
        }
    }

    /// Asks for `method` (another module's) to be made instead: the module
    /// generator that calls this returns `None`.
    pub fn redirect(&mut self, method: &'static str) {
        self.forced = Some(method);
    }

    /// The method a module generator makes: the forced one if it is the
    /// module's, else one of `methods` by weight.
    pub fn method(&mut self, methods: &[&'static str], weights: &[u32]) -> &'static str {
        match self.forced.take() {
            Some(m) if methods.contains(&m) => m,
            _ => methods[self.weighted(weights)],
        }
    }

    /// The caller in focus, if it acts in `t` and its session goes on.
    fn focused(&self, t: Ref) -> Option<Who> {
        match &self.focus {
            Some((who, ft, left)) if *left > 0 && *ft == t => Some(who.clone()),
            _ => None,
        }
    }

    // --- randomness --------------------------------------------------------

    /// `true` with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.rng.gen_bool(p)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        self.rng.gen_range(0..n.max(1))
    }

    /// One of `items` (not empty).
    pub fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }

    /// An index into `weights`, chosen by weight.
    pub fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u32 = weights.iter().sum();
        let mut r = self.rng.gen_range(0..total.max(1));
        for (i, w) in weights.iter().enumerate() {
            if r < *w {
                return i;
            }
            r -= w;
        }
        weights.len() - 1
    }

    /// A small pool index in `0..n`.
    pub fn small(&mut self, n: u8) -> u8 {
        self.rng.gen_range(0..n.max(1))
    }

    /// `Some(f())` with probability `p`.
    pub fn maybe<T>(&mut self, p: f64, f: impl FnOnce(&mut Self) -> T) -> Option<T> {
        if self.chance(p) {
            Some(f(self))
        } else {
            None
        }
    }

    // --- names -------------------------------------------------------------

    /// A tenant to act in: mostly a live one, sometimes a deleted one or a
    /// ghost.
    pub fn tenant(&mut self) -> Ref {
        if let Some((_, t, left)) = &self.focus {
            let t = *t;
            if self.key_turn || (*left > 0 && self.chance(0.7)) {
                return t;
            }
        }
        let live: Vec<u32> = indices(&self.model.tenants, |t| t.alive);
        let dead: Vec<u32> = indices(&self.model.tenants, |t| !t.alive);
        let r = self.below(100);
        if (r < 90 || dead.is_empty()) && !live.is_empty() {
            Ref::new(Kind::Tenant, self.pick(&live))
        } else if r < 97 && !dead.is_empty() {
            Ref::new(Kind::Tenant, self.pick(&dead))
        } else {
            Ref::ghost(Kind::Tenant)
        }
    }

    /// A user that exists (mostly), any tenant.
    pub fn user(&mut self) -> Ref {
        let live: Vec<u32> = indices(&self.model.users, |u| u.alive);
        if live.is_empty() || self.chance(0.04) {
            Ref::ghost(Kind::User)
        } else {
            Ref::new(Kind::User, self.pick(&live))
        }
    }

    /// Members of `t` that are active, optionally owners only.
    pub fn members_of(&self, t: Ref, owners: Option<bool>, suspended: bool) -> Vec<u32> {
        self.model
            .members
            .iter()
            .filter(|((tt, _), m)| {
                *tt == t.idx && m.suspended == suspended && owners.is_none_or(|o| m.owner == o)
            })
            .map(|((_, u), _)| *u)
            .collect()
    }

    /// A user to name inside `t`: mostly a member, sometimes an owner,
    /// a former member, an outsider or a ghost.
    pub fn member(&mut self, t: Ref) -> Ref {
        let all: Vec<u32> = self
            .model
            .members
            .keys()
            .filter(|(tt, _)| *tt == t.idx)
            .map(|(_, u)| *u)
            .collect();
        let former: Vec<u32> = self
            .model
            .former
            .iter()
            .filter(|(tt, _)| *tt == t.idx)
            .map(|(_, u)| *u)
            .collect();
        let r = self.below(100);
        if r < 82 && !all.is_empty() {
            Ref::new(Kind::User, self.pick(&all))
        } else if r < 90 && !former.is_empty() {
            Ref::new(Kind::User, self.pick(&former))
        } else {
            self.user()
        }
    }

    /// A user to act on inside `t`: mostly a member that is not an owner.
    pub fn plain_member(&mut self, t: Ref) -> Ref {
        let mut plain = self.members_of(t, Some(false), false);
        plain.extend(self.members_of(t, Some(false), true));
        if !plain.is_empty() && self.chance(0.75) {
            Ref::new(Kind::User, self.pick(&plain))
        } else {
            self.member(t)
        }
    }

    /// Who calls, in tenant `t`: mostly an active owner or member, then
    /// keys, the system and odd callers.
    pub fn actor(&mut self, t: Ref) -> Who {
        if let Some(who) = self.focused(t) {
            if self.key_turn || self.chance(0.6) {
                return who;
            }
        }
        let owners = self.members_of(t, Some(true), false);
        let members = self.members_of(t, Some(false), false);
        let suspended = self.members_of(t, None, true);
        let former: Vec<u32> = self
            .model
            .former
            .iter()
            .filter(|(tt, _)| *tt == t.idx)
            .map(|(_, u)| *u)
            .collect();
        let keys: Vec<u32> = indices(&self.model.keys, |k| k.authenticated && k.tenant == t.idx);
        let other_keys: Vec<u32> =
            indices(&self.model.keys, |k| k.authenticated && k.tenant != t.idx);
        let user = |u: u32| Who::User(Ref::new(Kind::User, u), Some(t));
        for _ in 0..8 {
            let r = self.below(100);
            let who = match r {
                0..=36 if !owners.is_empty() => user(self.pick(&owners)),
                37..=60 if !members.is_empty() => user(self.pick(&members)),
                61..=78 if !keys.is_empty() => Who::Key(Ref::new(Kind::Key, self.pick(&keys))),
                79..=83 => Who::System(Some(t)),
                84..=87 if !suspended.is_empty() => user(self.pick(&suspended)),
                88..=90 if !former.is_empty() => user(self.pick(&former)),
                91..=94 => Who::User(self.user(), Some(t)),
                95..=96 if !other_keys.is_empty() => {
                    Who::Key(Ref::new(Kind::Key, self.pick(&other_keys)))
                }
                97..=98 => Who::User(self.user(), None),
                99 => Who::System(None),
                _ => continue,
            };
            return who;
        }
        match owners.first() {
            Some(o) => user(*o),
            None => Who::System(Some(t)),
        }
    }

    /// A row of `kind` to name inside `t`: mostly a live one of `t`, then
    /// any row (other tenants', deleted), then a ghost.
    pub fn row_in(&mut self, kind: Kind, rows: &[(u32, bool)], t: Ref) -> Ref {
        let mine: Vec<u32> = rows
            .iter()
            .enumerate()
            .filter(|(_, (tt, alive))| *tt == t.idx && *alive)
            .map(|(i, _)| i as u32)
            .collect();
        let r = self.below(100);
        if r < 86 && !mine.is_empty() {
            Ref::new(kind, self.pick(&mine))
        } else if r < 95 && !rows.is_empty() {
            Ref::new(kind, self.below(rows.len()) as u32)
        } else {
            Ref::ghost(kind)
        }
    }

    /// How many live rows of `t` are in `rows`.
    pub fn live_in(&self, rows: &[(u32, bool)], t: Ref) -> usize {
        rows.iter()
            .filter(|(tt, alive)| *tt == t.idx && *alive)
            .count()
    }

    /// The method a module generator makes next: one of `methods` by
    /// `weights` (or the forced one), replaced with probability 0.85 by
    /// what it needs first, as `needs` says (`None`: nothing missing), up
    /// to three times. `None` when that is another module's method, which
    /// is then forced for the next step.
    pub fn next_method(
        &mut self,
        methods: &[&'static str],
        weights: &[u32],
        needs: impl Fn(&Self, &'static str) -> Option<&'static str>,
    ) -> Option<&'static str> {
        let picked = self.method(methods, weights);
        let method = self.prerequisite(picked, needs);
        if methods.contains(&method) {
            Some(method)
        } else {
            self.redirect(method);
            None
        }
    }

    /// `method`, or with probability 0.85 what it needs first, up to three
    /// times.
    fn prerequisite(
        &mut self,
        method: &'static str,
        needs: impl Fn(&Self, &'static str) -> Option<&'static str>,
    ) -> &'static str {
        let mut method = method;
        if self.chance(0.85) {
            for _ in 0..3 {
                match needs(self, method) {
                    Some(first) => method = first,
                    None => break,
                }
            }
        }
        method
    }

    /// A fresh name of `kind` (`next` = how many the model holds).
    pub fn fresh(&self, kind: Kind, next: usize) -> Ref {
        debug_assert!(next < GHOST as usize);
        Ref::new(kind, next as u32)
    }

    /// Between 1 and `max` permissions, drawn from `from` (the whole
    /// catalog when empty).
    pub fn permissions(&mut self, from: &[PermissionCode], max: usize) -> Vec<PermissionCode> {
        let from = if from.is_empty() {
            PermissionCode::ALL
        } else {
            from
        };
        let n = 1 + self.below(max);
        let mut out: Vec<PermissionCode> = (0..n).map(|_| self.pick(from)).collect();
        out.sort();
        out.dedup();
        out
    }
}
