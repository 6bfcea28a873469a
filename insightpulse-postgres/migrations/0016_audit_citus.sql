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
-- * The two functions run with the caller's rights there, and the system
--   (the only role that may call them) gets exactly what they did with the
--   owner's: UPDATE of the personal fields and DELETE of entries, UPDATE
--   of a chain's anchor. audit_refuse_change still allows no more than
--   before (an update only clears personal fields, a delete only reaches
--   entries at or below the anchor).
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
    ALTER FUNCTION insightpulse.audit_erase_personal(uuid, uuid, timestamptz, integer) SECURITY INVOKER;
END
$do$;
