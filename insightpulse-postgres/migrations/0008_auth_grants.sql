-- The caller's grants, derived once per unit of work.
--
-- Until now every policy asked SECURITY DEFINER plpgsql helpers, which read
-- org_memberships, user_roles, role_permissions and permissions again in
-- every statement (an InitPlan or two per policy, tens of µs each), kept the
-- planner off primary keys, and cannot run on Citus (a policy there may not
-- read another distributed table).
--
-- Now the database still decides who may do what, but once per unit of
-- work: the first statement that needs them derives, from the tables (as
-- their owner, whatever the caller may see), the caller's tenants
-- (`load_tenants`) and, when it checks a permission, its grants in the
-- acting tenant (`load_grants`), and keeps each in a transaction-local
-- setting; every later question in that transaction reads the settings.
-- Nothing the caller supplies becomes a grant: the claims only say who acts,
-- and a set is re-derived whenever the claims or the acting tenant change, or a
-- statement writes one of the tables it comes from (the `*_forget_grants`
-- triggers below), so a unit of work that changes the caller's own
-- memberships sees the change in its next statement, as before.
--
-- Trust: these settings are as trusted as the claims themselves: a session
-- that can run arbitrary SQL as `authenticated` could forge either. Only
-- login roles granted `authenticated` reach it (the SDK's pool; on Supabase,
-- PostgREST, which sets only the claims), and the SDK never writes them.
--
-- The derived sets are two settings: `insightpulse.tenant_ids`, the tenants
-- the caller acts in (uuid[]), and `insightpulse.grants`, a text[] of
--   '<tenant>/*/*'                owner: every permission, tenant-wide
--   '<tenant>/*/<code>'           <code> tenant-wide
--   '<tenant>/<project>/<code>'   <code> on one project only
-- (an API key: its live tenant and its listed permissions, on its project
-- when it is project- or environment-scoped — the rule of
-- insightpulse-core/src/tenancy/permissions.rs, as in 0002 and 0007).
--
-- The helpers keep their names and signatures (so policies of later
-- modules read like the old ones) and become SQL expressions over the
-- settings that the planner inlines.
--
-- The SDK also says in which tenant a unit of work acts
-- (`insightpulse.tenant_id`, transaction-local like the claims), and the
-- tenant tables' policies compare with that one tenant — when the caller
-- acts in it — instead of `tenant_id = ANY (<every tenant of the caller>)`:
-- the planner prices `= ANY (<array known only at run time>)` as ten index
-- descents whatever the index, so a point read by primary key tied with
-- scanning the whole tenant by `idx_projects_tenant` and lost (49 rows
-- filtered out per read). A scalar equality lets it pick the primary key.
-- Only the tables a user reads across tenants (tenants, org_memberships,
-- users: "my tenants", co-members) keep the array form. The audit and
-- privacy policies are left as they were (their reads are tuned for
-- partitions and generic plans; see 0004).

SET search_path TO insightpulse, pg_temp;

-- Two sets are derived, each the first time a transaction needs it: the
-- tenants the caller acts in (all a tenant table's read policy needs: one
-- index probe) and its grants (a join over roles and permissions, only for
-- statements that check a permission). Each is kept in a transaction-local
-- setting beside a marker naming who acted where when it was derived.

-- Who acts, and where: what a derived set depends on. A set is kept beside
-- this key, and used only while it is unchanged.
CREATE FUNCTION insightpulse_auth.acting_key() RETURNS text
    LANGUAGE sql STABLE
AS $$
    SELECT 'claims:' || coalesce(current_setting('request.jwt.claims', true), '')
           || ' tenant:' || coalesce(current_setting('insightpulse.tenant_id', true), '')
$$;

-- Whether the set behind `p_marker` was derived for who acts where now (and
-- no write to its tables has happened since).
CREATE FUNCTION insightpulse_auth.fresh(p_marker text) RETURNS boolean
    LANGUAGE sql STABLE
AS $$
    SELECT coalesce(current_setting(p_marker, true) = insightpulse_auth.acting_key(), false)
$$;

-- The tenants the caller acts in: an API key its tenant while that exists
-- (0007), a user those where their membership is active.
CREATE FUNCTION insightpulse_auth.load_tenants() RETURNS uuid[]
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = insightpulse, pg_temp
AS $$
DECLARE
    claims_text text := coalesce(current_setting('request.jwt.claims', true), '');
    c           jsonb := coalesce(nullif(claims_text, '')::jsonb, '{}'::jsonb);
    v_tenants   uuid[];
