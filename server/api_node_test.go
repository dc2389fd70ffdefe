package server_test

import (
	"testing"

	"github.com/fotastack/fota/lwm2m"
	"github.com/fotastack/fota/objects"
	"github.com/fotastack/fota/server/servertest"
)

// A Leshan-style instance node written through the API reaches the device
// encoded in its best announced format (SenML JSON for the test device).
func TestAPIWritesNodesInBestFormat(t *testing.T) {
	srv := servertest.Start(t)
	d := connect(t, srv, "coap", "node-dev")
	node := map[string]any{"id": 0, "kind": "instance", "resources": []any{
		map[string]any{"id": 1, "kind": "singleResource", "value": 900},
		map[string]any{"id": 7, "kind": "singleResource", "value": "U"},
	}}
	var r map[string]any
	if code := srv.API("PUT", "/api/clients/node-dev/1/0", node, &r); code != 200 || r["status"] != "CHANGED" {
		t.Fatalf("HTTP %d %v", code, r)
	}
	body := d.get("/1/0")
	es, err := lwm2m.Decode(lwm2m.FormatSenMLJSON, lwm2m.MustParsePath("/1/0"), []byte(body), objects.Default())
	if err != nil {
		t.Fatalf("device got %q: %v", body, err)
	}
	if len(es) != 2 || es[0].Path.String() != "/1/0/1" || es[0].Value.Int() != 900 || es[1].Value.Str() != "U" {
		t.Fatalf("device got %v", es)
	}
}
