-- Several server nodes on one database (server/cluster).

-- One row per node id: the lease a live node renews (heartbeat). A node
-- whose lease_until has passed is dead to the others. incarnation tells
-- two processes with the same id apart; node_no is the short number the
-- node's DTLS Connection IDs carry (record routing).
CREATE TABLE cluster_nodes (
	node_id      text PRIMARY KEY,
	node_no      integer NOT NULL UNIQUE CHECK (node_no BETWEEN 1 AND 65535),
	cluster_addr text NOT NULL,
	incarnation  text NOT NULL,
	started      timestamptz NOT NULL,
	lease_until  timestamptz NOT NULL
);

-- Which node holds each device's DTLS session: API requests for the
-- device on any node go there.
CREATE TABLE device_owners (
	endpoint text PRIMARY KEY,
	node_id  text NOT NULL,
	since    timestamptz NOT NULL
);
CREATE INDEX device_owners_node ON device_owners (node_id);

-- A campaign device's claim: the node driving its update, until when
-- (renewed while it drives; another node takes a lapsed claim over).
ALTER TABLE campaign_devices ADD COLUMN claim_node text;
ALTER TABLE campaign_devices ADD COLUMN claim_until timestamptz;
CREATE INDEX campaign_devices_claim ON campaign_devices (claim_node) WHERE claim_node IS NOT NULL;
