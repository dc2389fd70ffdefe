-- Pages of the device list go in the byte order of endpoints (what bbolt's
-- keys give), whatever the database's collation: this index serves
-- "ORDER BY endpoint COLLATE "C"" with "endpoint COLLATE "C" > cursor",
-- a keyset walk that reads only the page.
CREATE INDEX registrations_endpoint_bytes ON registrations (endpoint COLLATE "C", id);
