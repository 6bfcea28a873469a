-- Two more categories a tenant sets retention for: the outbox's domain
-- events (0010) and the queue's finished jobs (0009). Each module deletes its
-- own rows when the privacy module's retention run asks
-- (`insightpulse-postgres/src/privacy.rs`).
--
-- Added values may not be used in the transaction that adds them; nothing
-- here uses them.

SET search_path TO insightpulse, pg_temp;

ALTER TYPE data_category ADD VALUE IF NOT EXISTS 'domain_events';
ALTER TYPE data_category ADD VALUE IF NOT EXISTS 'jobs';
