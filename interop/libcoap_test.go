package interop

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fotastack/fota/server/firmware"
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

// libcoap's coap-client downloads a firmware package from our server by
// Block2 over DTLS-PSK, with the Package URI our campaign engine writes
// when it grants a pipelining window (?nstart=8): a stop-and-wait client
// sends the query back and gets the package byte for byte, plain RFC 7959
// blocks of 1024 bytes; with -L 5 (Q-Block2 asked, RFC 9177) it falls back
// to the same and gets the same bytes.
func TestLibcoapDownloadsPackage(t *testing.T) {
	tool := needTool(t, "coap-client-openssl")
	srv := servertest.Start(t)
	fw := srv.Firmware
	if err := fw.SetProfile(firmware.DeviceProfile{DeviceType: "libcoap-sensor", EraseBlock: 1024, RAM: 16384}); err != nil {
		t.Fatal(err)
	}
	img := make([]byte, 20<<10)
	for i := range img {
		img[i] = byte(i*7 + i/300)
	}
	target, err := fw.AddImage("libcoap-sensor", "2.0", img, true)
	if err != nil {
		t.Fatal(err)
	}
	p, err := fw.PackageFor(target, "1.0", true)
	if err != nil {
		t.Fatal(err)
	}
	want, err := fw.PackageData(p)
	if err != nil {
		t.Fatal(err)
	}
	ep := "libcoap-dl"
	srv.AddPSK(ep, ep+"-id", []byte("libcoap-secret"))
	uri := "coaps://" + srv.CoAPSAddr().String() + firmware.PathOf(p) + "?nstart=8"
	for _, c := range []struct {
		name  string
		extra []string
	}{{"RFC 7959", nil}, {"asks Q-Block2 (-L 5)", []string{"-L", "5"}}} {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "pkg")
			args := append([]string{"-u", ep + "-id", "-k", "libcoap-secret", "-b", "1024", "-o", out}, c.extra...)
			printed := coapClient(t, tool, append(args, uri)...)
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatalf("no package written (%v); coap-client printed %q", err, printed)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("downloaded %d bytes, the package has %d (equal: false); coap-client printed %q", len(got), len(want), printed)
			}
		})
	}
}
