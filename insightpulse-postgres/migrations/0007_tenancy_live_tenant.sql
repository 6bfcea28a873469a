-- An API key acts only in a tenant that still exists.
--
-- A key's claims name its tenant, and until now the helpers believed them:
-- a context verified before its tenant was deleted could still append to
-- that tenant's audit trail (which outlives the tenant, having no foreign
-- key), read it, and pass every permission check. The database, not the
-- claims, decides: each key branch below also probes `tenants` by primary
-- key. A user needs no such probe: deleting a tenant deletes its
-- memberships.

SET search_path TO insightpulse, pg_temp;

CREATE OR REPLACE FUNCTION insightpulse_auth.user_tenant_ids() RETURNS uuid[]
    LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY DEFINER
    SET search_path = insightpulse, pg_temp
AS $$
DECLARE
    c     jsonb := insightpulse_auth.claims();
    v_uid uuid;
BEGIN
    IF c ? 'api_key_id' THEN
        RETURN ARRAY(SELECT t.id FROM tenants t WHERE t.id = (c ->> 'tenant_id')::uuid);
    END IF;
    v_uid := (c ->> 'sub')::uuid;
    IF v_uid IS NULL THEN
        RETURN '{}'::uuid[];
    END IF;
    RETURN coalesce(
        (SELECT array_agg(m.tenant_id)
           FROM org_memberships m
          WHERE m.user_id = v_uid AND m.status = 'active'),
        '{}'::uuid[]);
END
$$;

CREATE OR REPLACE FUNCTION insightpulse_auth.user_has_permission(p_code text, p_tenant uuid, p_project uuid DEFAULT NULL)
    RETURNS boolean
    LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY DEFINER
    SET search_path = insightpulse, pg_temp
AS $$
DECLARE
    c       jsonb := insightpulse_auth.claims();
    v_uid   uuid;
    v_owner boolean;
    v_perm  uuid;
BEGIN
    IF p_code IS NULL OR p_tenant IS NULL THEN
        RETURN false;
    END IF;
    IF c ? 'api_key_id' THEN
        RETURN coalesce(
            p_tenant = (c ->> 'tenant_id')::uuid
            AND jsonb_typeof(c -> 'permissions') = 'array'
            AND (c -> 'permissions') ? p_code
            AND (c ->> 'project_id' IS NULL OR (c ->> 'project_id')::uuid = p_project)
            AND EXISTS (SELECT 1 FROM tenants t WHERE t.id = p_tenant),
            false);
    END IF;
    v_uid := (c ->> 'sub')::uuid;
    IF v_uid IS NULL THEN
        RETURN false;
    END IF;
    -- 1. the membership (primary key probe): none or suspended -> no; owner -> yes
    SELECT m.is_owner INTO v_owner
      FROM org_memberships m
     WHERE m.tenant_id = p_tenant AND m.user_id = v_uid AND m.status = 'active';
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF v_owner THEN
        RETURN true;
    END IF;
    -- 2. the permission's id (permissions_code_key)
    SELECT p.id INTO v_perm FROM permissions p WHERE p.code = p_code;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    -- 3. the user's grants in the tenant (user_roles_grant_key), each probed
    --    in role_permissions' primary key (role_id, permission_id)
    RETURN EXISTS (
        SELECT 1
          FROM user_roles ur
          JOIN role_permissions rp ON rp.role_id = ur.role_id AND rp.permission_id = v_perm
         WHERE ur.tenant_id = p_tenant
           AND ur.user_id = v_uid
           AND (ur.project_id IS NULL OR ur.project_id = p_project));
END
$$;

-- The chain trigger of 0004, with the same probe for a key's entry.
CREATE OR REPLACE FUNCTION insightpulse.audit_chain_entry() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = insightpulse, pg_temp
    SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    c jsonb;
BEGIN
    IF current_setting('role') = 'authenticated' THEN
        c := insightpulse_auth.claims();
        IF NOT coalesce(CASE
            WHEN c ? 'api_key_id' THEN
                NEW.actor_kind = 'api_key'
                AND NEW.api_key_id = (c ->> 'api_key_id')::uuid
                AND NEW.tenant_id = (c ->> 'tenant_id')::uuid
                AND EXISTS (SELECT 1 FROM tenants t WHERE t.id = NEW.tenant_id)
            ELSE
                NEW.actor_kind = 'user'
                AND NEW.user_id = (c ->> 'sub')::uuid
                AND EXISTS (SELECT 1 FROM org_memberships m
                             WHERE m.tenant_id = NEW.tenant_id AND m.user_id = NEW.user_id
                               AND m.status = 'active')
            END, false) THEN
            RAISE EXCEPTION 'an audit entry is written by a member of its tenant, naming itself as the actor'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
    END IF;
    FOR i IN 1 .. 2 LOOP
        UPDATE audit_chain_heads h
           SET seq = h.seq + 1,
               prev_hash = h.hash,
               hash = insightpulse.audit_entry_hash(h.hash, h.seq + 1, NEW.tenant_id, NEW.id, NEW.created_at,
                                       NEW.actor_kind, NEW.user_id, NEW.api_key_id,
                                       NEW.actor_reason, NEW.action, NEW.target_type,
                                       NEW.target_id, NEW.diff, NEW.request_id, NEW.pii_digest)
         WHERE h.tenant_id = NEW.tenant_id
        RETURNING h.seq, h.prev_hash, h.hash INTO NEW.seq, NEW.prev_hash, NEW.hash;
        EXIT WHEN FOUND;
        INSERT INTO audit_chain_heads (tenant_id) VALUES (NEW.tenant_id) ON CONFLICT DO NOTHING;
    END LOOP;
    RETURN NEW;
END
$$;
