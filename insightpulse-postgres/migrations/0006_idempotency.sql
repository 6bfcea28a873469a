-- Idempotency keys of create calls (see insightpulse-core/src/idempotency.rs).
--
-- A key belongs to the principal that used it (`scope`: 'user:<uuid>',
-- 'api_key:<uuid>', 'system', or 'sign_up:<email>' for a sign-up), and is
-- claimed in the same transaction as the row it makes: a second request
-- with the same key waits on the first one's row lock and then replays it.
-- Keys older than the 24-hour window are replaced when reused.

SET search_path TO insightpulse, pg_temp;

CREATE TABLE idempotency_keys (
    scope       text NOT NULL,
    key         text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    operation   text NOT NULL,
    fingerprint bytea NOT NULL CHECK (length(fingerprint) = 32),
    resource_id uuid NOT NULL,
    created_at  timestamptz NOT NULL,
    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (scope, key)
);
-- Clean-up of expired keys.
CREATE INDEX idx_idempotency_keys_created ON idempotency_keys (created_at);

-- The scope of the caller's keys, from its claims (as Rust's
-- idempotency::scope formats it).
CREATE FUNCTION insightpulse_auth.idempotency_scope() RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN insightpulse_auth.claims() ? 'api_key_id'
                THEN 'api_key:' || (insightpulse_auth.claims() ->> 'api_key_id')
                ELSE 'user:' || (insightpulse_auth.claims() ->> 'sub')
           END
$$;
REVOKE ALL ON FUNCTION insightpulse_auth.idempotency_scope() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION insightpulse_auth.idempotency_scope() TO authenticated, service_role;

ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE idempotency_keys FORCE ROW LEVEL SECURITY;

-- A principal sees and claims only its own keys (the system's and
-- sign-ups' are written by service_role).
CREATE POLICY idempotency_keys_own ON idempotency_keys FOR ALL TO authenticated
    USING (scope = (SELECT insightpulse_auth.idempotency_scope()))
    WITH CHECK (scope = (SELECT insightpulse_auth.idempotency_scope()));

GRANT SELECT, INSERT, UPDATE ON idempotency_keys TO authenticated;
GRANT ALL ON idempotency_keys TO service_role;
