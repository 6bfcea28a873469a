-- Citus: how the SDK's tables distribute, and what runs on the workers.
--
-- On plain PostgreSQL this file creates functions nobody calls, plus the
-- token lookups and role_permissions.tenant_id, which both use. When the
-- database has the `citus` extension, the migrator runs citus_distribute,
-- citus_sync_workers and citus_restore after the migrations, and the
-- runtime opens every unit of work with insightpulse_auth.act_as.
--
-- The shape (see the README's "Running on Citus"):
-- * Tables with a NOT NULL tenant_id are distributed by it, all co-located,
--   so a tenant's rows of every table live on one node and a tenant-scoped
--   statement is routed to one shard. audit_logs is distributed with its
--   partitions. idempotency_keys (keyed by the caller's scope) is
--   distributed by scope.
-- * The global catalogs and the tables read across tenants (tenants,
--   users, permissions, roles — built-in roles have no tenant —,
--   role_permissions, and the token lookups found by prefix) are reference
--   tables: a copy on every node, so any shard joins them locally.
-- * A policy on a distributed table runs on the shard, on the worker, and
--   Citus accepts no sub-query there and no query of another distributed
--   table from it. So the caller's tenants and grants are derived once, on
--   the coordinator, when the unit of work opens (derive() below), and
--   reach the workers as `SET LOCAL` settings (Citus propagates those, not
--   set_config); the policies read only settings. The two policies whose
--   rule is a query of another table call a function instead.
-- * Migrations run with DDL propagation off (the files before this one
--   predate Citus, and its deparser drops the search path they rely on);
--   citus_distribute() then distributes new tables and pushes every SDK
--   function to the workers. A later migration that alters a table that is
--   already distributed turns propagation on for that statement
--   (`SET LOCAL citus.enable_ddl_propagation = on`).

SET search_path TO insightpulse, pg_temp;

-- The caller's tenants and grants, derived now and kept as `SET LOCAL`
-- settings beside the markers the helpers of 0008 check, so every policy
-- on every node finds them fresh and never derives on a shard. act_as
-- calls it after the claims and the acting tenant are set and before the
-- role is taken. A write to the tables grants come from does not reset
-- them on Citus (the forget triggers are dropped there): the change counts
-- from the next unit of work. A procedure: CALL returns no row, so it sits
-- in a read's message without adding one to the result.
--
-- A user acting in a tenant gets that tenant alone (when a member there),
-- and its grants there, from one query on that tenant's shard (the rule
-- of 0008's load_grants for that case), where all of a user's tenants
-- would need every shard (memberships are distributed by tenant, not by
-- user). Acting in no tenant (listing one's tenants), and for API keys,
-- 0008's loaders derive them as on PostgreSQL.
CREATE PROCEDURE insightpulse_auth.derive()
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = insightpulse, pg_temp
AS $$
DECLARE
    k      text := insightpulse_auth.acting_key();
    c      jsonb := insightpulse_auth.claims();
    acting uuid := nullif(current_setting('insightpulse.tenant_id', true), '')::uuid;
    uid    uuid;
    owner  boolean;
    held   text[];
    t      uuid[] := '{}';
    g      text[] := '{}';
BEGIN
    IF acting IS NOT NULL AND NOT c ? 'api_key_id' THEN
        uid := (c ->> 'sub')::uuid;
        SELECT m.is_owner,
               ARRAY(SELECT DISTINCT acting::text || '/' || coalesce(ur.project_id::text, '*') || '/' || p.code
                       FROM user_roles ur
                       JOIN role_permissions rp ON rp.role_id = ur.role_id
                       JOIN permissions p ON p.id = rp.permission_id
                      WHERE ur.tenant_id = acting AND ur.user_id = uid)
          INTO owner, held
          FROM org_memberships m
         WHERE m.tenant_id = acting AND m.user_id = uid AND m.status = 'active';
        IF FOUND THEN
            t := ARRAY[acting];
            g := CASE WHEN owner THEN ARRAY[acting::text || '/*/*'] ELSE held END;
        END IF;
    ELSE
        t := insightpulse_auth.load_tenants();
        g := insightpulse_auth.load_grants();
    END IF;
    EXECUTE format('SET LOCAL insightpulse.tenant_ids = %L; SET LOCAL insightpulse.tenants_for = %L; '
                   'SET LOCAL insightpulse.grants = %L; SET LOCAL insightpulse.grants_for = %L',
                   t::text, k, g::text, k);
END
$$;
REVOKE ALL ON PROCEDURE insightpulse_auth.derive() FROM PUBLIC;
GRANT EXECUTE ON PROCEDURE insightpulse_auth.derive() TO authenticated, service_role;

-- How a unit of work takes its caller on Citus: the claims, the acting
-- tenant and the search path as `SET LOCAL`s (Citus passes those on to
-- the workers, and not set_config), the caller's tenants and grants
-- derived, then its role taken. Each SET runs through EXECUTE, because
-- Citus 13.2 passes on the text of the whole client message a SET came in
-- (so a SET inside a message of several statements would run all of them
-- again on the worker), and an EXECUTE's text is the statement alone.
--
-- `p_settings` are further transaction-local settings of the coordinator
-- alone (set_config: synchronous_commit, plan_cache_mode, …).
CREATE PROCEDURE insightpulse_auth.act_as(p_claims text, p_tenant text, p_role text,
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
    EXECUTE format('SET LOCAL ROLE %I', p_role);
END
$$;
REVOKE ALL ON PROCEDURE insightpulse_auth.act_as(text, text, text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON PROCEDURE insightpulse_auth.act_as(text, text, text, jsonb) TO authenticated, service_role;

-- Which tenant an API key's or an invitation's token belongs to, by its
-- public lookup prefix: a token finds its tenant here, then its row in that
-- tenant's shard (on Citus, a lookup by prefix alone would visit every
-- shard, and could not lock the row it finds). Written with the key or the
-- invitation, by a member acting in the tenant (the row is of no use
-- without the key's, which its own policy guards); read only by the
-- system. A reference table on Citus.
CREATE TABLE token_lookups (
    prefix     text PRIMARY KEY,
    tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE
);
INSERT INTO token_lookups (prefix, tenant_id)
    SELECT prefix, tenant_id FROM api_keys
    UNION ALL
    SELECT token_prefix, tenant_id FROM invitations;
ALTER TABLE token_lookups ENABLE ROW LEVEL SECURITY;
ALTER TABLE token_lookups FORCE ROW LEVEL SECURITY;
GRANT SELECT, INSERT ON token_lookups TO authenticated, service_role;
CREATE POLICY token_lookups_insert ON token_lookups FOR INSERT TO authenticated
    WITH CHECK (tenant_id = (SELECT insightpulse_auth.tenant_id()));

-- The tables Citus keeps whole on every node although each row has a
-- tenant: global indexes found by something else than the tenant.
CREATE FUNCTION insightpulse.reference_tables_with_tenant_ids() RETURNS regclass[]
    LANGUAGE sql IMMUTABLE
AS $$ SELECT ARRAY['insightpulse.token_lookups'::regclass] $$;

-- The API keys a presented prefix may be (the system's lookup on every
-- request), in two statements so that Citus routes the second to the
-- tenant's shard. PostgreSQL reads them in one (insightpulse-postgres's
-- KEYS_BY_PREFIX); the API-key conformance cases run on both.
CREATE FUNCTION insightpulse.api_keys_by_prefix(p_prefix text) RETURNS SETOF api_keys
    LANGUAGE plpgsql STABLE
    SET search_path = insightpulse, pg_temp
AS $$
DECLARE
    v_tenant uuid;
BEGIN
    SELECT l.tenant_id INTO v_tenant FROM token_lookups l WHERE l.prefix = p_prefix;
    RETURN QUERY SELECT * FROM api_keys k WHERE k.tenant_id = v_tenant AND k.prefix = p_prefix;
END
$$;
REVOKE ALL ON FUNCTION insightpulse.api_keys_by_prefix(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION insightpulse.api_keys_by_prefix(text) TO service_role;

-- A role's permissions carry the role's tenant (NULL for a built-in
-- role's), kept equal to it by a foreign key, so their policies compare
-- a column with the settings like every other tenant table's, instead of
-- asking roles (which a policy on Citus cannot).
ALTER TABLE roles ADD CONSTRAINT roles_tenant_id_key UNIQUE (tenant_id, id);
ALTER TABLE role_permissions ADD COLUMN tenant_id uuid;
UPDATE role_permissions rp SET tenant_id = r.tenant_id FROM roles r WHERE r.id = rp.role_id;
ALTER TABLE role_permissions
    ADD CONSTRAINT role_permissions_tenant_id_role_id_fkey FOREIGN KEY (tenant_id, role_id)
        REFERENCES roles (tenant_id, id) ON DELETE CASCADE;
-- (MATCH SIMPLE checks nothing when tenant_id is NULL: only the seed and
-- the system write such rows; a member's insert must name its tenant.)
DROP POLICY role_permissions_select ON role_permissions;
DROP POLICY role_permissions_insert ON role_permissions;
DROP POLICY role_permissions_delete ON role_permissions;
CREATE POLICY role_permissions_select ON role_permissions FOR SELECT TO authenticated
    USING (tenant_id IS NULL OR tenant_id = (SELECT insightpulse_auth.tenant_id()));
CREATE POLICY role_permissions_insert ON role_permissions FOR INSERT TO authenticated
    WITH CHECK (tenant_id IS NOT NULL AND insightpulse_auth.user_has_permission('role.manage', tenant_id));
CREATE POLICY role_permissions_delete ON role_permissions FOR DELETE TO authenticated
    USING (tenant_id IS NOT NULL AND insightpulse_auth.user_has_permission('role.manage', tenant_id));
-- The rules of the two policies that still read another table (0002's
-- user_roles_insert and users_select), as functions for Citus: same
-- meaning, one call per row. They run on a shard there, and read a
-- reference table (roles: the node's own copy) or the caller's tenants'
-- memberships (is_co_member, a router query per tenant), which
-- Citus allows only with citus.allow_nested_distributed_execution. Its
-- caveat: a nested read on another node does not see what the current
-- transaction wrote there. It can only hide a row, never show one (a
-- membership added in this very unit of work makes the new co-member
-- visible from the next one on); the shards of one tenant are all on one
-- node, so a unit of work acting in one tenant reads its own writes.
CREATE FUNCTION insightpulse_auth.role_assignable(p_role uuid, p_tenant uuid) RETURNS boolean
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = insightpulse, pg_temp
    SET citus.allow_nested_distributed_execution = on
AS $$
BEGIN
    RETURN EXISTS (SELECT 1 FROM roles r
                    WHERE r.id = p_role AND (r.tenant_id IS NULL OR r.tenant_id = p_tenant));
END
$$;

-- Whether `p_user` is a member of a tenant the caller acts in.
CREATE FUNCTION insightpulse_auth.is_co_member(p_user uuid) RETURNS boolean
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = insightpulse, pg_temp
    SET citus.allow_nested_distributed_execution = on
AS $$
BEGIN
    RETURN EXISTS (SELECT 1 FROM org_memberships m
                    WHERE m.tenant_id = ANY (insightpulse_auth.user_tenant_ids())
                      AND m.user_id = p_user);
END
$$;

REVOKE ALL ON FUNCTION insightpulse_auth.role_assignable(uuid, uuid), insightpulse_auth.is_co_member(uuid)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION insightpulse_auth.role_assignable(uuid, uuid), insightpulse_auth.is_co_member(uuid)
    TO authenticated, service_role;

-- The audit report's name lookups read a tenant's rows from inside the
-- report's query, which on Citus is a nested query (router queries to the
-- report's own tenant, whose shards share a node with its trail).
ALTER FUNCTION insightpulse.audit_actor_emails(uuid, uuid[]) SET citus.allow_nested_distributed_execution = on;
ALTER FUNCTION insightpulse.audit_actor_keys(uuid, uuid[]) SET citus.allow_nested_distributed_execution = on;

-- 0008's api_key_level in PL/pgSQL: Citus plans no query with parameters
-- inside a SQL function.
CREATE OR REPLACE FUNCTION insightpulse.api_key_level(p_id uuid) RETURNS TABLE (project_id uuid)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = insightpulse, pg_temp
AS $$
BEGIN
    RETURN QUERY SELECT k.project_id FROM api_keys k
                  WHERE k.tenant_id = insightpulse_auth.tenant_id() AND k.id = p_id;
END
$$;

-- A policy expression as Citus accepts it: `(SELECT insightpulse_auth.f(…))`
-- (the InitPlan form the other policies use on PostgreSQL, evaluated once
-- per statement) becomes the call itself, and `f() IS NULL` becomes
-- `f() IS NOT DISTINCT FROM NULL` (Citus 13 fails to deparse the former
-- in a policy: "unrecognized node type: 117").
CREATE FUNCTION insightpulse.citus_policy_expression(p_expr text) RETURNS text
    LANGUAGE sql IMMUTABLE
AS $$
    SELECT regexp_replace(
               regexp_replace(p_expr, '\(\s*SELECT (insightpulse_auth\.[a-z_]+\([^()]*\)) AS [a-z_]+\)', '\1', 'g'),
               '(insightpulse_auth\.[a-z_]+\(\)) IS NULL', '\1 IS NOT DISTINCT FROM NULL', 'g')
$$;

-- The Citus form of a policy whose rule reads another table (NULL for the
-- others, which citus_policy_expression rewrites).
CREATE FUNCTION insightpulse.citus_policy_rule(p_policy name, OUT using_expr text, OUT check_expr text)
    LANGUAGE sql IMMUTABLE
AS $$
    SELECT u, c FROM (VALUES
        ('users_select', 'id = insightpulse_auth.uid() OR insightpulse_auth.is_co_member(id)', NULL),
        ('user_roles_insert', NULL,
         'insightpulse_auth.user_has_permission(''role.assign'', tenant_id, project_id)
          AND insightpulse_auth.role_assignable(role_id, tenant_id)')
    ) AS v(name, u, c)
    WHERE v.name = p_policy
$$;

-- The audit chain's BEFORE INSERT trigger as it runs on a shard: the same
-- checks and linking as audit_chain_entry (0004), every query dynamic (so
-- Citus plans it at run time, on the worker, against the co-located shard
-- of the tenant's head) and the hash computed in PL/pgSQL.
CREATE FUNCTION insightpulse.audit_chain_entry_citus() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = insightpulse, pg_temp
AS $$
DECLARE
    c       jsonb;
    member  boolean;
    h_seq   bigint;
    h_hash  bytea;
BEGIN
    IF current_setting('role') = 'authenticated' THEN
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
REVOKE ALL ON FUNCTION insightpulse.audit_chain_entry_citus() FROM PUBLIC;

-- Runs `p_command` on every worker, as a change of that node only (Citus
-- refuses DDL on a worker that would propagate) and without checking
-- function bodies; an error on any worker is raised here.
CREATE FUNCTION insightpulse.citus_on_workers(p_command text) RETURNS void
    LANGUAGE plpgsql
AS $$
DECLARE
    r record;
BEGIN
    -- One statement: run_command_on_workers reports only the first one's
    -- outcome of several.
    FOR r IN SELECT * FROM run_command_on_workers('DO ' || quote_literal(format(
                 'BEGIN PERFORM set_config(%L, %L, true), set_config(%L, %L, true); EXECUTE %L; END',
                 'citus.enable_ddl_propagation', 'off', 'check_function_bodies', 'off', p_command))) LOOP
        IF NOT r.success THEN
            RAISE EXCEPTION 'on worker %:%: %', r.nodename, r.nodeport, r.result;
        END IF;
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION insightpulse.citus_on_workers(text) FROM PUBLIC;

-- Step 2 of 3 (and alone after adding a worker): brings the workers up to
-- date with what the shards need there: the runtime roles, the SDK's
-- schemas, and every SDK function with its grants.
CREATE FUNCTION insightpulse.citus_sync_workers() RETURNS void
    LANGUAGE plpgsql
    SET search_path = insightpulse, pg_temp
AS $$
DECLARE
    f regprocedure;
BEGIN
    -- On Citus the caller's tenants and grants are always derived as the
    -- unit of work opens (act_as), so the helpers read the settings alone:
    -- Citus evaluates every function call of a statement that takes no
    -- column on the coordinator before it routes the statement, a CASE's
    -- untaken branch included, so 0008's lazy loader would run (as the
    -- owner, after the caller's writes, which Citus refuses) in every
    -- policy that asks. Without the settings they hold nothing: refused.
    PERFORM set_config('citus.enable_ddl_propagation', 'off', true);
    CREATE OR REPLACE FUNCTION insightpulse_auth.grants() RETURNS text[]
        LANGUAGE sql STABLE
    AS $f$ SELECT coalesce(nullif(current_setting('insightpulse.grants', true), '')::text[], '{}') $f$;
    CREATE OR REPLACE FUNCTION insightpulse_auth.user_tenant_ids() RETURNS uuid[]
        LANGUAGE sql STABLE
    AS $f$ SELECT coalesce(nullif(current_setting('insightpulse.tenant_ids', true), '')::uuid[], '{}') $f$;
    -- The runtime roles act on the workers: Citus connects there as the
    -- current role (the pool's login role stays the only one that logs in
    -- to the coordinator; restrict the workers' pg_hba.conf to it).
    PERFORM citus_on_workers($cmd$
        DO $roles$ BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN CREATE ROLE anon; END IF;
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN CREATE ROLE authenticated; END IF;
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN CREATE ROLE service_role BYPASSRLS; END IF;
            ALTER ROLE authenticated LOGIN;
            ALTER ROLE service_role LOGIN;
        END $roles$;
        CREATE SCHEMA IF NOT EXISTS insightpulse;
        CREATE SCHEMA IF NOT EXISTS insightpulse_auth;
        GRANT USAGE ON SCHEMA insightpulse, insightpulse_auth TO authenticated, service_role $cmd$);
    -- Every SDK function, as the coordinator has it, with its grants, on
    -- every worker (a migration replaced some while propagation was off).
    -- Bodies are not checked there (SQL functions call each other in any
    -- order). pgvector's own functions (installed into this schema when the
    -- database had no pgvector) are the extension's business. A worker
    -- added later gets them when this runs again.
    PERFORM set_config('search_path', 'pg_catalog', true);
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
              WHERE p.pronamespace IN ('insightpulse'::regnamespace, 'insightpulse_auth'::regnamespace)
                AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.objid = p.oid AND e.deptype = 'e')
              ORDER BY p.oid LOOP
        PERFORM insightpulse.citus_on_workers(concat_ws('; ',
            pg_get_functiondef(f),
            (SELECT format('REVOKE ALL ON %s %s FROM PUBLIC',
                           CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END, f)
               FROM pg_proc p WHERE p.oid = f AND p.proacl IS NOT NULL),
            (SELECT string_agg(format('GRANT EXECUTE ON %s %s TO %s',
                                      CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END,
                                      f, CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END), '; ')
               FROM pg_proc p, aclexplode(p.proacl) a
              WHERE p.oid = f AND a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner)));
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION insightpulse.citus_sync_workers() FROM PUBLIC;

-- 0004's partition maintenance, now also right on Citus: a new partition
-- gets the row triggers the default partition has of its own (none on
-- PostgreSQL, where a partition inherits its parent's; on Citus the audit
-- chain's and the immutability trigger, see citus_distribute).
CREATE OR REPLACE FUNCTION insightpulse.audit_ensure_partitions(p_from timestamptz, p_months integer)
    RETURNS SETOF text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = insightpulse, pg_temp
AS $$
DECLARE
    v_month timestamp;
    v_lo    timestamptz;
    v_hi    timestamptz;
    v_name  text;
    v_def   text;
BEGIN
    PERFORM set_config('citus.enable_unsafe_triggers', 'on', true);
    FOR i IN 0 .. p_months LOOP
        v_month := date_trunc('month', p_from AT TIME ZONE 'UTC') + make_interval(months => i);
        v_lo := v_month AT TIME ZONE 'UTC';
        v_hi := (v_month + interval '1 month') AT TIME ZONE 'UTC';
        v_name := 'audit_logs_' || to_char(v_month, 'YYYY_MM');
        CONTINUE WHEN to_regclass(v_name) IS NOT NULL;
        EXECUTE format('CREATE TABLE %I (LIKE audit_logs INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', v_name);
        IF EXISTS (SELECT 1 FROM audit_logs_default WHERE created_at >= v_lo AND created_at < v_hi) THEN
            EXECUTE format('INSERT INTO %I SELECT * FROM audit_logs_default WHERE created_at >= $1 AND created_at < $2', v_name)
                USING v_lo, v_hi;
            ALTER TABLE audit_logs_default DISABLE TRIGGER audit_logs_immutable;
            DELETE FROM audit_logs_default WHERE created_at >= v_lo AND created_at < v_hi;
            ALTER TABLE audit_logs_default ENABLE TRIGGER audit_logs_immutable;
        END IF;
        EXECUTE format('ALTER TABLE audit_logs ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                       v_name, v_lo, v_hi);
        EXECUTE format('CREATE TRIGGER audit_logs_no_truncate BEFORE TRUNCATE ON %I
                        FOR EACH STATEMENT EXECUTE FUNCTION insightpulse.audit_refuse_truncate()', v_name);
        FOR v_def IN SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t
                      WHERE t.tgrelid = 'audit_logs_default'::regclass AND NOT t.tgisinternal
                        AND t.tgparentid = 0 AND (t.tgtype & 1) = 1 LOOP
            EXECUTE regexp_replace(v_def, ' ON \S+ ', format(' ON %I ', v_name));
        END LOOP;
        RETURN NEXT v_name;
    END LOOP;
END
$$;

-- What citus_distribute took off the tables it distributed, to be put back
-- by citus_restore once the workers have the functions it names. A table,
-- so that a migrator stopped between the steps finishes them next time.
CREATE TABLE _citus_restore (
    seq  integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('foreign key', 'trigger', 'policy')),
    def  text NOT NULL
);
REVOKE ALL ON _citus_restore FROM PUBLIC;

-- Step 1 of 3 (each its own transaction: run_command_on_workers commits on
-- the workers on its own, and Citus's connections see only what is
-- committed): distributes the SDK's tables that are not distributed yet.
-- Their foreign keys, triggers and policies come off first (Citus
-- distributes no table with a key to a local table, and creates triggers
-- and policies on the shards, which need the functions of step 2), saved
-- in _citus_restore, the policies in Citus's form and the audit chain
-- trigger as its Citus twin. Each table gets citus.shard_count shards
-- (Citus's default is 32; a database setting changes it). Returns how
-- many tables it distributed.
CREATE FUNCTION insightpulse.citus_distribute() RETURNS integer
    LANGUAGE plpgsql
    SET search_path = insightpulse, pg_temp
AS $$
DECLARE
    pending   regclass[];
    relations regclass[];
    r         record;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RAISE EXCEPTION 'insightpulse.citus_distribute needs the citus extension'
            USING ERRCODE = 'feature_not_supported';
    END IF;
    PERFORM set_config('citus.enable_ddl_propagation', 'on', true),
            set_config('citus.enable_unsafe_triggers', 'on', true),
            set_config('citus.multi_shard_modify_mode', 'sequential', true);

    SELECT coalesce(array_agg(c.oid::regclass ORDER BY c.relname), '{}') INTO pending
      FROM pg_class c
     WHERE c.relnamespace = 'insightpulse'::regnamespace
       AND c.relkind IN ('r', 'p') AND NOT c.relispartition
       AND c.relname NOT LIKE '\_%'
       AND NOT EXISTS (SELECT 1 FROM pg_dist_partition d WHERE d.logicalrelid = c.oid);
    IF cardinality(pending) = 0 THEN
        RETURN 0;
    END IF;
    -- The tables and their partitions.
    SELECT pending || coalesce(array_agg(i.inhrelid::regclass), '{}') INTO relations
      FROM pg_inherits i WHERE i.inhparent = ANY (pending);

    INSERT INTO _citus_restore (kind, def)
        SELECT 'foreign key', format('ALTER TABLE %s ADD CONSTRAINT %I %s', k.conrelid::regclass, k.conname,
                                     pg_get_constraintdef(k.oid))
          FROM pg_constraint k
         WHERE k.contype = 'f' AND k.conparentid = 0
           AND (k.conrelid = ANY (relations) OR k.confrelid = ANY (relations));
    -- A row trigger of a partitioned table goes on each partition instead
    -- (on the parent, Citus 13.2 crashes the worker at the first insert),
    -- the audit chain's as its Citus twin. The forget triggers stay off:
    -- they would reset the derived sets on a worker's session, where they
    -- cannot be derived again.
    INSERT INTO _citus_restore (kind, def)
        SELECT 'trigger', regexp_replace(replace(pg_get_triggerdef(t.oid),
                                                 'audit_chain_entry()', 'audit_chain_entry_citus()'),
                                         ' ON \S+ ', ' ON ' || target.rel::text || ' ')
          FROM pg_trigger t
          JOIN pg_class c ON c.oid = t.tgrelid
          CROSS JOIN LATERAL (
              SELECT t.tgrelid::regclass AS rel WHERE NOT (c.relkind = 'p' AND (t.tgtype & 1) = 1)
              UNION ALL
              SELECT i.inhrelid::regclass FROM pg_inherits i
               WHERE i.inhparent = t.tgrelid AND c.relkind = 'p' AND (t.tgtype & 1) = 1) AS target
         WHERE t.tgrelid = ANY (relations) AND NOT t.tgisinternal AND t.tgparentid = 0
           AND t.tgname NOT LIKE '%\_forget\_grants';
    INSERT INTO _citus_restore (kind, def)
        SELECT 'policy', format('CREATE POLICY %I ON %I.%I AS %s FOR %s TO %s %s %s',
                                p.policyname, p.schemaname, p.tablename, p.permissive, p.cmd,
                                array_to_string(p.roles, ', '),
                                'USING (' || coalesce(rule.using_expr, citus_policy_expression(p.qual)) || ')',
                                'WITH CHECK (' || coalesce(rule.check_expr, citus_policy_expression(p.with_check)) || ')')
          FROM pg_policies p
          LEFT JOIN LATERAL citus_policy_rule(p.policyname) rule ON true
         WHERE format('%I.%I', p.schemaname, p.tablename)::regclass = ANY (relations);

    FOR r IN SELECT k.conrelid::regclass AS tbl, k.conname FROM pg_constraint k
              WHERE k.contype = 'f' AND k.conparentid = 0
                AND (k.conrelid = ANY (relations) OR k.confrelid = ANY (relations)) LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', r.tbl, r.conname);
    END LOOP;
    FOR r IN SELECT t.tgrelid::regclass AS tbl, t.tgname FROM pg_trigger t
              WHERE t.tgrelid = ANY (relations) AND NOT t.tgisinternal AND t.tgparentid = 0 LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', r.tgname, r.tbl);
    END LOOP;
    FOR r IN SELECT p.policyname, format('%I.%I', p.schemaname, p.tablename) AS tbl FROM pg_policies p
              WHERE format('%I.%I', p.schemaname, p.tablename)::regclass = ANY (relations) LOOP
        EXECUTE format('DROP POLICY %I ON %s', r.policyname, r.tbl);
    END LOOP;

    -- By tenant when every row has one (co-located: Citus's default for
    -- tables of one distribution type and shard count); otherwise, and for
    -- reference_tables_with_tenant_ids(), a reference table. The
    -- idempotency keys by their scope.
    FOR r IN SELECT c.oid::regclass AS tbl,
                    EXISTS (SELECT 1 FROM pg_attribute a
                             WHERE a.attrelid = c.oid AND a.attname = 'tenant_id'
                               AND a.attnotnull AND NOT a.attisdropped) AS by_tenant
               FROM pg_class c WHERE c.oid = ANY (pending)
              ORDER BY c.relname LOOP
        IF r.tbl = 'insightpulse.idempotency_keys'::regclass THEN
            PERFORM create_distributed_table(r.tbl, 'scope', colocate_with => 'none');
        ELSIF r.by_tenant AND r.tbl <> ALL (reference_tables_with_tenant_ids()) THEN
            PERFORM create_distributed_table(r.tbl, 'tenant_id');
        ELSE
            PERFORM create_reference_table(r.tbl);
        END IF;
    END LOOP;
    -- Writing a row that references a reference table, Citus locks that
    -- table's copies as the writer, which needs a write privilege there:
    -- a member adding a role's permission locks the permission catalog.
    -- Its rows stay unchangeable (row security, no UPDATE policy).
    GRANT UPDATE ON permissions TO authenticated;
    -- The coordinator draws an identity column's next value itself, as the
    -- writer (PostgreSQL asks no privilege for it).
    GRANT USAGE ON ALL SEQUENCES IN SCHEMA insightpulse TO authenticated, service_role;
    RETURN cardinality(pending);
END
$$;
REVOKE ALL ON FUNCTION insightpulse.citus_distribute() FROM PUBLIC;

-- Step 3 of 3: puts back what citus_distribute took off.
CREATE FUNCTION insightpulse.citus_restore() RETURNS integer
    LANGUAGE plpgsql
    SET search_path = insightpulse, pg_temp
AS $$
DECLARE
    r record;
    n integer := 0;
BEGIN
    PERFORM set_config('citus.enable_ddl_propagation', 'on', true),
            set_config('citus.enable_unsafe_triggers', 'on', true),
            set_config('citus.multi_shard_modify_mode', 'sequential', true);
    FOR r IN SELECT * FROM _citus_restore
              ORDER BY CASE kind WHEN 'foreign key' THEN 1 WHEN 'trigger' THEN 2 ELSE 3 END, seq LOOP
        EXECUTE r.def;
        DELETE FROM _citus_restore WHERE seq = r.seq;
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;
REVOKE ALL ON FUNCTION insightpulse.citus_restore() FROM PUBLIC;
