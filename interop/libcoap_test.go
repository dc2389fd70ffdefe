package interop

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/fotastack/fota/server/servertest"
)

// libcoap's coap-client (Debian libcoap3-bin) registers, updates and
// de-registers against our server (LwM2M Core 6.2) over plain CoAP and
// DTLS-PSK. It exits 0 even when a handshake fails, so the tests check
// what it printed and the server's state, never the exit status alone.

func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (apt-get install libcoap3-bin)", name)
	}
	return p
}

// coapClient runs one coap-client request and returns what it printed.
func coapClient(t *testing.T, tool string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	// -B bounds the wait for an answer; a failed handshake otherwise
	// keeps it retrying.
	out, _ := exec.CommandContext(ctx, tool, append([]string{"-B", "4"}, args...)...).CombinedOutput()
	// The exit status says nothing about the outcome.
	return string(out)
}

func TestLibcoapRegistrationLifecycle(t *testing.T) {
	cases := []struct {
		name, tool, scheme string
		psk                bool
	}{
		{"plain CoAP", "coap-client-notls", "coap", false},
		{"DTLS-PSK", "coap-client-openssl", "coaps", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tool := needTool(t, c.tool)
			srv := servertest.Start(t)
			ep := "libcoap-" + c.scheme
			addr := srv.CoAPAddr().String()
			var sec []string
			if c.psk {
				addr = srv.CoAPSAddr().String()
				srv.AddPSK(ep, ep+"-id", []byte("libcoap-secret"))
				sec = []string{"-u", ep + "-id", "-k", "libcoap-secret"}
			}
			base := c.scheme + "://" + addr
			run := func(args ...string) string { return coapClient(t, tool, append(sec, args...)...) }

			out := run("-m", "post", "-t", "40", "-e", "</1/0>,</3/0>,</5/0>", base+"/rd?ep="+ep+"&lt=300&lwm2m=1.1&b=U")
			d := srv.Device(ep)
			if d == nil {
				t.Fatalf("Register not accepted; coap-client printed %q", out)
			}
			reg := d.Registration()
			if reg.Lifetime != 300 || reg.Version != "1.1" || reg.Links != "</1/0>,</3/0>,</5/0>" || reg.Transport != c.scheme {
				t.Fatalf("registration %+v", reg)
			}
			if c.psk && (reg.Security != "psk" || reg.Identity != ep+"-id") {
				t.Fatalf("security of registration %+v", reg)
			}

			out = run("-m", "post", base+"/rd/"+d.ID()+"?lt=900")
			if got := srv.Device(ep).Registration().Lifetime; got != 900 {
				t.Fatalf("Update: lifetime %d; coap-client printed %q", got, out)
			}

			out = run("-m", "delete", base+"/rd/"+d.ID())
			if srv.Device(ep) != nil {
				t.Fatalf("De-register not done; coap-client printed %q", out)
			}

			out = run("-m", "post", base+"/rd/"+d.ID())
			if !strings.Contains(out, "4.04") {
				t.Fatalf("Update of a removed registration: coap-client printed %q, want 4.04", out)
			}
		})
	}
}

// Bad input from libcoap: missing ep and bad lt are 4.00.
func TestLibcoapBadRegistration(t *testing.T) {
	tool := needTool(t, "coap-client-notls")
	srv := servertest.Start(t)
	base := "coap://" + srv.CoAPAddr().String()
	for _, q := range []string{"lt=300", "ep=x&lt=zz"} {
		out := coapClient(t, tool, "-m", "post", "-t", "40", "-e", "</1/0>", base+"/rd?"+q)
		if !strings.Contains(out, "4.00") {
			t.Errorf("%s: coap-client printed %q, want 4.00", q, out)
		}
	}
	if n := len(srv.Devices()); n != 0 {
		t.Fatalf("%d devices registered", n)
	}
}

// A wrong key fails the handshake; an identity of another endpoint gets
// 4.03 (LwM2M Core 7.2.1: no impersonation).
func TestLibcoapSecurityRefusals(t *testing.T) {
	tool := needTool(t, "coap-client-openssl")
	srv := servertest.Start(t)
	srv.AddPSK("owner", "owner-id", []byte("owner-secret"))
	srv.AddPSK("victim", "victim-id", []byte("victim-secret"))
	base := "coaps://" + srv.CoAPSAddr().String()

	out := coapClient(t, tool, "-u", "owner-id", "-k", "wrong-secret", "-m", "post", "-t", "40", "-e", "</1/0>", base+"/rd?ep=owner")
	if srv.Device("owner") != nil {
		t.Fatalf("registered with a wrong key; coap-client printed %q", out)
	}
	out = coapClient(t, tool, "-u", "owner-id", "-k", "owner-secret", "-m", "post", "-t", "40", "-e", "</1/0>", base+"/rd?ep=victim")
	if srv.Device("victim") != nil || !strings.Contains(out, "4.03") {
		t.Fatalf("impersonation: coap-client printed %q, victim registered: %v", out, srv.Device("victim") != nil)
	}
	// The plain listener refuses an endpoint that has credentials.
	out = coapClient(t, needTool(t, "coap-client-notls"), "-m", "post", "-t", "40", "-e", "</1/0>",
		"coap://"+srv.CoAPAddr().String()+"/rd?ep=owner")
	if srv.Device("owner") != nil || !strings.Contains(out, "4.03") {
		t.Fatalf("plain CoAP for a PSK endpoint: coap-client printed %q", out)
	}
}