BEGIN
    IF c ? 'api_key_id' THEN
        v_tenants := ARRAY(SELECT t.id FROM tenants t WHERE t.id = (c ->> 'tenant_id')::uuid);
    ELSE
        v_tenants := ARRAY(SELECT m.tenant_id FROM org_memberships m
                            WHERE m.user_id = (c ->> 'sub')::uuid AND m.status = 'active');
    END IF;
    PERFORM set_config('insightpulse.tenant_ids', v_tenants::text, true),
            set_config('insightpulse.tenants_for', insightpulse_auth.acting_key(), true);
    RETURN v_tenants;
END
$$;

-- The caller's grants (the format above): in the acting tenant when the
-- unit of work names one (the SDK always does: one membership probe, and for
-- a member who is not an owner their grants there), else in all its tenants.
CREATE FUNCTION insightpulse_auth.load_grants() RETURNS text[]
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = insightpulse, pg_temp
AS $$
DECLARE
    c        jsonb := coalesce(nullif(current_setting('request.jwt.claims', true), '')::jsonb, '{}'::jsonb);
    v_tenant uuid := nullif(current_setting('insightpulse.tenant_id', true), '')::uuid;
    v_uid    uuid;
    v_owner  boolean;
    g        text[];
BEGIN
    IF c ? 'api_key_id' THEN
        SELECT coalesce(array_agg(t.id::text || '/' || coalesce(c ->> 'project_id', '*') || '/' || p), '{}'::text[])
          INTO g
          FROM tenants t,
               jsonb_array_elements_text(CASE WHEN jsonb_typeof(c -> 'permissions') = 'array'
                                              THEN c -> 'permissions' ELSE '[]'::jsonb END) AS p
         WHERE t.id = (c ->> 'tenant_id')::uuid;
    ELSIF v_tenant IS NOT NULL THEN
        v_uid := (c ->> 'sub')::uuid;
        SELECT m.is_owner INTO v_owner
          FROM org_memberships m
         WHERE m.tenant_id = v_tenant AND m.user_id = v_uid AND m.status = 'active';
        IF NOT FOUND THEN
            g := '{}'::text[];
        ELSIF v_owner THEN
            g := ARRAY[v_tenant::text || '/*/*'];
        ELSE
            g := ARRAY(SELECT DISTINCT v_tenant::text || '/' || coalesce(ur.project_id::text, '*') || '/' || p.code
                         FROM user_roles ur
                         JOIN role_permissions rp ON rp.role_id = ur.role_id
                         JOIN permissions p ON p.id = rp.permission_id
                        WHERE ur.tenant_id = v_tenant AND ur.user_id = v_uid);
        END IF;
    ELSE
        v_uid := (c ->> 'sub')::uuid;
        SELECT coalesce(array_agg(e), '{}'::text[]) INTO g
          FROM (SELECT m.tenant_id::text || '/*/*' AS e
                  FROM org_memberships m
                 WHERE m.user_id = v_uid AND m.status = 'active' AND m.is_owner
                UNION
                SELECT ur.tenant_id::text || '/' || coalesce(ur.project_id::text, '*') || '/' || p.code
                  FROM org_memberships m
                  JOIN user_roles ur ON ur.tenant_id = m.tenant_id AND ur.user_id = m.user_id
                  JOIN role_permissions rp ON rp.role_id = ur.role_id
                  JOIN permissions p ON p.id = rp.permission_id
                 WHERE m.user_id = v_uid AND m.status = 'active' AND NOT m.is_owner) AS s;
    END IF;
    PERFORM set_config('insightpulse.grants', g::text, true),
            set_config('insightpulse.grants_for', insightpulse_auth.acting_key(), true);
    RETURN g;
END
$$;

-- The caller's grants: the kept ones while fresh, else derived now.
CREATE FUNCTION insightpulse_auth.grants() RETURNS text[]
    LANGUAGE sql STABLE
AS $$
    SELECT CASE WHEN insightpulse_auth.fresh('insightpulse.grants_for')
                THEN current_setting('insightpulse.grants', true)::text[]
                ELSE insightpulse_auth.load_grants() END
$$;

-- The helpers of 0002, 0004 and 0007, same signatures, now over the settings.
CREATE OR REPLACE FUNCTION insightpulse_auth.user_tenant_ids() RETURNS uuid[]
    LANGUAGE sql STABLE
