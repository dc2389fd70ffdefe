package bootstrap

import (
	"encoding/json"
	"testing"

	"github.com/fotastack/fota/lwm2m"
)

// FuzzBootstrapConfig: any JSON body of PUT /api/bootstrap/{ep} either
// fails Validate with an error or yields a configuration whose instances
// encode in every Bootstrap-Write format; never a panic.
func FuzzBootstrapConfig(f *testing.F) {
	f.Add([]byte(`{"toDelete":["/0","/1"],"security":{"1":{"uri":"coaps://127.0.0.1:5684","securityMode":"PSK","pskIdentity":"dev","secretKey":"0102","serverId":101}},"servers":{"0":{"shortId":101,"lifetime":300,"binding":"U"}}}`))
	f.Add([]byte(`{"security":{"0":{"uri":"coap://h:5683","securityMode":"NO_SEC","serverId":1},"1":{"uri":"coaps://bs:5784","bootstrapServer":true,"securityMode":"PSK","publicKeyOrId":"6964","secretKey":"01"}},"servers":{"3":{"shortId":1}},"acls":{"0":{"objectId":3,"objectInstanceId":0,"acls":{"1":15},"accessControlOwner":1}}}`))
	f.Add([]byte(`{"security":{"1":{"uri":"coaps://h","securityMode":"PSK","generatePsk":true,"serverId":101}},"servers":{"0":{"shortId":101}}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var c Config
		if err := json.Unmarshal(data, &c); err != nil {
			return
		}
		if err := Validate(&c); err != nil {
			return
		}
		for _, i := range sortedIDs(c.Security) {
			c.Security[i].GeneratePSK = false
		}
		entries := Entries(&c)
		if _, err := lwm2m.Encode(lwm2m.FormatSenMLCBOR, lwm2m.Root, entries); err != nil {
			t.Fatalf("encode pack: %v", err)
		}
		for _, i := range sortedIDs(c.Security) {
			p := lwm2m.InstancePath(0, i)
			for _, f := range []lwm2m.ContentFormat{lwm2m.FormatTLV, lwm2m.FormatSenMLCBOR, lwm2m.FormatLwM2MCBOR} {
				b, err := lwm2m.Encode(f, p, securityEntries(c.Security[i], i))
				if err != nil {
					t.Fatalf("encode %v in %v: %v", p, f, err)
				}
				if _, err := lwm2m.Decode(f, p, b, nil); err != nil {
					t.Fatalf("decode own %v encoding of %v: %v", f, p, err)
				}
			}
		}
	})
}

// FuzzBootstrapQuery: the ep=/pct= parser of Bootstrap-Request refuses
// bad input with an error.
func FuzzBootstrapQuery(f *testing.F) {
	f.Add("ep=dev1", "pct=112")
	f.Add("ep=", "pct=x")
	f.Add("pct=99999999", "ep=a")
	f.Fuzz(func(t *testing.T, a, b string) {
		ep, _, err := parseBootstrapQuery([]string{a, b})
		if err == nil && !lwm2m.ValidEndpoint(ep) {
			t.Fatalf("accepted endpoint %q", ep)
		}
	})
}
