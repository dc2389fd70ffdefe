-- The application repository (Software Management, object 9): one row per
-- name and version, its bytes a blob of fw_blobs.
CREATE TABLE apps (
	id      text PRIMARY KEY,
	name    text NOT NULL,
	version text NOT NULL,
	sha256  text NOT NULL,
	record  jsonb NOT NULL,
	UNIQUE (name, version)
);
CREATE INDEX apps_sha256 ON apps (sha256);