AS $$
    SELECT CASE WHEN insightpulse_auth.fresh('insightpulse.tenants_for')
                THEN current_setting('insightpulse.tenant_ids', true)::uuid[]
                ELSE insightpulse_auth.load_tenants() END
$$;

CREATE OR REPLACE FUNCTION insightpulse_auth.is_tenant_owner(p_tenant uuid) RETURNS boolean
    LANGUAGE sql STABLE
AS $$
    SELECT coalesce(p_tenant::text || '/*/*' = ANY (insightpulse_auth.grants()), false)
$$;

CREATE OR REPLACE FUNCTION insightpulse_auth.user_has_permission(p_code text, p_tenant uuid, p_project uuid DEFAULT NULL)
    RETURNS boolean
    LANGUAGE sql STABLE
AS $$
    SELECT coalesce(insightpulse_auth.grants()
                    && ARRAY[p_tenant::text || '/*/*',
                             p_tenant::text || '/*/' || p_code,
                             p_tenant::text || '/' || p_project::text || '/' || p_code], false)
$$;

-- Runs once per statement (in a sub-select), so an aggregate is fine here.
CREATE OR REPLACE FUNCTION insightpulse_auth.tenants_with_permission(p_code text) RETURNS uuid[]
    LANGUAGE sql STABLE
AS $$
    SELECT coalesce(array_agg(DISTINCT split_part(g, '/', 1)::uuid), '{}'::uuid[])
      FROM unnest(insightpulse_auth.grants()) AS g
     WHERE g LIKE '%/*/*' OR g = split_part(g, '/', 1) || '/*/' || p_code
$$;

