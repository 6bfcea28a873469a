-- Module 1: tenancy & identity.
--
-- Citus-ready: every table with a tenant_id leads its primary key, unique
-- constraints and foreign keys between tenant tables with tenant_id.
-- `roles` and `role_permissions` are reference tables that also hold
-- tenant-owned rows (tenant_id NULL = built-in role), guarded by RLS.

SET search_path TO insightpulse, pg_temp;

CREATE TYPE membership_status AS ENUM ('active', 'suspended');
CREATE TYPE role_scope AS ENUM ('global', 'org', 'project');
CREATE TYPE sso_kind AS ENUM ('saml', 'oidc');
CREATE TYPE api_key_scope AS ENUM ('tenant', 'project', 'environment');

CREATE TABLE tenants (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug        text NOT NULL CONSTRAINT tenants_slug_key UNIQUE
                CHECK (slug ~ '^[a-z]([a-z0-9]|-(?!-))*[a-z0-9]$' AND length(slug) BETWEEN 2 AND 63),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    timezone    text NOT NULL DEFAULT 'UTC',
    settings    jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(settings) = 'object'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email         text NOT NULL CONSTRAINT users_email_key UNIQUE CHECK (email = lower(email)),
    full_name     text CHECK (length(full_name) BETWEEN 1 AND 200),
    password_hash text,
    has_password  boolean GENERATED ALWAYS AS (password_hash IS NOT NULL) STORED,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE org_memberships (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    is_owner    boolean NOT NULL DEFAULT false,
    status      membership_status NOT NULL DEFAULT 'active',
    invited_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, user_id)
);

CREATE TABLE teams (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id          uuid NOT NULL DEFAULT gen_random_uuid(),
    slug        text NOT NULL,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT teams_tenant_slug_key UNIQUE (tenant_id, slug)
);

CREATE TABLE team_members (
    tenant_id   uuid NOT NULL,
    team_id     uuid NOT NULL,
    user_id     uuid NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, team_id, user_id),
    FOREIGN KEY (tenant_id, team_id) REFERENCES teams (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, user_id) REFERENCES org_memberships (tenant_id, user_id) ON DELETE CASCADE
);

