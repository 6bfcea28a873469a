-- citus_sync_workers changes the runtime roles on the workers only when
-- they cannot log in yet.
--
-- Why: roles belong to the whole cluster, not to one database. Two
-- migrators of two databases on one cluster (two tenants' deployments, or
-- two test databases) ran `ALTER ROLE … LOGIN` on the same role at once,
-- and one of them failed with "tuple concurrently updated". A role that
-- already logs in is now left alone.

SET search_path TO insightpulse, pg_temp;

CREATE OR REPLACE FUNCTION insightpulse.citus_sync_workers() RETURNS void
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
            IF NOT (SELECT rolcanlogin FROM pg_roles WHERE rolname = 'authenticated') THEN
                ALTER ROLE authenticated LOGIN;
            END IF;
            IF NOT (SELECT rolcanlogin FROM pg_roles WHERE rolname = 'service_role') THEN
                ALTER ROLE service_role LOGIN;
            END IF;
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
