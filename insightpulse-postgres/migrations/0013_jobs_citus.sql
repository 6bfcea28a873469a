-- The job queue's claim on Citus (the migrator creates it everywhere;
-- src/jobs.rs calls it only on a Citus cluster).
--
-- Why a second form: on Citus `jobs` is distributed by tenant_id, and a
-- claim reaches across tenants. Citus runs a statement across shards only
-- without row locks, recursion or joins it cannot push down: the claim of
-- 0009 (an UPDATE joined to a `FOR UPDATE SKIP LOCKED` sub-select, a
-- recursive walk of the tenants) cannot be planned.
--
-- Rules (those of 0009, kept statement for statement):
-- * Cross-shard statements only read, or update by a plain filter; every
--   row lock is taken by a statement routed to one tenant's shard.
-- * Same result as claim_jobs: expired leases first, up to p_limit tenants
--   with waiting jobs from a random point of the uuid ring, each tenant's
--   share within its limit, the batch round-robin across tenants.
-- * The per-tenant advisory lock is taken on the coordinator, where every
--   claimer runs.

SET search_path TO insightpulse, pg_temp;

CREATE FUNCTION insightpulse.claim_jobs_citus(
    p_kind text, p_worker text, p_limit integer, p_tenant_limit integer,
    p_now timestamptz, p_lease_until timestamptz)
    RETURNS SETOF jobs
    LANGUAGE plpgsql VOLATILE
    SET search_path = insightpulse, pg_temp
AS $$
DECLARE
    v_start   uuid := gen_random_uuid();
    v_tenants uuid[] := '{}';
    v_share   integer;
    v_take    integer;
    v_t       uuid;
    -- The candidates, locked: tenant, id, priority, run_at, rank in tenant.
    c_tenant  uuid[] := '{}';
    c_id      uuid[] := '{}';
    c_pri     smallint[] := '{}';
    c_run     timestamptz[] := '{}';
    c_rank    integer[] := '{}';
    r         record;
BEGIN
    -- 1. Expired leases: a multi-shard update by a plain filter (a claimer
    --    meeting another's row waits for it, then skips it: it is no longer
    --    running).
    UPDATE jobs j
       SET state = CASE WHEN j.attempts >= j.max_attempts THEN 'dead'::job_state ELSE 'pending'::job_state END,
           finished_at = CASE WHEN j.attempts >= j.max_attempts THEN p_now END,
           run_at = p_now, lease_until = NULL, locked_by = NULL,
           last_error = 'the lease expired before the job finished', updated_at = p_now
     WHERE j.kind = p_kind AND j.state = 'running' AND j.lease_until < p_now;

    -- 2. Tenants with waiting jobs, from v_start round the ring (each shard
    --    sends its first p_limit). Read in a loop: a sub-select of a
    --    distributed table would be an intermediate result.
    FOR r IN SELECT w.tenant_id FROM jobs w
              WHERE w.kind = p_kind AND w.state = 'pending'
              GROUP BY w.tenant_id
              ORDER BY w.tenant_id < v_start, w.tenant_id
              LIMIT p_limit LOOP
        v_tenants := v_tenants || r.tenant_id;
    END LOOP;
    IF p_tenant_limit IS NOT NULL THEN
        SELECT array(SELECT t FROM unnest(v_tenants) WITH ORDINALITY AS u(t, n)
                      WHERE pg_try_advisory_xact_lock(hashtext('insightpulse.jobs'),
                                                      hashtext(p_kind || t::text))
                      ORDER BY n)
          INTO v_tenants;
    END IF;
    IF cardinality(v_tenants) = 0 THEN
        RETURN;
    END IF;
    v_share := ceil(p_limit::numeric / cardinality(v_tenants));

    -- 3. Each tenant's next jobs, locked on its shard.
    FOREACH v_t IN ARRAY v_tenants LOOP
        v_take := v_share;
        IF p_tenant_limit IS NOT NULL THEN
            SELECT least(v_share, greatest(0, p_tenant_limit - count(*)))::integer INTO v_take
              FROM jobs b
             WHERE b.tenant_id = v_t AND b.kind = p_kind AND b.state = 'running';
        END IF;
        CONTINUE WHEN v_take = 0;
        FOR r IN SELECT j.id, j.priority, j.run_at
                   FROM jobs j
                  WHERE j.tenant_id = v_t AND j.kind = p_kind AND j.state = 'pending'
                    AND j.run_at <= p_now
                  ORDER BY j.priority, j.run_at, j.id
                  LIMIT v_take
                  FOR UPDATE SKIP LOCKED LOOP
            c_tenant := c_tenant || v_t;
            c_id := c_id || r.id;
            c_pri := c_pri || r.priority;
            c_run := c_run || r.run_at;
            c_rank := c_rank || cardinality(c_id);
        END LOOP;
    END LOOP;

    -- 4. The batch round-robin (every tenant's first job before anyone's
    --    second), then one update per tenant on its shard.
    FOR r IN SELECT p.tenant_id, array_agg(p.id) AS ids
               FROM (SELECT c.tenant_id, c.id
                       FROM (SELECT u.*, row_number() OVER (PARTITION BY u.tenant_id
                                                            ORDER BY u.rank) AS rn
                               FROM unnest(c_tenant, c_id, c_pri, c_run, c_rank)
                                    AS u(tenant_id, id, priority, run_at, rank)) c
                      ORDER BY c.rn, c.priority, c.run_at, c.id
                      LIMIT p_limit) p
              GROUP BY p.tenant_id LOOP
        RETURN QUERY
        UPDATE jobs j
           SET state = 'running', attempts = j.attempts + 1, lease_until = p_lease_until,
               locked_by = p_worker, updated_at = p_now
         WHERE j.tenant_id = r.tenant_id AND j.id = ANY (r.ids)
        RETURNING j.*;
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION insightpulse.claim_jobs_citus(text, text, integer, integer, timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION insightpulse.claim_jobs_citus(text, text, integer, integer, timestamptz, timestamptz) TO service_role;
