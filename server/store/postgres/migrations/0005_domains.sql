-- Domains (tenants), their API tokens and which domain owns which record.
-- A record no domain claimed is the default domain's, so the records of a
-- single-domain database need no rewrite: they stay where they are and
-- mean what they meant. The audit trail gets a domain column for its
-- per-domain listing; old entries are the default domain's.
CREATE TABLE domains (
	name   text PRIMARY KEY,
	record jsonb NOT NULL
);

-- hash is the SHA-256 (hex) of the token's secret, never the secret.
CREATE TABLE api_tokens (
	id     text PRIMARY KEY,
	domain text NOT NULL,
	hash   text NOT NULL UNIQUE,
	record jsonb NOT NULL
);
CREATE INDEX api_tokens_domain ON api_tokens (domain);

CREATE TABLE owners (
	kind   text NOT NULL,
	key    text NOT NULL,
	domain text NOT NULL,
	PRIMARY KEY (kind, key)
);
CREATE INDEX owners_domain ON owners (kind, domain);

ALTER TABLE audit ADD COLUMN domain text NOT NULL DEFAULT 'default';
