-- The host's own projects and audit_logs, two more names the SDK uses.
CREATE TABLE projects (
    id      bigserial PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id),
    title   text NOT NULL
);
CREATE TABLE audit_logs (
    id   bigserial PRIMARY KEY,
    line text NOT NULL
);
