-- Module 4 (audit half): the audit trail.
--
-- Rules (see insightpulse-core/src/audit/):
-- * Append-only. The runtime roles may only INSERT and SELECT; a trigger
--   refuses UPDATE and DELETE for every role, the owner included, except
--   the two narrow system paths below (each a SECURITY DEFINER function
--   only service_role may call): the retention purge of a chain's oldest
--   entries, and the erasure of an entry's personal fields (ip, user agent).
-- * Hash-chained per tenant. A BEFORE INSERT trigger serialises a tenant's
--   writers on its row of audit_chain_heads and sets seq, prev_hash and
--   hash, whatever the inserter sent. insightpulse.audit_entry_hash is the SQL twin of
--   insightpulse-core/src/audit/chain.rs::entry_hash; the Rust verifier
--   recomputes every hash, so the two must agree byte for byte.
-- * The audit trail outlives its tenant: no foreign key to tenants, so
--   deleting a tenant (itself audited) keeps its trail for the system.
-- * Partitioned by month on created_at. The primary key leads with
--   tenant_id and holds the partition key; insightpulse.audit_ensure_partitions creates
--   upcoming months, and rows of months without a partition land in the
--   default partition (never lost) until their month is created.

SET search_path TO insightpulse, pg_temp;


CREATE TYPE audit_actor_kind AS ENUM ('user', 'api_key', 'system');

CREATE TABLE audit_logs (
    tenant_id    uuid NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    seq          bigint NOT NULL,
    id           uuid NOT NULL DEFAULT gen_random_uuid(),
    actor_kind   audit_actor_kind NOT NULL,
    user_id      uuid,                -- the acting user (the seed's column name)
    api_key_id   uuid,                -- the acting API key
    actor_reason text,                -- the system's stated reason
    action       text NOT NULL CHECK (action ~ '^[a-z][a-z0-9_.-]{0,99}$'),
    target_type  text NOT NULL CHECK (target_type ~ '^[a-z][a-z0-9_.-]{0,63}$'),
    target_id    text CHECK (length(target_id) BETWEEN 1 AND 200),
    diff         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(diff) = 'object'),
    ip           inet,
    user_agent   text,
    request_id   text,
    pii_salt     bytea,               -- erased with ip and user_agent
    pii_digest   bytea,               -- sha256(salt || ip || 0 || user_agent), kept
    prev_hash    bytea NOT NULL,
    hash         bytea NOT NULL,
    -- The seed's idx_audit_logs_tenant_created (tenant_id, created_at), made
    -- the primary key with the chain position (unique per tenant).
    CONSTRAINT idx_audit_logs_tenant_created PRIMARY KEY (tenant_id, created_at, seq),
    CONSTRAINT audit_logs_actor_check CHECK (
        (actor_kind = 'user' AND user_id IS NOT NULL AND api_key_id IS NULL AND actor_reason IS NULL)
        OR (actor_kind = 'api_key' AND api_key_id IS NOT NULL AND user_id IS NULL AND actor_reason IS NULL)
        OR (actor_kind = 'system' AND actor_reason IS NOT NULL AND user_id IS NULL AND api_key_id IS NULL))
) PARTITION BY RANGE (created_at);

CREATE TABLE audit_logs_default PARTITION OF audit_logs DEFAULT;

-- Verification and purges walk a chain in order.
CREATE INDEX idx_audit_logs_tenant_seq ON audit_logs (tenant_id, seq);
-- Erasure finds a user's entries across tenants; the report finds whether
-- a user acts in a tenant's trail.
CREATE INDEX idx_audit_logs_user ON audit_logs (user_id, tenant_id) WHERE user_id IS NOT NULL;

-- One row per chain: the last position and hash (and the one before, so
-- that linking is one UPDATE), and the anchor a purge left. Every append
-- updates its tenant's row: the low fillfactor keeps those updates HOT.
CREATE TABLE audit_chain_heads (
    tenant_id   uuid PRIMARY KEY,
    seq         bigint NOT NULL DEFAULT 0,
    hash        bytea NOT NULL DEFAULT decode(repeat('00', 32), 'hex'),
    prev_hash   bytea,
    anchor_seq  bigint NOT NULL DEFAULT 0,
    anchor_hash bytea NOT NULL DEFAULT decode(repeat('00', 32), 'hex')
) WITH (fillfactor = 20);

