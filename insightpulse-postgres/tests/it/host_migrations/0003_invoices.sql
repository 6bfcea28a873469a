-- A migration the host adds after the SDK has migrated.
CREATE TABLE invoices (
    id         bigserial PRIMARY KEY,
    project_id bigint NOT NULL REFERENCES projects (id),
    cents      bigint NOT NULL
);
