-- The owner rule's error names its constraint in its message as well.
--
-- Why: on Citus the rule's trigger runs on a worker, and the coordinator
-- relays the worker's error without its constraint field, so the SDK read
-- no rule from it and answered `Validation` where PostgreSQL answers
-- `InvalidState` (src/error.rs reads a relayed error's constraint from
-- `constraint "…"` in its message, as PostgreSQL words its own).

SET search_path TO insightpulse, pg_temp;

CREATE OR REPLACE FUNCTION insightpulse.check_tenant_has_active_owner() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = insightpulse, pg_temp
AS $$
BEGIN
    IF NOT (OLD.is_owner AND OLD.status = 'active') THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.tenant_id = OLD.tenant_id
       AND NEW.is_owner AND NEW.status = 'active' THEN
        RETURN NULL;
    END IF;
    PERFORM 1 FROM tenants t WHERE t.id = OLD.tenant_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF NOT EXISTS (SELECT 1
                     FROM org_memberships m
                    WHERE m.tenant_id = OLD.tenant_id
                      AND m.is_owner
                      AND m.status = 'active') THEN
        RAISE EXCEPTION 'tenant % would be left without an active owner (constraint "tenant_has_active_owner")',
                        OLD.tenant_id
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'tenant_has_active_owner',
                  SCHEMA = 'insightpulse',
                  TABLE = 'org_memberships';
    END IF;
    RETURN NULL;
END
$$;
