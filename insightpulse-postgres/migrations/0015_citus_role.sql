-- On Citus, a unit of work takes its role on the coordinator only.
--
-- Why: 0012's act_as took the role with `SET LOCAL ROLE`, which Citus
-- passes on to every connection of the transaction, the one derive()
-- opened to the workers as the function owner included. Citus picks a
-- worker connection by the coordinator's current user, so a `SECURITY
-- DEFINER` function of the SDK (the owner's rights: api_key_level,
-- audit_purge, audit_erase_personal, …) ran its statements on that owner's
-- connection, where the caller's role was set: as the caller, under RLS.
-- With the role set on the coordinator alone, the caller's statements go
-- over connections Citus opens as the caller (the runtime roles log in on
-- the workers, see citus_sync_workers), which carry the claims and derived
-- settings (`SET LOCAL`, passed on to every connection of the
-- transaction), and a definer function's go over the owner's.
--
-- The functions that ask which runtime role calls them and may run on a
-- worker (the audit chain's Citus twin, the report's actor lookups, which
-- Citus runs beside the page on the tenant's shard) ask runtime_role():
-- there the caller's connection is now logged in as its role instead of
-- switched to it.
--
-- Plain PostgreSQL never calls act_as nor fires the twin; nothing changes
-- there.

-- The runtime role the statement runs as: the role taken (SET ROLE, or
-- act_as's set_config) or, on a worker's connection that Citus opened as
-- that role, the login. Inside a SECURITY DEFINER function as well, where
-- current_user is the owner.
CREATE FUNCTION insightpulse_auth.runtime_role() RETURNS text
    LANGUAGE sql STABLE
AS $$
SELECT CASE WHEN current_setting('role') = 'none' THEN session_user::text
            ELSE current_setting('role') END
$$;
GRANT EXECUTE ON FUNCTION insightpulse_auth.runtime_role() TO authenticated, service_role;

CREATE OR REPLACE PROCEDURE insightpulse_auth.act_as(p_claims text, p_tenant text, p_role text,
                                          p_settings jsonb DEFAULT '{}')
    LANGUAGE plpgsql
AS $$
DECLARE
    s record;
BEGIN
    IF p_role NOT IN ('authenticated', 'service_role') THEN
        RAISE EXCEPTION 'insightpulse acts as authenticated or service_role, not %', p_role
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- A statement across shards may go over several connections to one
    -- worker, after which the unit of work could not write a reference
    -- table (users, roles); the SDK's statements touch one tenant's shard.
    PERFORM set_config('citus.propagate_set_commands', 'local', true),
            set_config('citus.multi_shard_modify_mode', 'sequential', true);
    EXECUTE format('SET LOCAL request.jwt.claims = %L', p_claims);
    EXECUTE format('SET LOCAL insightpulse.tenant_id = %L', p_tenant);
    EXECUTE 'SET LOCAL search_path TO insightpulse, pg_temp';
    EXECUTE 'SET LOCAL TimeZone = ''UTC''';
    FOR s IN SELECT * FROM jsonb_each_text(p_settings) LOOP
        PERFORM set_config(s.key, s.value, true);
    END LOOP;
    IF p_role = 'authenticated' THEN
        CALL insightpulse_auth.derive();
    END IF;
    -- The role by set_config: not passed on (see above).
    PERFORM set_config('role', p_role, true);
END
$$;

-- 0012's chain twin, 0004's and 0008's actor lookups, by runtime_role().
CREATE OR REPLACE FUNCTION insightpulse.audit_chain_entry_citus() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = insightpulse, pg_temp
AS $$
DECLARE
    c       jsonb;
    member  boolean;
    h_seq   bigint;
    h_hash  bytea;
BEGIN
    IF insightpulse_auth.runtime_role() = 'authenticated' THEN
        c := insightpulse_auth.claims();
        IF c ? 'api_key_id' THEN
            member := NEW.actor_kind = 'api_key'
                      AND NEW.api_key_id = (c ->> 'api_key_id')::uuid
                      AND NEW.tenant_id = (c ->> 'tenant_id')::uuid;
        ELSIF NEW.actor_kind = 'user' AND NEW.user_id = (c ->> 'sub')::uuid THEN
            EXECUTE 'SELECT EXISTS (SELECT 1 FROM insightpulse.org_memberships m
                                     WHERE m.tenant_id = $1 AND m.user_id = $2 AND m.status = ''active'')'
               INTO member USING NEW.tenant_id, NEW.user_id;
        END IF;
        IF NOT coalesce(member, false) THEN
            RAISE EXCEPTION 'an audit entry is written by a member of its tenant, naming itself as the actor'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
    END IF;
    EXECUTE 'INSERT INTO insightpulse.audit_chain_heads (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING'
        USING NEW.tenant_id;
    EXECUTE 'SELECT seq, hash FROM insightpulse.audit_chain_heads WHERE tenant_id = $1 FOR UPDATE'
        INTO h_seq, h_hash USING NEW.tenant_id;
    NEW.seq := h_seq + 1;
    NEW.prev_hash := h_hash;
    NEW.hash := insightpulse.audit_entry_hash(h_hash, h_seq + 1, NEW.tenant_id, NEW.id, NEW.created_at,
                                              NEW.actor_kind, NEW.user_id, NEW.api_key_id,
                                              NEW.actor_reason, NEW.action, NEW.target_type,
                                              NEW.target_id, NEW.diff, NEW.request_id, NEW.pii_digest);
    EXECUTE 'UPDATE insightpulse.audit_chain_heads SET seq = $2, prev_hash = $3, hash = $4 WHERE tenant_id = $1'
        USING NEW.tenant_id, NEW.seq, NEW.prev_hash, NEW.hash;
    RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION insightpulse.audit_actor_emails(p_tenant uuid, p_users uuid[])
    RETURNS TABLE (id uuid, email text)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = insightpulse, pg_temp
AS $$
BEGIN
    IF NOT (insightpulse_auth.runtime_role() = 'service_role'
            OR insightpulse_auth.user_has_permission('audit.read', p_tenant)) THEN
        RETURN;
    END IF;
    RETURN QUERY
        SELECT u.id, u.email
          FROM users u
         WHERE u.id = ANY (p_users)
           AND EXISTS (SELECT 1 FROM audit_logs a WHERE a.user_id = u.id AND a.tenant_id = p_tenant);
END
$$;

CREATE OR REPLACE FUNCTION insightpulse.audit_actor_keys(p_tenant uuid, p_keys uuid[])
    RETURNS TABLE (id uuid, name text, prefix text)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = insightpulse, pg_temp
AS $$
BEGIN
    IF NOT (insightpulse_auth.runtime_role() = 'service_role'
            OR insightpulse_auth.user_has_permission('audit.read', p_tenant)) THEN
        RETURN;
    END IF;
    RETURN QUERY
        SELECT k.id, k.name, k.prefix
          FROM api_keys k
         WHERE k.tenant_id = p_tenant AND k.id = ANY (p_keys);
END
$$;
-- CREATE OR REPLACE took 0012's setting off.
ALTER FUNCTION insightpulse.audit_actor_emails(uuid, uuid[]) SET citus.allow_nested_distributed_execution = on;
ALTER FUNCTION insightpulse.audit_actor_keys(uuid, uuid[]) SET citus.allow_nested_distributed_execution = on;
