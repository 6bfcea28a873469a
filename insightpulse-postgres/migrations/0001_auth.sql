-- Foundation: the SDK's two schemas, the runtime roles, the claim readers
-- and shared trigger functions. Every later migration relies on these.
--
-- Everything the SDK creates lives in its own schemas, so it shares a
-- database with a host application (and the host's own `users` table, its
-- own migrations, Supabase's `auth` schema):
--   insightpulse       tables, types, triggers and the SDK's functions
--                      (its migration bookkeeping too: _migrations)
--   insightpulse_auth  who the caller is: the claim readers and the
--                      membership and permission helpers the policies call
-- Each migration sets the search path to `insightpulse` first; the runtime
-- sets it transaction-locally in every unit of work.
--
-- Roles are cluster-wide, so they are created only when missing (and
-- tolerantly of a concurrent migration creating the same role in another
-- database), and never altered: on Supabase they already exist with the
-- same names and meaning.
-- The migrating role owns the SDK's tables and its SECURITY DEFINER
-- functions (the chain trigger, the membership helpers, the retention and
-- partition paths). Row level security is forced on every table, for the
-- owner too, and no policy names the owner: only a superuser or a role with
-- BYPASSRLS (Supabase's `postgres`, or a role granted it) lets those
-- functions see the rows they guard. Refuse anything else here, before
-- anything is created, rather than fail on the first audited change.
DO $migrator$
BEGIN
    IF NOT (SELECT rolsuper OR rolbypassrls FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        RAISE EXCEPTION 'insightpulse migrations need a superuser or a role with BYPASSRLS; % has neither', current_user
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'ALTER ROLE ' || quote_ident(current_user) || ' BYPASSRLS (as a superuser), or migrate as one';
    END IF;
END
$migrator$;

CREATE SCHEMA IF NOT EXISTS insightpulse;
CREATE SCHEMA IF NOT EXISTS insightpulse_auth;
SET search_path TO insightpulse, pg_temp;

-- pgvector, for the RAG module. A database that already has it (in any
-- schema, e.g. Supabase's `extensions`) keeps it where it is; otherwise it
-- is installed into the SDK's schema.
CREATE EXTENSION IF NOT EXISTS vector SCHEMA insightpulse;

-- ---------------------------------------------------------------------------
-- Runtime roles (cluster-wide).
--
-- Many databases of one cluster may run this file at the same time (one
-- database per test), so each statement tolerates a concurrent migration
-- doing the same: CREATE ROLE racing another CREATE ROLE ends in
-- unique_violation (or duplicate_object), GRANT of a role membership racing
-- another one in unique_violation or "tuple concurrently updated"
-- (internal_error).
-- ---------------------------------------------------------------------------
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'anon') THEN
        BEGIN
            CREATE ROLE anon NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'authenticated') THEN
        BEGIN
            CREATE ROLE authenticated NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'service_role') THEN
        BEGIN
            CREATE ROLE service_role NOLOGIN BYPASSRLS;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
END
$roles$;

-- The migrating role (the pool's login role) must be able to SET ROLE to
-- authenticated and service_role. A superuser can already; a role that is
-- already a member is left alone (re-granting would touch pg_auth_members).
DO $membership$
DECLARE
    r text;
BEGIN
    IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        RETURN;
    END IF;
    FOREACH r IN ARRAY ARRAY['authenticated', 'service_role'] LOOP
        IF NOT pg_catalog.pg_has_role(current_user, r, 'MEMBER') THEN
            BEGIN
                EXECUTE format('GRANT %I TO %I', r, current_user);
            EXCEPTION WHEN duplicate_object OR unique_violation OR internal_error THEN
                NULL;
            END;
        END IF;
    END LOOP;
END
$membership$;

-- ---------------------------------------------------------------------------
-- The claim readers.
--
-- The SDK sets, transaction-locally, role = authenticated and
-- request.jwt.claims to one of
--   user:    {"sub": "<user uuid>"}
--   API key: {"api_key_id": "<uuid>", "tenant_id": "<uuid>",
--             "project_id": "<uuid>"|null, "environment_id": "<uuid>"|null,
--             "permissions": ["code.a", ...]}
-- (the SDK verified the key first; the claims are trusted like a JWT).
-- ---------------------------------------------------------------------------
GRANT USAGE ON SCHEMA insightpulse, insightpulse_auth TO authenticated, service_role;

-- The claims of the current transaction ('{}' when none are set; a
-- transaction-local setting reads as '' once its transaction has ended).
--
-- These readers deliberately carry no `SET search_path`: it would stop the
-- planner from inlining them, and a SQL function that is not inlined is
-- parsed and planned again in every statement that calls it (measured:
-- ~20 µs per call, several calls per policy). They are safe without it:
-- they call only built-ins (resolved in pg_catalog first) and the
-- schema-qualified insightpulse_auth.claims(), and they are not SECURITY DEFINER.
CREATE FUNCTION insightpulse_auth.claims() RETURNS jsonb
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT coalesce(nullif(current_setting('request.jwt.claims', true), '')::jsonb, '{}'::jsonb)
$$;

-- The acting user (read like Supabase's auth.uid()); NULL for API keys and nobody.
CREATE FUNCTION insightpulse_auth.uid() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT (insightpulse_auth.claims() ->> 'sub')::uuid
$$;

-- The acting API key; NULL for users.
CREATE FUNCTION insightpulse_auth.api_key_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT (insightpulse_auth.claims() ->> 'api_key_id')::uuid
$$;

-- The project a project- or environment-scoped API key is limited to; NULL
-- for users and tenant-wide keys.
CREATE FUNCTION insightpulse_auth.scope_project_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT (insightpulse_auth.claims() ->> 'project_id')::uuid
$$;

-- The environment an environment-scoped API key is limited to; NULL otherwise.
CREATE FUNCTION insightpulse_auth.scope_environment_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT (insightpulse_auth.claims() ->> 'environment_id')::uuid
$$;

REVOKE ALL ON FUNCTION insightpulse_auth.claims(), insightpulse_auth.uid(), insightpulse_auth.api_key_id(),
    insightpulse_auth.scope_project_id(), insightpulse_auth.scope_environment_id() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION insightpulse_auth.claims(), insightpulse_auth.uid(), insightpulse_auth.api_key_id(),
    insightpulse_auth.scope_project_id(), insightpulse_auth.scope_environment_id() TO authenticated, service_role;

-- ---------------------------------------------------------------------------
-- Shared trigger functions.
-- ---------------------------------------------------------------------------

-- BEFORE UPDATE: the SDK writes updated_at from its own clock; an update that
-- leaves updated_at untouched (raw SQL) gets now().
CREATE FUNCTION insightpulse.set_updated_at() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    IF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END
$$;