CREATE TABLE permissions (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    code        text NOT NULL CONSTRAINT permissions_code_key UNIQUE
                CHECK (code ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$'),
    description text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE roles (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid REFERENCES tenants (id) ON DELETE CASCADE, -- NULL: built-in
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    scope       role_scope NOT NULL,
    description text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT roles_tenant_name_scope_key UNIQUE NULLS NOT DISTINCT (tenant_id, name, scope)
);

CREATE TABLE role_permissions (
    role_id       uuid NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    permission_id uuid NOT NULL REFERENCES permissions (id) ON DELETE CASCADE,
    PRIMARY KEY (role_id, permission_id)
);

-- project_id's foreign key to projects is added by the projects migration.
CREATE TABLE user_roles (
    tenant_id   uuid NOT NULL,
    id          uuid NOT NULL DEFAULT gen_random_uuid(),
    user_id     uuid NOT NULL,
    role_id     uuid NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    project_id  uuid,
    granted_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT user_roles_grant_key UNIQUE NULLS NOT DISTINCT (tenant_id, user_id, role_id, project_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES org_memberships (tenant_id, user_id) ON DELETE CASCADE
);

CREATE TABLE invitations (
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id           uuid NOT NULL DEFAULT gen_random_uuid(),
    email        text NOT NULL CHECK (email = lower(email)),
    role_id      uuid REFERENCES roles (id) ON DELETE SET NULL,
    token_prefix text NOT NULL,
    token_hash   bytea NOT NULL,
    invited_by   uuid REFERENCES users (id) ON DELETE SET NULL,
    expires_at   timestamptz NOT NULL,
    accepted_at  timestamptz,
    accepted_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    revoked_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT invitations_tenant_prefix_key UNIQUE (tenant_id, token_prefix)
);

CREATE TABLE sso_providers (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id          uuid NOT NULL DEFAULT gen_random_uuid(),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    kind        sso_kind NOT NULL,
    config      jsonb NOT NULL CHECK (jsonb_typeof(config) = 'object'),
    enabled     boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT sso_providers_tenant_name_key UNIQUE (tenant_id, name)
);

CREATE TABLE user_identities (
    tenant_id   uuid NOT NULL,
    id          uuid NOT NULL DEFAULT gen_random_uuid(),
    provider_id uuid NOT NULL,
    subject     text NOT NULL CHECK (length(subject) BETWEEN 1 AND 255),
    user_id     uuid NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT user_identities_provider_subject_key UNIQUE (tenant_id, provider_id, subject),
    FOREIGN KEY (tenant_id, provider_id) REFERENCES sso_providers (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, user_id) REFERENCES org_memberships (tenant_id, user_id) ON DELETE CASCADE
);

-- project_id / environment_id foreign keys are added by the projects migration.
CREATE TABLE api_keys (
    tenant_id      uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id             uuid NOT NULL DEFAULT gen_random_uuid(),
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    prefix         text NOT NULL,
    key_hash       bytea NOT NULL,
    scope          api_key_scope NOT NULL,
    project_id     uuid,
    environment_id uuid,
    permissions    text[] NOT NULL CHECK (cardinality(permissions) > 0),
    created_by     uuid REFERENCES users (id) ON DELETE SET NULL,
    expires_at     timestamptz,
    last_used_at   timestamptz,
    revoked_at     timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT api_keys_tenant_prefix_key UNIQUE (tenant_id, prefix),
    CHECK (
        (scope = 'tenant' AND project_id IS NULL AND environment_id IS NULL)
        OR (scope = 'project' AND project_id IS NOT NULL AND environment_id IS NULL)
        OR (scope = 'environment' AND project_id IS NOT NULL AND environment_id IS NOT NULL)
    )
);

-- ---------------------------------------------------------------------------
-- Indexes (beyond the primary keys and unique constraints).
-- ---------------------------------------------------------------------------
-- insightpulse_auth.user_tenant_ids() / users policy: a user's memberships, index-only.
CREATE INDEX idx_org_memberships_user ON org_memberships (user_id) INCLUDE (tenant_id, status, is_owner);
-- insightpulse_auth.user_has_permission(): a user's grants in a tenant; FK cascade from org_memberships.
CREATE INDEX idx_user_roles_tenant_user ON user_roles (tenant_id, user_id);
-- FK cascade when a role is deleted.
CREATE INDEX idx_user_roles_role ON user_roles (role_id);
CREATE INDEX idx_roles_tenant ON roles (tenant_id);
-- FK cascade when a permission is deleted (role_id leads the primary key).
CREATE INDEX idx_role_permissions_permission ON role_permissions (permission_id);
-- Lookups by public prefix (verify / accept know no tenant yet).
CREATE INDEX idx_api_keys_prefix ON api_keys (prefix);
CREATE INDEX idx_invitations_token_prefix ON invitations (token_prefix);
-- FK cascade from org_memberships (member removal).
CREATE INDEX idx_team_members_tenant_user ON team_members (tenant_id, user_id);
CREATE INDEX idx_user_identities_tenant_user ON user_identities (tenant_id, user_id);

-- ---------------------------------------------------------------------------
-- Helpers used by the policies.
--
-- SECURITY DEFINER so that they read memberships and grants regardless of
-- the caller's RLS; they only ever answer questions about the caller (the
-- claims), never about another principal.
-- ---------------------------------------------------------------------------

-- The tenants the caller may see: an API key its own tenant; a user the
-- tenants where their membership is active ('{}' when none); nobody '{}'.
CREATE FUNCTION insightpulse_auth.user_tenant_ids() RETURNS uuid[]
    LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY DEFINER
    SET search_path = insightpulse, pg_temp
AS $$
DECLARE
    c     jsonb := insightpulse_auth.claims();
    v_uid uuid;
BEGIN
    IF c ? 'api_key_id' THEN
        IF c ->> 'tenant_id' IS NULL THEN
            RETURN '{}'::uuid[];
        END IF;
        RETURN ARRAY[(c ->> 'tenant_id')::uuid];
    END IF;
    v_uid := (c ->> 'sub')::uuid;
    IF v_uid IS NULL THEN
        RETURN '{}'::uuid[];
    END IF;
    RETURN coalesce(
        (SELECT array_agg(m.tenant_id)
           FROM org_memberships m
          WHERE m.user_id = v_uid AND m.status = 'active'),
        '{}'::uuid[]);
END
$$;

-- Whether the caller (a user) has an ACTIVE owner membership in p_tenant;
-- false for API keys and nobody.
CREATE FUNCTION insightpulse_auth.is_tenant_owner(p_tenant uuid) RETURNS boolean
    LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY DEFINER
    SET search_path = insightpulse, pg_temp
AS $$
DECLARE
    c     jsonb := insightpulse_auth.claims();
    v_uid uuid;
BEGIN
    IF p_tenant IS NULL OR c ? 'api_key_id' THEN
        RETURN false;
    END IF;
    v_uid := (c ->> 'sub')::uuid;
    IF v_uid IS NULL THEN
        RETURN false;
    END IF;
    RETURN EXISTS (
        SELECT 1
          FROM org_memberships m
         WHERE m.tenant_id = p_tenant
           AND m.user_id = v_uid
           AND m.is_owner
           AND m.status = 'active');
END
$$;

-- Whether the caller holds p_code in p_tenant, tenant-wide (p_project NULL)
-- or on p_project. The rule of insightpulse-core/src/tenancy/permissions.rs:
--   API key: its tenant, one of its listed permissions, and, when the key is
--            project- or environment-scoped, only on its project;
--   user:    an ACTIVE membership in p_tenant, and either ownership or a
--            grant in p_tenant (tenant-wide or on p_project) whose role
--            carries p_code.
-- Cost: one primary-key probe for an owner or a non-member; for anyone else
-- also permissions_code_key and the user's few grants in the tenant, each
-- probed in role_permissions' primary key.
CREATE FUNCTION insightpulse_auth.user_has_permission(p_code text, p_tenant uuid, p_project uuid DEFAULT NULL)
    RETURNS boolean
    LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY DEFINER
    SET search_path = insightpulse, pg_temp
AS $$
DECLARE
    c       jsonb := insightpulse_auth.claims();
    v_uid   uuid;
    v_owner boolean;
    v_perm  uuid;
BEGIN
    IF p_code IS NULL OR p_tenant IS NULL THEN
        RETURN false;
    END IF;
    IF c ? 'api_key_id' THEN
        RETURN coalesce(
            p_tenant = (c ->> 'tenant_id')::uuid
            AND jsonb_typeof(c -> 'permissions') = 'array'
            AND (c -> 'permissions') ? p_code
            AND (c ->> 'project_id' IS NULL OR (c ->> 'project_id')::uuid = p_project),
            false);
    END IF;
    v_uid := (c ->> 'sub')::uuid;
    IF v_uid IS NULL THEN
        RETURN false;
    END IF;
    -- 1. the membership (primary key probe): none or suspended -> no; owner -> yes
    SELECT m.is_owner INTO v_owner
      FROM org_memberships m
     WHERE m.tenant_id = p_tenant AND m.user_id = v_uid AND m.status = 'active';
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF v_owner THEN
        RETURN true;
    END IF;
    -- 2. the permission's id (permissions_code_key)
    SELECT p.id INTO v_perm FROM permissions p WHERE p.code = p_code;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    -- 3. the user's grants in the tenant (user_roles_grant_key), each probed
    --    in role_permissions' primary key (role_id, permission_id)
    RETURN EXISTS (
        SELECT 1
          FROM user_roles ur
          JOIN role_permissions rp ON rp.role_id = ur.role_id AND rp.permission_id = v_perm
         WHERE ur.tenant_id = p_tenant
           AND ur.user_id = v_uid
           AND (ur.project_id IS NULL OR ur.project_id = p_project));
END
$$;

REVOKE ALL ON FUNCTION insightpulse_auth.user_tenant_ids(), insightpulse_auth.is_tenant_owner(uuid),
    insightpulse_auth.user_has_permission(text, uuid, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION insightpulse_auth.user_tenant_ids(), insightpulse_auth.is_tenant_owner(uuid),
    insightpulse_auth.user_has_permission(text, uuid, uuid) TO authenticated, service_role;

-- ---------------------------------------------------------------------------
-- Triggers.
-- ---------------------------------------------------------------------------
CREATE TRIGGER tenants_set_updated_at BEFORE UPDATE ON tenants
    FOR EACH ROW EXECUTE FUNCTION insightpulse.set_updated_at();
CREATE TRIGGER users_set_updated_at BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION insightpulse.set_updated_at();
CREATE TRIGGER org_memberships_set_updated_at BEFORE UPDATE ON org_memberships
    FOR EACH ROW EXECUTE FUNCTION insightpulse.set_updated_at();
CREATE TRIGGER teams_set_updated_at BEFORE UPDATE ON teams
    FOR EACH ROW EXECUTE FUNCTION insightpulse.set_updated_at();
CREATE TRIGGER roles_set_updated_at BEFORE UPDATE ON roles
    FOR EACH ROW EXECUTE FUNCTION insightpulse.set_updated_at();
CREATE TRIGGER sso_providers_set_updated_at BEFORE UPDATE ON sso_providers
    FOR EACH ROW EXECUTE FUNCTION insightpulse.set_updated_at();

-- A tenant that exists always keeps at least one ACTIVE owner. Only a change
-- that takes away an active owner is checked; the tenant row is locked first
-- so that two concurrent demotions in one tenant cannot both pass. When the
-- tenant itself is being deleted (the cascade), its row is already gone and
-- nothing is checked.
CREATE FUNCTION insightpulse.check_tenant_has_active_owner() RETURNS trigger
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
        RAISE EXCEPTION 'tenant % would be left without an active owner', OLD.tenant_id
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'tenant_has_active_owner',
                  SCHEMA = 'insightpulse',
                  TABLE = 'org_memberships';
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION insightpulse.check_tenant_has_active_owner() FROM PUBLIC;

CREATE CONSTRAINT TRIGGER tenant_has_active_owner
    AFTER UPDATE OF tenant_id, is_owner, status OR DELETE ON org_memberships
    DEFERRABLE INITIALLY IMMEDIATE
    FOR EACH ROW EXECUTE FUNCTION insightpulse.check_tenant_has_active_owner();

-- Only owners act on ownership. Under RLS a holder of member.manage may
-- change and remove memberships, but granting ownership, or changing or
-- removing an owner's membership, needs the actor to be an active owner of
-- the tenant. The SDK checks this first; this makes the database refuse it
-- as well. Other roles (the service role, and the table owner running
-- ON DELETE CASCADE) are not restricted.
CREATE FUNCTION insightpulse.guard_ownership() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = insightpulse, pg_temp
AS $$
BEGIN
    IF current_user = 'authenticated'
       AND (OLD.is_owner OR (TG_OP = 'UPDATE' AND NEW.is_owner))
       AND NOT insightpulse_auth.is_tenant_owner(OLD.tenant_id) THEN
        RAISE EXCEPTION 'only an owner of the tenant may grant ownership or change an owner''s membership'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END
$$;
REVOKE ALL ON FUNCTION insightpulse.guard_ownership() FROM PUBLIC;

CREATE TRIGGER org_memberships_guard_ownership
    BEFORE UPDATE OR DELETE ON org_memberships
    FOR EACH ROW EXECUTE FUNCTION insightpulse.guard_ownership();


-- ---------------------------------------------------------------------------
-- Seed (before RLS is forced: a non-superuser owner could not insert after).
-- ---------------------------------------------------------------------------
-- Seed: the permission catalog and the built-in roles, exactly
-- insightpulse-core/src/tenancy/catalog.rs (PERMISSIONS, BUILTIN_ROLES).
INSERT INTO permissions (code, description) VALUES
    ('tenant.manage', 'Change tenant settings or delete the tenant'),
    ('member.read', 'See the tenant''s members'),
    ('member.invite', 'Invite people and manage invitations'),
    ('member.manage', 'Suspend, reactivate and remove members'),
    ('team.manage', 'Create, change and delete teams and their members'),
    ('role.manage', 'Create, change and delete tenant roles'),
    ('role.assign', 'Grant and revoke roles'),
    ('sso.manage', 'Configure SSO providers and link identities'),
    ('api_key.manage', 'Create, list and revoke API keys'),
    ('project.create', 'Create projects'),
    ('project.update', 'Rename and archive projects'),
    ('project.delete', 'Delete projects'),
    ('environment.manage', 'Create and delete environments'),
    ('integration.read', 'See integrations'),
    ('integration.manage', 'Configure integrations'),
    ('webhook.read', 'See webhooks and deliveries'),
    ('webhook.manage', 'Configure webhooks'),
    ('audit.read', 'Read the audit trail'),
    ('data_policy.manage', 'Configure retention and anonymization'),
    ('consent.manage', 'Record and withdraw consents'),
    ('secret.read', 'Read secret values'),
    ('secret.manage', 'Create, rotate and delete secrets'),
    ('billing.read', 'See billing accounts, invoices and payments'),
    ('billing.manage', 'Change plans, billing details and payment methods'),
    ('usage.read', 'See metered usage'),
    ('data_source.read', 'See data sources'),
    ('data_source.manage', 'Configure data sources'),
    ('dashboard.read', 'See dashboards'),
    ('dashboard.create', 'Create dashboards'),
    ('dashboard.update', 'Change dashboards and widgets'),
    ('dashboard.delete', 'Delete dashboards'),
    ('query.run', 'Run saved queries'),
    ('query.manage', 'Create and change saved queries'),
    ('alert.read', 'See alerts and their events'),
    ('alert.manage', 'Configure alerts and channels'),
    ('ai.use', 'Run prompts against LLMs'),
    ('prompt.manage', 'Manage prompt templates'),
    ('rag.read', 'Search RAG documents'),
    ('rag.manage', 'Ingest and delete RAG documents'),
    ('ocr.submit', 'Submit OCR jobs'),
    ('ticket.read', 'See tickets'),
    ('ticket.create', 'Open tickets and comment'),
    ('ticket.update', 'Change tickets'),
    ('ticket.assign', 'Assign tickets'),
    ('workflow.read', 'See workflows and runs'),
    ('workflow.manage', 'Define workflows'),
    ('workflow.run', 'Start workflow runs'),
    ('domain.read', 'See domains, DNS records and certificates'),
    ('domain.manage', 'Manage domains, DNS records and certificates');

INSERT INTO roles (tenant_id, name, scope, description) VALUES
    (NULL, 'Admin', 'org', 'Everything in the tenant'),
    (NULL, 'Developer', 'global', 'Build and operate projects'),
    (NULL, 'Viewer', 'global', 'Read-only access'),
    (NULL, 'Billing Admin', 'org', 'Billing, plans and usage');

-- An unknown role or permission name makes a NULL id and fails the insert.
INSERT INTO role_permissions (role_id, permission_id)
SELECT (SELECT r.id FROM roles r
         WHERE r.tenant_id IS NULL AND r.name = v.role_name AND r.scope = v.role_scope::role_scope),
       (SELECT p.id FROM permissions p WHERE p.code = v.code)
FROM (VALUES
    ('Admin', 'org', 'tenant.manage'),
    ('Admin', 'org', 'member.read'),
    ('Admin', 'org', 'member.invite'),
    ('Admin', 'org', 'member.manage'),
    ('Admin', 'org', 'team.manage'),
    ('Admin', 'org', 'role.manage'),
    ('Admin', 'org', 'role.assign'),
    ('Admin', 'org', 'sso.manage'),
    ('Admin', 'org', 'api_key.manage'),
    ('Admin', 'org', 'project.create'),
    ('Admin', 'org', 'project.update'),
    ('Admin', 'org', 'project.delete'),
    ('Admin', 'org', 'environment.manage'),
    ('Admin', 'org', 'integration.read'),
    ('Admin', 'org', 'integration.manage'),
    ('Admin', 'org', 'webhook.read'),
    ('Admin', 'org', 'webhook.manage'),
    ('Admin', 'org', 'audit.read'),
    ('Admin', 'org', 'data_policy.manage'),
    ('Admin', 'org', 'consent.manage'),
    ('Admin', 'org', 'secret.read'),
    ('Admin', 'org', 'secret.manage'),
    ('Admin', 'org', 'billing.read'),
    ('Admin', 'org', 'billing.manage'),
    ('Admin', 'org', 'usage.read'),
    ('Admin', 'org', 'data_source.read'),
    ('Admin', 'org', 'data_source.manage'),
    ('Admin', 'org', 'dashboard.read'),
    ('Admin', 'org', 'dashboard.create'),
    ('Admin', 'org', 'dashboard.update'),
    ('Admin', 'org', 'dashboard.delete'),
    ('Admin', 'org', 'query.run'),
    ('Admin', 'org', 'query.manage'),
    ('Admin', 'org', 'alert.read'),
    ('Admin', 'org', 'alert.manage'),
    ('Admin', 'org', 'ai.use'),
    ('Admin', 'org', 'prompt.manage'),
    ('Admin', 'org', 'rag.read'),
    ('Admin', 'org', 'rag.manage'),
    ('Admin', 'org', 'ocr.submit'),
    ('Admin', 'org', 'ticket.read'),
    ('Admin', 'org', 'ticket.create'),
    ('Admin', 'org', 'ticket.update'),
    ('Admin', 'org', 'ticket.assign'),
    ('Admin', 'org', 'workflow.read'),
    ('Admin', 'org', 'workflow.manage'),
    ('Admin', 'org', 'workflow.run'),
    ('Admin', 'org', 'domain.read'),
    ('Admin', 'org', 'domain.manage'),
    ('Developer', 'global', 'member.read'),
    ('Developer', 'global', 'api_key.manage'),
    ('Developer', 'global', 'project.create'),
    ('Developer', 'global', 'project.update'),
    ('Developer', 'global', 'environment.manage'),
    ('Developer', 'global', 'integration.read'),
    ('Developer', 'global', 'integration.manage'),
    ('Developer', 'global', 'webhook.read'),
    ('Developer', 'global', 'webhook.manage'),
    ('Developer', 'global', 'secret.read'),
    ('Developer', 'global', 'secret.manage'),
    ('Developer', 'global', 'usage.read'),
    ('Developer', 'global', 'data_source.read'),
    ('Developer', 'global', 'data_source.manage'),
    ('Developer', 'global', 'dashboard.read'),
    ('Developer', 'global', 'dashboard.create'),
    ('Developer', 'global', 'dashboard.update'),
    ('Developer', 'global', 'dashboard.delete'),
    ('Developer', 'global', 'query.run'),
    ('Developer', 'global', 'query.manage'),
    ('Developer', 'global', 'alert.read'),
    ('Developer', 'global', 'alert.manage'),
    ('Developer', 'global', 'ai.use'),
    ('Developer', 'global', 'prompt.manage'),
    ('Developer', 'global', 'rag.read'),
    ('Developer', 'global', 'rag.manage'),
    ('Developer', 'global', 'ocr.submit'),
    ('Developer', 'global', 'ticket.read'),
    ('Developer', 'global', 'ticket.create'),
    ('Developer', 'global', 'ticket.update'),
    ('Developer', 'global', 'ticket.assign'),
    ('Developer', 'global', 'workflow.read'),
    ('Developer', 'global', 'workflow.manage'),
    ('Developer', 'global', 'workflow.run'),
    ('Developer', 'global', 'domain.read'),
    ('Viewer', 'global', 'member.read'),
    ('Viewer', 'global', 'integration.read'),
    ('Viewer', 'global', 'webhook.read'),
    ('Viewer', 'global', 'usage.read'),
    ('Viewer', 'global', 'data_source.read'),
    ('Viewer', 'global', 'dashboard.read'),
    ('Viewer', 'global', 'alert.read'),
    ('Viewer', 'global', 'rag.read'),
    ('Viewer', 'global', 'ticket.read'),
    ('Viewer', 'global', 'workflow.read'),
    ('Viewer', 'global', 'domain.read'),
    ('Billing Admin', 'org', 'member.read'),
    ('Billing Admin', 'org', 'billing.read'),
    ('Billing Admin', 'org', 'billing.manage'),
    ('Billing Admin', 'org', 'usage.read')
) AS v (role_name, role_scope, code);

-- ---------------------------------------------------------------------------
-- Row level security: enabled AND forced on every table, policies for the
-- runtime role `authenticated` (service_role has BYPASSRLS).
--
-- Helpers that do not depend on the row are wrapped in a sub-select so they
-- run once per statement (an InitPlan); mind the ::uuid[] cast, without it
-- `= ANY (SELECT ...)` is read as ANY(subquery).
-- ---------------------------------------------------------------------------
ALTER TABLE tenants          ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants          FORCE ROW LEVEL SECURITY;
ALTER TABLE users            ENABLE ROW LEVEL SECURITY;
ALTER TABLE users            FORCE ROW LEVEL SECURITY;
ALTER TABLE org_memberships  ENABLE ROW LEVEL SECURITY;
ALTER TABLE org_memberships  FORCE ROW LEVEL SECURITY;
ALTER TABLE teams            ENABLE ROW LEVEL SECURITY;
ALTER TABLE teams            FORCE ROW LEVEL SECURITY;
ALTER TABLE team_members     ENABLE ROW LEVEL SECURITY;
ALTER TABLE team_members     FORCE ROW LEVEL SECURITY;
ALTER TABLE permissions      ENABLE ROW LEVEL SECURITY;
ALTER TABLE permissions      FORCE ROW LEVEL SECURITY;
ALTER TABLE roles            ENABLE ROW LEVEL SECURITY;
ALTER TABLE roles            FORCE ROW LEVEL SECURITY;
ALTER TABLE role_permissions ENABLE ROW LEVEL SECURITY;
ALTER TABLE role_permissions FORCE ROW LEVEL SECURITY;
ALTER TABLE user_roles       ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_roles       FORCE ROW LEVEL SECURITY;
ALTER TABLE invitations      ENABLE ROW LEVEL SECURITY;
ALTER TABLE invitations      FORCE ROW LEVEL SECURITY;
ALTER TABLE sso_providers    ENABLE ROW LEVEL SECURITY;
ALTER TABLE sso_providers    FORCE ROW LEVEL SECURITY;
ALTER TABLE user_identities  ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_identities  FORCE ROW LEVEL SECURITY;
ALTER TABLE api_keys         ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys         FORCE ROW LEVEL SECURITY;

-- tenants (created by service_role only: no INSERT policy)
CREATE POLICY tenants_select ON tenants FOR SELECT TO authenticated
    USING (id = ANY ((SELECT insightpulse_auth.user_tenant_ids())::uuid[]));
CREATE POLICY tenants_update ON tenants FOR UPDATE TO authenticated
    USING (id = ANY ((SELECT insightpulse_auth.user_tenant_ids())::uuid[]))
    WITH CHECK (insightpulse_auth.user_has_permission('tenant.manage', id));
CREATE POLICY tenants_delete ON tenants FOR DELETE TO authenticated
    USING (insightpulse_auth.is_tenant_owner(id));

-- users (created by service_role only; a user changes only their own row)
CREATE POLICY users_select ON users FOR SELECT TO authenticated
    USING (id = (SELECT insightpulse_auth.uid())
           OR id IN (SELECT m.user_id
                       FROM org_memberships m
                      WHERE m.tenant_id = ANY ((SELECT insightpulse_auth.user_tenant_ids())::uuid[])));
CREATE POLICY users_update ON users FOR UPDATE TO authenticated
    USING (id = (SELECT insightpulse_auth.uid()))
    WITH CHECK (id = (SELECT insightpulse_auth.uid()));

-- org_memberships (acceptance and tenant creation run as service_role)
CREATE POLICY org_memberships_select ON org_memberships FOR SELECT TO authenticated
    USING (tenant_id = ANY ((SELECT insightpulse_auth.user_tenant_ids())::uuid[]));
CREATE POLICY org_memberships_update ON org_memberships FOR UPDATE TO authenticated
    USING (insightpulse_auth.user_has_permission('member.manage', tenant_id))
    WITH CHECK (insightpulse_auth.user_has_permission('member.manage', tenant_id));
CREATE POLICY org_memberships_delete ON org_memberships FOR DELETE TO authenticated
    USING (insightpulse_auth.user_has_permission('member.manage', tenant_id));

-- invitations (the tenant filter first lets the planner use the primary key
-- and skips the per-row permission call for other tenants' rows)
CREATE POLICY invitations_all ON invitations FOR ALL TO authenticated
    USING (tenant_id = ANY ((SELECT insightpulse_auth.user_tenant_ids())::uuid[])
           AND insightpulse_auth.user_has_permission('member.invite', tenant_id))
    WITH CHECK (insightpulse_auth.user_has_permission('member.invite', tenant_id));

-- teams
CREATE POLICY teams_select ON teams FOR SELECT TO authenticated
    USING (tenant_id = ANY ((SELECT insightpulse_auth.user_tenant_ids())::uuid[]));
CREATE POLICY teams_insert ON teams FOR INSERT TO authenticated
    WITH CHECK (insightpulse_auth.user_has_permission('team.manage', tenant_id));
CREATE POLICY teams_update ON teams FOR UPDATE TO authenticated
    USING (insightpulse_auth.user_has_permission('team.manage', tenant_id))
    WITH CHECK (insightpulse_auth.user_has_permission('team.manage', tenant_id));
CREATE POLICY teams_delete ON teams FOR DELETE TO authenticated
    USING (insightpulse_auth.user_has_permission('team.manage', tenant_id));

-- team_members
CREATE POLICY team_members_select ON team_members FOR SELECT TO authenticated
    USING (tenant_id = ANY ((SELECT insightpulse_auth.user_tenant_ids())::uuid[]));
CREATE POLICY team_members_insert ON team_members FOR INSERT TO authenticated
    WITH CHECK (insightpulse_auth.user_has_permission('team.manage', tenant_id));
CREATE POLICY team_members_update ON team_members FOR UPDATE TO authenticated
    USING (insightpulse_auth.user_has_permission('team.manage', tenant_id))
    WITH CHECK (insightpulse_auth.user_has_permission('team.manage', tenant_id));
CREATE POLICY team_members_delete ON team_members FOR DELETE TO authenticated
    USING (insightpulse_auth.user_has_permission('team.manage', tenant_id));

-- permissions: a global catalog, readable by everyone, written by service_role
CREATE POLICY permissions_select ON permissions FOR SELECT TO authenticated
    USING (true);

-- roles: built-ins (tenant_id NULL) are read-only; tenant roles need role.manage
CREATE POLICY roles_select ON roles FOR SELECT TO authenticated
    USING (tenant_id IS NULL OR tenant_id = ANY ((SELECT insightpulse_auth.user_tenant_ids())::uuid[]));
CREATE POLICY roles_insert ON roles FOR INSERT TO authenticated
    WITH CHECK (tenant_id IS NOT NULL AND insightpulse_auth.user_has_permission('role.manage', tenant_id));
CREATE POLICY roles_update ON roles FOR UPDATE TO authenticated
    USING (tenant_id IS NOT NULL AND insightpulse_auth.user_has_permission('role.manage', tenant_id))
    WITH CHECK (tenant_id IS NOT NULL AND insightpulse_auth.user_has_permission('role.manage', tenant_id));
CREATE POLICY roles_delete ON roles FOR DELETE TO authenticated
    USING (tenant_id IS NOT NULL AND insightpulse_auth.user_has_permission('role.manage', tenant_id));

-- role_permissions: visible with their role (roles' own RLS applies inside)
CREATE POLICY role_permissions_select ON role_permissions FOR SELECT TO authenticated
    USING (EXISTS (SELECT 1 FROM roles r WHERE r.id = role_permissions.role_id));
CREATE POLICY role_permissions_insert ON role_permissions FOR INSERT TO authenticated
    WITH CHECK (EXISTS (SELECT 1
                          FROM roles r
                         WHERE r.id = role_permissions.role_id
                           AND r.tenant_id IS NOT NULL
                           AND insightpulse_auth.user_has_permission('role.manage', r.tenant_id)));
CREATE POLICY role_permissions_delete ON role_permissions FOR DELETE TO authenticated
    USING (EXISTS (SELECT 1
                     FROM roles r
                    WHERE r.id = role_permissions.role_id
                      AND r.tenant_id IS NOT NULL
                      AND insightpulse_auth.user_has_permission('role.manage', r.tenant_id)));

-- user_roles (grants): no UPDATE, a grant is revoked and re-made
CREATE POLICY user_roles_select ON user_roles FOR SELECT TO authenticated
    USING (tenant_id = ANY ((SELECT insightpulse_auth.user_tenant_ids())::uuid[]));
CREATE POLICY user_roles_insert ON user_roles FOR INSERT TO authenticated
    WITH CHECK (insightpulse_auth.user_has_permission('role.assign', tenant_id, project_id)
                AND EXISTS (SELECT 1
                              FROM roles r
                             WHERE r.id = user_roles.role_id
                               AND (r.tenant_id IS NULL OR r.tenant_id = user_roles.tenant_id)));
CREATE POLICY user_roles_delete ON user_roles FOR DELETE TO authenticated
    USING (insightpulse_auth.user_has_permission('role.assign', tenant_id, project_id));

-- sso_providers
CREATE POLICY sso_providers_select ON sso_providers FOR SELECT TO authenticated
    USING (tenant_id = ANY ((SELECT insightpulse_auth.user_tenant_ids())::uuid[]));
CREATE POLICY sso_providers_insert ON sso_providers FOR INSERT TO authenticated
    WITH CHECK (insightpulse_auth.user_has_permission('sso.manage', tenant_id));
CREATE POLICY sso_providers_update ON sso_providers FOR UPDATE TO authenticated
    USING (insightpulse_auth.user_has_permission('sso.manage', tenant_id))
    WITH CHECK (insightpulse_auth.user_has_permission('sso.manage', tenant_id));
CREATE POLICY sso_providers_delete ON sso_providers FOR DELETE TO authenticated
    USING (insightpulse_auth.user_has_permission('sso.manage', tenant_id));

-- user_identities
CREATE POLICY user_identities_select ON user_identities FOR SELECT TO authenticated
    USING (tenant_id = ANY ((SELECT insightpulse_auth.user_tenant_ids())::uuid[]));
CREATE POLICY user_identities_insert ON user_identities FOR INSERT TO authenticated
    WITH CHECK (insightpulse_auth.user_has_permission('sso.manage', tenant_id));
CREATE POLICY user_identities_update ON user_identities FOR UPDATE TO authenticated
    USING (insightpulse_auth.user_has_permission('sso.manage', tenant_id))
    WITH CHECK (insightpulse_auth.user_has_permission('sso.manage', tenant_id));
CREATE POLICY user_identities_delete ON user_identities FOR DELETE TO authenticated
    USING (insightpulse_auth.user_has_permission('sso.manage', tenant_id));

-- api_keys: members of the tenant see the keys' metadata (the hash column is
-- not even granted), so the SDK can tell "no such key" (NotFound) from "not
-- allowed to manage it" (PermissionDenied); changing a key needs
-- api_key.manage at the key's level. The project-level form also covers
-- tenant-wide holders. No DELETE: keys are revoked (project deletion cascades).
CREATE POLICY api_keys_select ON api_keys FOR SELECT TO authenticated
    USING (tenant_id = ANY ((SELECT insightpulse_auth.user_tenant_ids())::uuid[]));
CREATE POLICY api_keys_insert ON api_keys FOR INSERT TO authenticated
    WITH CHECK (insightpulse_auth.user_has_permission('api_key.manage', tenant_id, project_id));
CREATE POLICY api_keys_update ON api_keys FOR UPDATE TO authenticated
    USING (insightpulse_auth.user_has_permission('api_key.manage', tenant_id, project_id))
    WITH CHECK (insightpulse_auth.user_has_permission('api_key.manage', tenant_id, project_id));

-- ---------------------------------------------------------------------------
-- Grants. RLS decides which rows; these decide which statements and columns.
-- anon gets nothing on tables. authenticated can never read users.password_hash,
-- api_keys.key_hash or invitations.token_hash.
-- ---------------------------------------------------------------------------
GRANT SELECT, DELETE ON tenants TO authenticated;
GRANT UPDATE (name, timezone, settings, updated_at) ON tenants TO authenticated;

GRANT SELECT (id, email, full_name, has_password, created_at, updated_at) ON users TO authenticated;
GRANT UPDATE (full_name, password_hash, updated_at) ON users TO authenticated;

GRANT SELECT, DELETE ON org_memberships TO authenticated;
GRANT UPDATE (is_owner, status, updated_at) ON org_memberships TO authenticated;

GRANT SELECT (tenant_id, id, email, role_id, token_prefix, invited_by, expires_at,
              accepted_at, accepted_by, revoked_at, created_at) ON invitations TO authenticated;
GRANT INSERT, DELETE ON invitations TO authenticated;
GRANT UPDATE (revoked_at) ON invitations TO authenticated;

GRANT SELECT, INSERT, UPDATE, DELETE ON teams, team_members TO authenticated;
GRANT SELECT ON permissions TO authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON roles TO authenticated;
GRANT SELECT, INSERT, DELETE ON role_permissions TO authenticated;
GRANT SELECT, INSERT, DELETE ON user_roles TO authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON sso_providers, user_identities TO authenticated;

GRANT SELECT (tenant_id, id, name, prefix, scope, project_id, environment_id, permissions,
              created_by, expires_at, last_used_at, revoked_at, created_at) ON api_keys TO authenticated;
GRANT INSERT ON api_keys TO authenticated;
GRANT UPDATE (name, revoked_at, last_used_at) ON api_keys TO authenticated;

GRANT ALL ON tenants, users, org_memberships, teams, team_members, permissions, roles,
    role_permissions, user_roles, invitations, sso_providers, user_identities, api_keys
    TO service_role;