-- The tenant this unit of work acts in, when the caller acts in it; NULL
-- otherwise (no tenant named, not a member, suspended, a deleted key's tenant).
CREATE FUNCTION insightpulse_auth.tenant_id() RETURNS uuid
    LANGUAGE sql STABLE
AS $$
    SELECT CASE WHEN nullif(current_setting('insightpulse.tenant_id', true), '')::uuid
                     = ANY (insightpulse_auth.user_tenant_ids())
                THEN nullif(current_setting('insightpulse.tenant_id', true), '')::uuid END
$$;

REVOKE ALL ON FUNCTION insightpulse_auth.acting_key(), insightpulse_auth.fresh(text), insightpulse_auth.load_tenants(),
    insightpulse_auth.load_grants(), insightpulse_auth.grants(), insightpulse_auth.tenant_id() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION insightpulse_auth.acting_key(), insightpulse_auth.fresh(text), insightpulse_auth.load_tenants(),
    insightpulse_auth.load_grants(), insightpulse_auth.grants(), insightpulse_auth.tenant_id()
    TO authenticated, service_role;

-- A write to a table grants come from makes the next question re-derive
-- them (one statement-level trigger per table; these tables change rarely).
CREATE FUNCTION insightpulse_auth.forget_grants() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM set_config('insightpulse.tenants_for', '', true),
            set_config('insightpulse.grants_for', '', true);
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION insightpulse_auth.forget_grants() FROM PUBLIC;

CREATE TRIGGER tenants_forget_grants AFTER DELETE ON tenants
    FOR EACH STATEMENT EXECUTE FUNCTION insightpulse_auth.forget_grants();
CREATE TRIGGER org_memberships_forget_grants AFTER INSERT OR UPDATE OR DELETE ON org_memberships
    FOR EACH STATEMENT EXECUTE FUNCTION insightpulse_auth.forget_grants();
CREATE TRIGGER user_roles_forget_grants AFTER INSERT OR UPDATE OR DELETE ON user_roles
    FOR EACH STATEMENT EXECUTE FUNCTION insightpulse_auth.forget_grants();
CREATE TRIGGER role_permissions_forget_grants AFTER INSERT OR UPDATE OR DELETE ON role_permissions
    FOR EACH STATEMENT EXECUTE FUNCTION insightpulse_auth.forget_grants();
CREATE TRIGGER permissions_forget_grants AFTER INSERT OR UPDATE OR DELETE ON permissions
    FOR EACH STATEMENT EXECUTE FUNCTION insightpulse_auth.forget_grants();

-- ---------------------------------------------------------------------------
-- The tenant tables' row filters: the acting tenant, by equality.
-- ---------------------------------------------------------------------------
ALTER POLICY invitations_all ON invitations
    USING (tenant_id = (SELECT insightpulse_auth.tenant_id())
           AND insightpulse_auth.user_has_permission('member.invite', tenant_id));
ALTER POLICY teams_select ON teams
    USING (tenant_id = (SELECT insightpulse_auth.tenant_id()));
ALTER POLICY team_members_select ON team_members
    USING (tenant_id = (SELECT insightpulse_auth.tenant_id()));
ALTER POLICY roles_select ON roles
    USING (tenant_id IS NULL OR tenant_id = (SELECT insightpulse_auth.tenant_id()));
ALTER POLICY user_roles_select ON user_roles
    USING (tenant_id = (SELECT insightpulse_auth.tenant_id()));
-- What the SDK refuses, RLS hides too (it used to show these to every
-- member): SSO configuration and other members' identities to holders of
-- sso.manage only (a user still sees their own identities), API keys to
-- holders of api_key.manage at the key's level (tenant-wide, or on the
-- key's project).
ALTER POLICY sso_providers_select ON sso_providers
    USING (tenant_id = (SELECT insightpulse_auth.tenant_id())
           AND insightpulse_auth.user_has_permission('sso.manage', tenant_id));
ALTER POLICY user_identities_select ON user_identities
    USING (tenant_id = (SELECT insightpulse_auth.tenant_id())
           AND (user_id = (SELECT insightpulse_auth.uid())
                OR insightpulse_auth.user_has_permission('sso.manage', tenant_id)));
ALTER POLICY api_keys_select ON api_keys
    USING (tenant_id = (SELECT insightpulse_auth.tenant_id())
           AND insightpulse_auth.user_has_permission('api_key.manage', tenant_id, project_id));
ALTER POLICY projects_select ON projects
    USING (tenant_id = (SELECT insightpulse_auth.tenant_id())
           AND ((SELECT insightpulse_auth.scope_project_id()) IS NULL
                OR id = (SELECT insightpulse_auth.scope_project_id())));
ALTER POLICY projects_update ON projects
    USING (tenant_id = (SELECT insightpulse_auth.tenant_id())
           AND ((SELECT insightpulse_auth.scope_project_id()) IS NULL
                OR id = (SELECT insightpulse_auth.scope_project_id())));
ALTER POLICY environments_select ON environments
    USING (tenant_id = (SELECT insightpulse_auth.tenant_id())
           AND ((SELECT insightpulse_auth.scope_project_id()) IS NULL
                OR project_id = (SELECT insightpulse_auth.scope_project_id()))
           AND ((SELECT insightpulse_auth.scope_environment_id()) IS NULL
                OR id = (SELECT insightpulse_auth.scope_environment_id())));

-- Covered by the primary key (tenant_id, id); the seed's index predates that
-- key, and with it the planner may still pick the narrower index over the key.
DROP INDEX idx_projects_tenant;

-- The project an API key of the acting tenant is limited to (a row with
-- NULL for a tenant-wide key; no row when there is no such key), for members
-- who may not read the key itself: revoking needs api_key.manage at the
-- key's level, and a member without it is told PermissionDenied, not
-- NotFound, as inside its own tenant everywhere else.
CREATE FUNCTION insightpulse.api_key_level(p_id uuid) RETURNS TABLE (project_id uuid)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = insightpulse, pg_temp
AS $$
    SELECT k.project_id FROM api_keys k
     WHERE k.tenant_id = insightpulse_auth.tenant_id() AND k.id = p_id
$$;
REVOKE ALL ON FUNCTION insightpulse.api_key_level(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION insightpulse.api_key_level(uuid) TO authenticated, service_role;

-- The audit report names each acting key by its name and prefix: readers of
-- the trail see them even without api_key.manage (the keys themselves are
-- now hidden from them), only for keys that act in the trail they read.
CREATE FUNCTION insightpulse.audit_actor_keys(p_tenant uuid, p_keys uuid[])
    RETURNS TABLE (id uuid, name text, prefix text)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = insightpulse, pg_temp
AS $$
BEGIN
    IF NOT (current_setting('role') = 'service_role'
            OR insightpulse_auth.user_has_permission('audit.read', p_tenant)) THEN
        RETURN;
    END IF;
    RETURN QUERY
        SELECT k.id, k.name, k.prefix
          FROM api_keys k
         WHERE k.tenant_id = p_tenant AND k.id = ANY (p_keys);
END
$$;
REVOKE ALL ON FUNCTION insightpulse.audit_actor_keys(uuid, uuid[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION insightpulse.audit_actor_keys(uuid, uuid[]) TO authenticated, service_role;