-- ---------------------------------------------------------------------------
-- The hash chain.
-- ---------------------------------------------------------------------------

-- One field of the canonical encoding: '-' for NULL, else '<bytes>:<text>'.
CREATE FUNCTION insightpulse.audit_field(v text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT CASE WHEN v IS NULL THEN '-' ELSE octet_length(v)::text || ':' || v END $$;

-- The hash of an entry (see chain.rs for the encoding), from its parts: a
-- plain STABLE SQL expression, so the chain trigger's statement inlines it
-- into its cached plan instead of calling a function per entry.
CREATE FUNCTION insightpulse.audit_entry_hash(
    p_prev_hash bytea, p_seq bigint, p_tenant_id uuid, p_id uuid, p_created_at timestamptz,
    p_actor_kind audit_actor_kind, p_user_id uuid, p_api_key_id uuid, p_actor_reason text,
    p_action text, p_target_type text, p_target_id text, p_diff jsonb, p_request_id text,
    p_pii_digest bytea) RETURNS bytea
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
SELECT sha256(convert_to(concat(
    'ipaudit1',
    '|', insightpulse.audit_field(encode(p_prev_hash, 'hex')),
    '|', insightpulse.audit_field(p_seq::text),
    '|', insightpulse.audit_field(p_tenant_id::text),
    '|', insightpulse.audit_field(p_id::text),
    '|', insightpulse.audit_field(to_char(p_created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')),
    '|', insightpulse.audit_field(p_actor_kind::text),
    '|', insightpulse.audit_field(p_user_id::text),
    '|', insightpulse.audit_field(p_api_key_id::text),
    '|', insightpulse.audit_field(p_actor_reason),
    '|', insightpulse.audit_field(p_action),
    '|', insightpulse.audit_field(p_target_type),
    '|', insightpulse.audit_field(p_target_id),
    '|', insightpulse.audit_field(p_diff::text),
    '|', insightpulse.audit_field(p_request_id),
    '|', insightpulse.audit_field(encode(p_pii_digest, 'hex'))), 'UTF8'))
$$;

-- The hash a stored entry should have (for checks by hand).
CREATE FUNCTION insightpulse.audit_entry_hash(e audit_logs) RETURNS bytea
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
SELECT insightpulse.audit_entry_hash(e.prev_hash, e.seq, e.tenant_id, e.id, e.created_at, e.actor_kind,
                        e.user_id, e.api_key_id, e.actor_reason, e.action, e.target_type,
                        e.target_id, e.diff, e.request_id, e.pii_digest)
$$;

-- BEFORE INSERT: checks who writes, then links the entry into its tenant's
-- chain.
--
-- Who writes: a user (role authenticated) only into a tenant where its
-- membership is active and only naming itself as the actor; an API key
-- only into its tenant, naming itself. This is the INSERT rule of the
-- table (its policy lets every row through to here): checked once per
-- entry, it costs one index probe, where the usual policy would add a
-- second call of insightpulse_auth.user_tenant_ids() to every audited mutation. The
-- system (service_role) writes on behalf of others, e.g. an invitation's
-- acceptor.
--
-- Linking: one UPDATE of the head takes the next position and the previous
-- hash under the head's row lock (so concurrent writers of one tenant queue
-- up and the chain never forks) and records the new hash, overwriting
-- whatever seq and hashes the inserter sent.
--
-- SECURITY DEFINER because the heads are not writable at runtime; the
-- 'role' setting still names the caller's role inside it.
CREATE FUNCTION insightpulse.audit_chain_entry() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = insightpulse, pg_temp
    -- The linking statement's plan does not depend on the entry: plan it
    -- once per connection, not on each of the first five entries (measured:
    -- ~400 µs per custom plan, ~85 µs per call with the generic one).
    SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    c jsonb;
BEGIN
    IF current_setting('role') = 'authenticated' THEN
        c := insightpulse_auth.claims();
        IF NOT coalesce(CASE
            WHEN c ? 'api_key_id' THEN
                NEW.actor_kind = 'api_key'
                AND NEW.api_key_id = (c ->> 'api_key_id')::uuid
                AND NEW.tenant_id = (c ->> 'tenant_id')::uuid
            ELSE
                NEW.actor_kind = 'user'
                AND NEW.user_id = (c ->> 'sub')::uuid
                AND EXISTS (SELECT 1 FROM org_memberships m
                             WHERE m.tenant_id = NEW.tenant_id AND m.user_id = NEW.user_id
                               AND m.status = 'active')
            END, false) THEN
            RAISE EXCEPTION 'an audit entry is written by a member of its tenant, naming itself as the actor'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
    END IF;
    FOR i IN 1 .. 2 LOOP
        UPDATE audit_chain_heads h
           SET seq = h.seq + 1,
               prev_hash = h.hash,
               hash = insightpulse.audit_entry_hash(h.hash, h.seq + 1, NEW.tenant_id, NEW.id, NEW.created_at,
                                       NEW.actor_kind, NEW.user_id, NEW.api_key_id,
                                       NEW.actor_reason, NEW.action, NEW.target_type,
                                       NEW.target_id, NEW.diff, NEW.request_id, NEW.pii_digest)
         WHERE h.tenant_id = NEW.tenant_id
        RETURNING h.seq, h.prev_hash, h.hash INTO NEW.seq, NEW.prev_hash, NEW.hash;
        EXIT WHEN FOUND;
        -- The tenant's first entry: create its head, then link.
        INSERT INTO audit_chain_heads (tenant_id) VALUES (NEW.tenant_id) ON CONFLICT DO NOTHING;
    END LOOP;
    RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION insightpulse.audit_chain_entry() FROM PUBLIC;

CREATE TRIGGER audit_logs_chain BEFORE INSERT ON audit_logs
    FOR EACH ROW EXECUTE FUNCTION insightpulse.audit_chain_entry();

-- The SDK's append: exactly an INSERT with these values, under the
-- caller's own rights (SECURITY INVOKER: the grants, the policy and the
-- chain trigger apply as to any INSERT). A function, so that the SDK can
-- send it with COMMIT in one simple-query message while the INSERT's plan
-- stays cached per connection.
CREATE FUNCTION insightpulse.audit_append(
    p_tenant_id uuid, p_created_at timestamptz, p_id uuid, p_actor_kind audit_actor_kind,
    p_user_id uuid, p_api_key_id uuid, p_actor_reason text, p_action text, p_target_type text,
    p_target_id text, p_diff jsonb, p_ip inet, p_user_agent text, p_request_id text,
    p_pii_salt bytea, p_pii_digest bytea) RETURNS void
    LANGUAGE plpgsql
AS $$
BEGIN
    -- seq, prev_hash and hash are placeholders the chain trigger overwrites.
    INSERT INTO insightpulse.audit_logs (tenant_id, created_at, id, actor_kind, user_id, api_key_id,
                                   actor_reason, action, target_type, target_id, diff, ip,
                                   user_agent, request_id, pii_salt, pii_digest,
                                   seq, prev_hash, hash)
    VALUES (p_tenant_id, p_created_at, p_id, p_actor_kind, p_user_id, p_api_key_id,
            p_actor_reason, p_action, p_target_type, p_target_id, p_diff, p_ip,
            p_user_agent, p_request_id, p_pii_salt, p_pii_digest, 0, '', '');
END
$$;
REVOKE ALL ON FUNCTION insightpulse.audit_append(uuid, timestamptz, uuid, audit_actor_kind, uuid, uuid, text,
    text, text, text, jsonb, inet, text, text, bytea, bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION insightpulse.audit_append(uuid, timestamptz, uuid, audit_actor_kind, uuid, uuid, text,
    text, text, text, jsonb, inet, text, text, bytea, bytea) TO authenticated, service_role;

-- BEFORE UPDATE OR DELETE, for every role: an entry changes only by losing
-- its personal fields (erasure), and is deleted only once a purge has moved
-- its chain's anchor past it.
CREATE FUNCTION insightpulse.audit_refuse_change() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = insightpulse, pg_temp
AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.seq <= (SELECT h.anchor_seq FROM audit_chain_heads h WHERE h.tenant_id = OLD.tenant_id) THEN
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
REVOKE ALL ON FUNCTION insightpulse.audit_refuse_change() FROM PUBLIC;

CREATE FUNCTION insightpulse.audit_refuse_truncate() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    RAISE EXCEPTION 'audit entries are immutable (TRUNCATE refused)'
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_logs_immutable BEFORE UPDATE OR DELETE ON audit_logs
    FOR EACH ROW EXECUTE FUNCTION insightpulse.audit_refuse_change();
-- Statement triggers are not cloned to partitions: each gets its own.
CREATE TRIGGER audit_logs_no_truncate BEFORE TRUNCATE ON audit_logs
    FOR EACH STATEMENT EXECUTE FUNCTION insightpulse.audit_refuse_truncate();
CREATE TRIGGER audit_logs_no_truncate BEFORE TRUNCATE ON audit_logs_default
    FOR EACH STATEMENT EXECUTE FUNCTION insightpulse.audit_refuse_truncate();

-- ---------------------------------------------------------------------------
-- The system paths (service_role only).
-- ---------------------------------------------------------------------------

-- Retention purge: deletes at most p_limit of the oldest entries of a
-- tenant's chain, only as far as every deleted entry is older than
-- p_cutoff, and moves the anchor to the last one deleted. The caller
-- appends the audit.purged entry that attests the new anchor in the same
-- transaction. Returns nothing when there is nothing to purge.
CREATE FUNCTION insightpulse.audit_purge(p_tenant uuid, p_cutoff timestamptz, p_limit integer,
                            OUT deleted bigint, OUT through_seq bigint, OUT through_hash bytea)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = insightpulse, pg_temp
AS $$
DECLARE
    h       audit_chain_heads%ROWTYPE;
    v_young bigint;
BEGIN
    deleted := 0;
    SELECT * INTO h FROM audit_chain_heads WHERE tenant_id = p_tenant FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT min(a.seq) INTO v_young
      FROM audit_logs a
     WHERE a.tenant_id = p_tenant AND a.seq > h.anchor_seq AND a.created_at >= p_cutoff;
    through_seq := least(h.anchor_seq + p_limit, coalesce(v_young - 1, h.seq));
    IF through_seq <= h.anchor_seq THEN
        through_seq := NULL;
        RETURN;
    END IF;
    SELECT a.hash INTO through_hash FROM audit_logs a
     WHERE a.tenant_id = p_tenant AND a.seq = through_seq;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'audit chain of tenant % has no entry %', p_tenant, through_seq;
    END IF;
    UPDATE audit_chain_heads SET anchor_seq = through_seq, anchor_hash = through_hash
     WHERE tenant_id = p_tenant;
    DELETE FROM audit_logs a
     WHERE a.tenant_id = p_tenant AND a.seq > h.anchor_seq AND a.seq <= through_seq;
    GET DIAGNOSTICS deleted = ROW_COUNT;
END
$$;

-- Erasure of personal fields: at most p_limit entries that still hold
-- them, of one actor (p_user) and/or one tenant before p_before. Returns
-- how many entries were erased.
CREATE FUNCTION insightpulse.audit_erase_personal(p_user uuid, p_tenant uuid, p_before timestamptz, p_limit integer)
    RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = insightpulse, pg_temp
AS $$
DECLARE
    n bigint;
BEGIN
    WITH victims AS (
        SELECT a.tenant_id, a.created_at, a.seq
          FROM audit_logs a
         WHERE (p_user IS NULL OR a.user_id = p_user)
           AND (p_tenant IS NULL OR a.tenant_id = p_tenant)
           AND (p_before IS NULL OR a.created_at < p_before)
           AND (a.ip IS NOT NULL OR a.user_agent IS NOT NULL OR a.pii_salt IS NOT NULL)
         LIMIT p_limit)
    UPDATE audit_logs a SET ip = NULL, user_agent = NULL, pii_salt = NULL
      FROM victims v
     WHERE a.tenant_id = v.tenant_id AND a.created_at = v.created_at AND a.seq = v.seq;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- Partition maintenance: makes sure the month of p_from and the p_months
-- after it have their own partition, moving rows that already sit in the
-- default partition for such a month into it (verbatim, hashes unchanged:
-- a move between partitions is not a change of the trail). Returns the
-- partitions it created.
CREATE FUNCTION insightpulse.audit_ensure_partitions(p_from timestamptz, p_months integer)
    RETURNS SETOF text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = insightpulse, pg_temp
AS $$
DECLARE
    v_month timestamp;
    v_lo    timestamptz;
    v_hi    timestamptz;
    v_name  text;
BEGIN
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
        RETURN NEXT v_name;
    END LOOP;
END
$$;

REVOKE ALL ON FUNCTION insightpulse.audit_purge(uuid, timestamptz, integer),
    insightpulse.audit_erase_personal(uuid, uuid, timestamptz, integer),
    insightpulse.audit_ensure_partitions(timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION insightpulse.audit_purge(uuid, timestamptz, integer),
    insightpulse.audit_erase_personal(uuid, uuid, timestamptz, integer),
    insightpulse.audit_ensure_partitions(timestamptz, integer) TO service_role;

SELECT insightpulse.audit_ensure_partitions(now(), 3);

-- ---------------------------------------------------------------------------
-- Who reads: holders of audit.read in the tenant.
-- ---------------------------------------------------------------------------

-- The caller's tenants where it holds p_code tenant-wide (the rule of
-- insightpulse_auth.user_has_permission, once per tenant of the caller).
CREATE FUNCTION insightpulse_auth.tenants_with_permission(p_code text) RETURNS uuid[]
    LANGUAGE sql STABLE PARALLEL SAFE SECURITY DEFINER
    SET search_path = insightpulse, pg_temp
AS $$
SELECT coalesce(array_agg(t), '{}'::uuid[])
  FROM unnest(insightpulse_auth.user_tenant_ids()) AS t
 WHERE insightpulse_auth.user_has_permission(p_code, t, NULL)
$$;
REVOKE ALL ON FUNCTION insightpulse_auth.tenants_with_permission(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION insightpulse_auth.tenants_with_permission(text) TO authenticated, service_role;

-- The report names each acting user by their current email, also once they
-- have left the tenant (no longer visible through the users policies):
-- only to readers of the trail, and only for users who act in it.
CREATE FUNCTION insightpulse.audit_actor_emails(p_tenant uuid, p_users uuid[])
    RETURNS TABLE (id uuid, email text)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = insightpulse, pg_temp
AS $$
BEGIN
    IF NOT (current_setting('role') = 'service_role'
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
REVOKE ALL ON FUNCTION insightpulse.audit_actor_emails(uuid, uuid[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION insightpulse.audit_actor_emails(uuid, uuid[]) TO authenticated, service_role;

ALTER TABLE audit_logs ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_logs FORCE ROW LEVEL SECURITY;
ALTER TABLE audit_chain_heads ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_chain_heads FORCE ROW LEVEL SECURITY;

CREATE POLICY audit_logs_select ON audit_logs FOR SELECT TO authenticated
    USING (tenant_id = ANY ((SELECT insightpulse_auth.tenants_with_permission('audit.read'))::uuid[]));
-- Who may insert is checked by the chain trigger (see insightpulse.audit_chain_entry).
CREATE POLICY audit_logs_insert ON audit_logs FOR INSERT TO authenticated
    WITH CHECK (true);
CREATE POLICY audit_chain_heads_select ON audit_chain_heads FOR SELECT TO authenticated
    USING (tenant_id = ANY ((SELECT insightpulse_auth.tenants_with_permission('audit.read'))::uuid[]));

-- No UPDATE, DELETE or TRUNCATE for anyone at runtime; partitions are
-- reached only through the parent.
GRANT SELECT, INSERT ON audit_logs TO authenticated, service_role;
GRANT SELECT ON audit_chain_heads TO authenticated, service_role;
