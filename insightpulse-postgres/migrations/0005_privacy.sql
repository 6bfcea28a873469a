-- Module 4 (governance half): data policies and consents.
--
-- Rules (see insightpulse-core/src/privacy/):
-- * data_category lists every category of the product, including those of
--   modules that do not exist yet; a tenant's policy waits for its module.
-- * Consents are append-only: a withdrawal is a new row, so the history is
--   complete, and the current state is the newest row per (user, purpose).
--   Runtime roles have no UPDATE or DELETE on consents.

CREATE TYPE data_category AS ENUM (
    'audit_logs', 'invitations', 'metered_events', 'prompt_runs', 'tickets',
    'webhook_deliveries', 'integration_events');
CREATE TYPE retention_action AS ENUM ('delete', 'anonymize');

CREATE TABLE data_policies (
    tenant_id      uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    category       data_category NOT NULL,
    retention_days integer NOT NULL CHECK (retention_days BETWEEN 1 AND 36500),
    action         retention_action NOT NULL,
    -- [{"field": "...", "treatment": "null" | "hash" | "replace", "value": "..."}]
    anonymization  jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(anonymization) = 'array'),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, category),
    CHECK ((action = 'anonymize') = (anonymization <> '[]'))
);

CREATE TABLE consents (
    tenant_id      uuid NOT NULL,
    id             uuid NOT NULL DEFAULT gen_random_uuid(),
    user_id        uuid NOT NULL,
    purpose        text NOT NULL CHECK (purpose ~ '^[a-z][a-z0-9_.-]{0,63}$'),
    policy_version text NOT NULL CHECK (length(policy_version) BETWEEN 1 AND 64),
    source         text NOT NULL CHECK (source ~ '^[a-z][a-z0-9_.-]{0,63}$'),
    granted        boolean NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    -- Orders the history when two entries share an instant.
    seq            bigint GENERATED ALWAYS AS IDENTITY,
    actor_kind     audit_actor_kind NOT NULL,
    actor_user_id  uuid,
    actor_api_key_id uuid,
    actor_reason   text,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE,
    -- The subject is a member of the tenant while consents are recorded;
    -- the history stays when the membership ends (e.g. erasure).
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
);
CREATE INDEX idx_consents_tenant_user_purpose ON consents (tenant_id, user_id, purpose, recorded_at, seq);

CREATE TRIGGER data_policies_set_updated_at BEFORE UPDATE ON data_policies
    FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();

ALTER TABLE data_policies ENABLE ROW LEVEL SECURITY;
ALTER TABLE data_policies FORCE ROW LEVEL SECURITY;
ALTER TABLE consents ENABLE ROW LEVEL SECURITY;
ALTER TABLE consents FORCE ROW LEVEL SECURITY;

-- Policies are read and written by holders of data_policy.manage.
CREATE POLICY data_policies_all ON data_policies FOR ALL TO authenticated
    USING (tenant_id = ANY ((SELECT auth.tenants_with_permission('data_policy.manage'))::uuid[]))
    WITH CHECK (tenant_id = ANY ((SELECT auth.tenants_with_permission('data_policy.manage'))::uuid[]));

-- A user sees and records their own consents in their tenants; holders of
-- consent.manage see and record everyone's.
CREATE POLICY consents_select ON consents FOR SELECT TO authenticated
    USING (tenant_id = ANY ((SELECT auth.tenants_with_permission('consent.manage'))::uuid[])
           OR (user_id = (SELECT auth.uid())
               AND tenant_id = ANY ((SELECT auth.user_tenant_ids())::uuid[])));
CREATE POLICY consents_insert ON consents FOR INSERT TO authenticated
    WITH CHECK (tenant_id = ANY ((SELECT auth.tenants_with_permission('consent.manage'))::uuid[])
                OR (user_id = (SELECT auth.uid())
                    AND tenant_id = ANY ((SELECT auth.user_tenant_ids())::uuid[])));

GRANT SELECT, INSERT, UPDATE, DELETE ON data_policies TO authenticated;
GRANT SELECT, INSERT ON consents TO authenticated;
GRANT ALL ON data_policies TO service_role;
GRANT SELECT, INSERT, DELETE ON consents TO service_role;
