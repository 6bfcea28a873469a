-- A host application's own users table, in public, by the name the SDK
-- also uses (in its own schema).
CREATE TABLE users (
    id    bigserial PRIMARY KEY,
    email text NOT NULL UNIQUE
);
