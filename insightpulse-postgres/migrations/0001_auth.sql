-- Foundation: extensions, the runtime roles, the `auth` schema and shared
-- trigger functions. Every later migration relies on these.
--
-- Roles are cluster-wide, so they are created idempotently (and tolerantly of
-- a concurrent migration creating the same role in another database).
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE EXTENSION IF NOT EXISTS vector;

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
-- The auth schema and the claim readers.
--
-- The SDK sets, transaction-locally, role = authenticated and
-- request.jwt.claims to one of
--   user:    {"sub": "<user uuid>"}
--   API key: {"api_key_id": "<uuid>", "tenant_id": "<uuid>",
--             "project_id": "<uuid>"|null, "environment_id": "<uuid>"|null,
--             "permissions": ["code.a", ...]}
-- (the SDK verified the key first; the claims are trusted like a JWT).
-- ---------------------------------------------------------------------------
CREATE SCHEMA IF NOT EXISTS auth;
GRANT USAGE ON SCHEMA auth, public TO anon, authenticated, service_role;

-- The claims of the current transaction ('{}' when none are set; a
-- transaction-local setting reads as '' once its transaction has ended).
--
-- These readers deliberately carry no `SET search_path`: it would stop the
-- planner from inlining them, and a SQL function that is not inlined is
-- parsed and planned again in every statement that calls it (measured:
-- ~20 µs per call, several calls per policy). They are safe without it:
-- they call only built-ins (resolved in pg_catalog first) and the
-- schema-qualified auth.claims(), and they are not SECURITY DEFINER.
CREATE OR REPLACE FUNCTION auth.claims() RETURNS jsonb
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT coalesce(nullif(current_setting('request.jwt.claims', true), '')::jsonb, '{}'::jsonb)
$$;

-- The acting user (Supabase-compatible); NULL for API keys and nobody.
CREATE OR REPLACE FUNCTION auth.uid() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT (auth.claims() ->> 'sub')::uuid
$$;

-- The acting API key; NULL for users.
CREATE OR REPLACE FUNCTION auth.api_key_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT (auth.claims() ->> 'api_key_id')::uuid
$$;

-- The project a project- or environment-scoped API key is limited to; NULL
-- for users and tenant-wide keys.
CREATE OR REPLACE FUNCTION auth.scope_project_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT (auth.claims() ->> 'project_id')::uuid
$$;

-- The environment an environment-scoped API key is limited to; NULL otherwise.
CREATE OR REPLACE FUNCTION auth.scope_environment_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT (auth.claims() ->> 'environment_id')::uuid
$$;

REVOKE ALL ON FUNCTION auth.claims(), auth.uid(), auth.api_key_id(),
    auth.scope_project_id(), auth.scope_environment_id() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION auth.claims(), auth.uid(), auth.api_key_id(),
    auth.scope_project_id(), auth.scope_environment_id() TO authenticated, service_role;

-- ---------------------------------------------------------------------------
-- Shared trigger functions.
-- ---------------------------------------------------------------------------

-- BEFORE UPDATE: the SDK writes updated_at from its own clock; an update that
-- leaves updated_at untouched (raw SQL) gets now().
CREATE OR REPLACE FUNCTION public.set_updated_at() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    IF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END
$$;
