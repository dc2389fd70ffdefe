-- The first schema: one table per kind of record, the whole record as JSONB
-- beside the typed columns that lookups, uniqueness and joins need.
CREATE TABLE registrations (
	id       text PRIMARY KEY,
	endpoint text NOT NULL,
	record   jsonb NOT NULL
);
CREATE INDEX registrations_endpoint ON registrations (endpoint);

-- identity is NULL for a credential without PSK identity; UNIQUE then
-- allows many, and one identity belongs to one endpoint.
CREATE TABLE credentials (
	endpoint text PRIMARY KEY,
	identity text UNIQUE,
	record   jsonb NOT NULL
);

CREATE TABLE observations (
	token    bytea PRIMARY KEY,
	reg_id   text NOT NULL,
	endpoint text NOT NULL,
	record   jsonb NOT NULL
);
CREATE INDEX observations_reg_id ON observations (reg_id);

CREATE TABLE settings (
	name  text PRIMARY KEY,
	value bytea NOT NULL
);

CREATE TABLE bootstrap_configs (
	endpoint text PRIMARY KEY,
	record   jsonb NOT NULL
);

CREATE TABLE bootstrap_credentials (
	endpoint text PRIMARY KEY,
	identity text UNIQUE,
	record   jsonb NOT NULL
);

-- A blob's chunks are written under a fresh blob_id before the blob has a
-- row in fw_blobs; the fw_blobs row, written last, makes it visible.
CREATE SEQUENCE fw_blob_ids;
CREATE TABLE fw_blobs (
	sha256  text PRIMARY KEY,
	blob_id bigint NOT NULL UNIQUE,
	size    bigint NOT NULL
);
-- An upload in progress (or cut by a crash): its chunks are removed when it
-- fails, or by a later start when it began long ago.
CREATE TABLE fw_uploads (
	blob_id bigint PRIMARY KEY,
	started timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE fw_chunks (
	blob_id bigint NOT NULL,
	idx     integer NOT NULL,
	bytes   bytea NOT NULL,
	PRIMARY KEY (blob_id, idx)
);
-- Firmware is compressed already (or random-looking): storing chunks
-- uncompressed saves the CPU of trying, and lets substring reads skip.
ALTER TABLE fw_chunks ALTER COLUMN bytes SET STORAGE EXTERNAL;

CREATE TABLE fw_images (
	id          text PRIMARY KEY,
	device_type text NOT NULL,
	version     text NOT NULL,
	sha256      text NOT NULL,
	seq_no      bigint NOT NULL,
	record      jsonb NOT NULL
);
CREATE INDEX fw_images_device_type ON fw_images (device_type, seq_no);
CREATE INDEX fw_images_sha256 ON fw_images (sha256);

CREATE TABLE fw_packages (
	id         text PRIMARY KEY,
	kind       text NOT NULL,
	from_image text NOT NULL,
	to_image   text NOT NULL,
	sha256     text NOT NULL,
	record     jsonb NOT NULL
);
CREATE INDEX fw_packages_from_image ON fw_packages (from_image);
CREATE INDEX fw_packages_to_image ON fw_packages (to_image);
CREATE INDEX fw_packages_sha256 ON fw_packages (sha256);

CREATE TABLE fw_profiles (
	device_type text PRIMARY KEY,
	record      jsonb NOT NULL
);

CREATE TABLE campaigns (
	id     text PRIMARY KEY,
	state  text NOT NULL,
	record jsonb NOT NULL
);
CREATE TABLE campaign_devices (
	campaign_id text NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
	endpoint    text NOT NULL,
	state       text NOT NULL,
	record      jsonb NOT NULL,
	PRIMARY KEY (campaign_id, endpoint)
);

CREATE TABLE device_history (
	seq      bigserial PRIMARY KEY,
	endpoint text NOT NULL,
	record   jsonb NOT NULL
);
CREATE INDEX device_history_endpoint ON device_history (endpoint, seq);

CREATE TABLE audit (
	seq    bigserial PRIMARY KEY,
	record jsonb NOT NULL
);
