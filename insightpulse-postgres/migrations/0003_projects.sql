-- Module 2: projects & environments.

SET search_path TO insightpulse, pg_temp;

CREATE TYPE environment_kind AS ENUM ('development', 'staging', 'production');

CREATE TABLE projects (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id          uuid NOT NULL DEFAULT gen_random_uuid(),
    slug        text NOT NULL,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description text CHECK (length(description) <= 2000),
    archived_at timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT projects_tenant_slug_key UNIQUE (tenant_id, slug)
);

CREATE TABLE environments (
    tenant_id   uuid NOT NULL,
    id          uuid NOT NULL DEFAULT gen_random_uuid(),
    project_id  uuid NOT NULL,
    kind        environment_kind NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT environments_project_kind_key UNIQUE (tenant_id, project_id, kind),
    CONSTRAINT environments_project_id_key UNIQUE (tenant_id, project_id, id),
    FOREIGN KEY (tenant_id, project_id) REFERENCES projects (tenant_id, id) ON DELETE CASCADE
);

ALTER TABLE user_roles
    ADD FOREIGN KEY (tenant_id, project_id) REFERENCES projects (tenant_id, id) ON DELETE CASCADE;
ALTER TABLE api_keys
    ADD FOREIGN KEY (tenant_id, project_id) REFERENCES projects (tenant_id, id) ON DELETE CASCADE,
    ADD FOREIGN KEY (tenant_id, project_id, environment_id)
        REFERENCES environments (tenant_id, project_id, id) ON DELETE CASCADE;

-- ---------------------------------------------------------------------------
-- Indexes.
-- ---------------------------------------------------------------------------
CREATE INDEX idx_projects_tenant ON projects (tenant_id);
-- FK cascades when a project or an environment is deleted.
CREATE INDEX idx_user_roles_tenant_project ON user_roles (tenant_id, project_id)
    WHERE project_id IS NOT NULL;
CREATE INDEX idx_api_keys_tenant_project ON api_keys (tenant_id, project_id, environment_id)
    WHERE project_id IS NOT NULL;

-- ---------------------------------------------------------------------------
-- Triggers.
-- ---------------------------------------------------------------------------
CREATE TRIGGER projects_set_updated_at BEFORE UPDATE ON projects
    FOR EACH ROW EXECUTE FUNCTION insightpulse.set_updated_at();

-- ---------------------------------------------------------------------------
-- Row level security (enabled and forced), policies for `authenticated`.
-- Project- and environment-scoped API keys see only their project, and
-- environment-scoped keys only their environment.
-- ---------------------------------------------------------------------------
ALTER TABLE projects     ENABLE ROW LEVEL SECURITY;
ALTER TABLE projects     FORCE ROW LEVEL SECURITY;
ALTER TABLE environments ENABLE ROW LEVEL SECURITY;
ALTER TABLE environments FORCE ROW LEVEL SECURITY;

CREATE POLICY projects_select ON projects FOR SELECT TO authenticated
    USING (tenant_id = ANY ((SELECT insightpulse_auth.user_tenant_ids())::uuid[])
           AND ((SELECT insightpulse_auth.scope_project_id()) IS NULL
                OR id = (SELECT insightpulse_auth.scope_project_id())));
CREATE POLICY projects_insert ON projects FOR INSERT TO authenticated
    WITH CHECK (insightpulse_auth.user_has_permission('project.create', tenant_id));
CREATE POLICY projects_update ON projects FOR UPDATE TO authenticated
    USING (tenant_id = ANY ((SELECT insightpulse_auth.user_tenant_ids())::uuid[])
           AND ((SELECT insightpulse_auth.scope_project_id()) IS NULL
                OR id = (SELECT insightpulse_auth.scope_project_id())))
    WITH CHECK (insightpulse_auth.user_has_permission('project.update', tenant_id, id));
CREATE POLICY projects_delete ON projects FOR DELETE TO authenticated
    USING (insightpulse_auth.user_has_permission('project.delete', tenant_id, id));

CREATE POLICY environments_select ON environments FOR SELECT TO authenticated
    USING (tenant_id = ANY ((SELECT insightpulse_auth.user_tenant_ids())::uuid[])
           AND ((SELECT insightpulse_auth.scope_project_id()) IS NULL
                OR project_id = (SELECT insightpulse_auth.scope_project_id()))
           AND ((SELECT insightpulse_auth.scope_environment_id()) IS NULL
                OR id = (SELECT insightpulse_auth.scope_environment_id())));
CREATE POLICY environments_insert ON environments FOR INSERT TO authenticated
    WITH CHECK (insightpulse_auth.user_has_permission('environment.manage', tenant_id, project_id));
CREATE POLICY environments_delete ON environments FOR DELETE TO authenticated
    USING (insightpulse_auth.user_has_permission('environment.manage', tenant_id, project_id));

-- ---------------------------------------------------------------------------
-- Grants.
-- ---------------------------------------------------------------------------
GRANT SELECT, INSERT, DELETE ON projects TO authenticated;
GRANT UPDATE (slug, name, description, archived_at, updated_at) ON projects TO authenticated;
GRANT SELECT, INSERT, DELETE ON environments TO authenticated;
GRANT ALL ON projects, environments TO service_role;
