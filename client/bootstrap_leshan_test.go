package client

import (
	"testing"

	"github.com/fotastack/fota/lwm2m"
)

// Leshan's bootstrap server writes whole Security instances: besides the
// account it sends the SMS resources (6 to 9), the hold-off (11) and the
// bootstrap account timeout (12), empty or zero. The write is accepted
// and the account kept; a resource the object does not define is still
// refused (interop/leshan_server_test.go runs the real exchange).
func TestAccountsWriteWholeSecurityInstanceAsLeshan(t *testing.T) {
	a := NewFactoryAccounts(BootstrapConfig{URI: "coaps://bs"})
	inst := append(dmSecurity(1, "coaps://127.0.0.1:5684", SecurityModePSK, []byte("dm-id"), []byte{1, 2, 3}),
		res(0, 1, 6, lwm2m.Integer(3)), res(0, 1, 7, lwm2m.Opaque([]byte{})), res(0, 1, 8, lwm2m.Opaque([]byte{})),
		res(0, 1, 9, lwm2m.String("")), res(0, 1, 11, lwm2m.Integer(1)), res(0, 1, 12, lwm2m.Integer(0)))
	if err := a.write(inst); err != nil {
		t.Fatalf("Leshan's Security instance refused: %v", err)
	}
	if v, ok := a.Get(lwm2m.ResourcePath(0, 1, SecPublicKeyOrID)); !ok || string(v.Bytes()) != "dm-id" {
		t.Fatalf("PSK identity after the write: %v %v", v, ok)
	}
	if v, ok := a.Get(lwm2m.ResourcePath(0, 1, 6)); !ok || v.Int() != 3 {
		t.Fatalf("SMS security mode not kept: %v %v", v, ok)
	}
	if err := a.write([]lwm2m.Entry{res(0, 1, 30, lwm2m.Integer(1))}); err == nil {
		t.Fatal("a resource the Security object does not define was accepted")
	}
}
