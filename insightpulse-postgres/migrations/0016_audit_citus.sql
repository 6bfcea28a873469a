-- On Citus, retention and erasure change the audit trail as the system
-- itself (service_role), not through the owner's rights.
--
-- Why: both run as the system and write the tenant's other tables in the
-- same transaction (erasure: memberships, identities, invitations, then an
-- audit entry per tenant). Citus picks a worker connection by the current
-- user, and refuses a second user's write to a shard group one user has
-- written in the transaction ("cannot perform query on placements that
-- were modified in this transaction by a different user"): the owner's
-- writes inside audit_purge and audit_erase_personal (SECURITY DEFINER)
-- could not follow the system's.
--
-- Rules:
-- * Only on Citus; plain PostgreSQL keeps 0004's definer functions.
-- * The system gets exactly what the two functions did with the owner's
--   rights: UPDATE of the personal fields and DELETE of entries, UPDATE of
--   a chain's anchor. audit_refuse_change still allows no more than before
--   (an update only clears personal fields, a delete only reaches entries
--   at or below the anchor), and only the system could call the functions.
-- * audit_erase_personal collects its victims in a loop, so that Citus
--   routes each update to one shard (a limited sub-select would be an
--   intermediate result read back by the coordinator), and
--   audit_refuse_change reads the anchor through EXECUTE: on a worker a
--   trigger's static query of a distributed table is planned as a
--   distributed one, which Citus refuses from a shard (the chain twin of
--   0012 does the same).
-- * Grants on a table that is already distributed must reach its shards:
--   propagation is on for them.

SET search_path TO insightpulse, pg_temp;

DO $do$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RETURN;
    END IF;
    PERFORM set_config('citus.enable_ddl_propagation', 'on', true);
    GRANT UPDATE (ip, user_agent, pii_salt), DELETE ON insightpulse.audit_logs TO service_role;
    GRANT UPDATE (anchor_seq, anchor_hash) ON insightpulse.audit_chain_heads TO service_role;
    PERFORM set_config('citus.enable_ddl_propagation', 'off', true);

    ALTER FUNCTION insightpulse.audit_purge(uuid, timestamptz, integer) SECURITY INVOKER;

    CREATE OR REPLACE FUNCTION insightpulse.audit_erase_personal(
        p_user uuid, p_tenant uuid, p_before timestamptz, p_limit integer)
        RETURNS bigint
        LANGUAGE plpgsql
        SET search_path = insightpulse, pg_temp
    AS $$
    DECLARE
        r record;
        n bigint := 0;
        k bigint;
    BEGIN
        FOR r IN SELECT a.tenant_id, a.created_at, a.seq
                   FROM audit_logs a
                  WHERE (p_user IS NULL OR a.user_id = p_user)
                    AND (p_tenant IS NULL OR a.tenant_id = p_tenant)
                    AND (p_before IS NULL OR a.created_at < p_before)
                    AND (a.ip IS NOT NULL OR a.user_agent IS NOT NULL OR a.pii_salt IS NOT NULL)
                  LIMIT p_limit LOOP
            UPDATE audit_logs a SET ip = NULL, user_agent = NULL, pii_salt = NULL
             WHERE a.tenant_id = r.tenant_id AND a.created_at = r.created_at AND a.seq = r.seq;
            GET DIAGNOSTICS k = ROW_COUNT;
            n := n + k;
        END LOOP;
        RETURN n;
    END
    $$;

    CREATE OR REPLACE FUNCTION insightpulse.audit_refuse_change() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER
        SET search_path = insightpulse, pg_temp
    AS $$
    DECLARE
        v_anchor bigint;
    BEGIN
        IF TG_OP = 'DELETE' THEN
            EXECUTE 'SELECT h.anchor_seq FROM insightpulse.audit_chain_heads h WHERE h.tenant_id = $1'
               INTO v_anchor USING OLD.tenant_id;
            IF OLD.seq <= v_anchor THEN
                RETURN OLD;
            END IF;
        ELSIF NEW.ip IS NULL AND NEW.user_agent IS NULL AND NEW.pii_salt IS NULL
          AND (NEW.tenant_id, NEW.created_at, NEW.seq, NEW.id, NEW.actor_kind, NEW.user_id,
               NEW.api_key_id, NEW.actor_reason, NEW.action, NEW.target_type, NEW.target_id,
               NEW.diff, NEW.request_id, NEW.pii_digest, NEW.prev_hash, NEW.hash)
              IS NOT DISTINCT FROM
              (OLD.tenant_id, OLD.created_at, OLD.seq, OLD.id, OLD.actor_kind, OLD.user_id,
               OLD.api_key_id, OLD.actor_reason, OLD.action, OLD.target_type, OLD.target_id,
               OLD.diff, OLD.request_id, OLD.pii_digest, OLD.prev_hash, OLD.hash) THEN
            RETURN NEW;
        END IF;
        RAISE EXCEPTION 'audit entries are immutable (% refused)', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END
    $$;
END
$do$;
