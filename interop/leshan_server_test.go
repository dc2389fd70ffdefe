package interop

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/udp"
)

// Our client (`fota client`, a simulated device on a simulated NOR flash)
// against Leshan's server demo and a Leshan bootstrap server (our harness
// LeshanBootstrapMain over leshan-server-cf). Our server (`fota server`)
// is there as the firmware repository the Package URI points at.

// leshanServer is the Leshan server demo on free ports.
type leshanServer struct {
	p           *proc
	api         string // http://127.0.0.1:PORT/api
	coap, coaps string
}

func startLeshanServer(t *testing.T, dir string) *leshanServer {
	t.Helper()
	l := &leshanServer{
		coap:  fmt.Sprintf("127.0.0.1:%d", freeUDPPort(t)),
		coaps: fmt.Sprintf("127.0.0.1:%d", freeUDPPort(t)),
	}
	web := freeTCPPort(t)
	l.api = fmt.Sprintf("http://127.0.0.1:%d/api", web)
	cmd := javaCmd(dir, "org.eclipse.leshan.server.demo.LeshanServerDemo",
		"-lh", "127.0.0.1", "-lp", port(l.coap), "-slh", "127.0.0.1", "-slp", port(l.coaps),
		"-wh", "127.0.0.1", "-wp", fmt.Sprint(web))
	cmd.Dir = t.TempDir() // it writes Californium.properties where it runs
	l.p = startProc(t, "leshan-server", cmd)
	poll(t, 60*time.Second, "Leshan server demo REST API up", func() (bool, string) {
		code, b := tryGet(l.api + "/clients")
		return code == 200, fmt.Sprintf("%d %s", code, b)
	})
	return l
}

func port(hostport string) string { return hostport[strings.LastIndexByte(hostport, ':')+1:] }

var plainHTTP = http.Client{Timeout: 30 * time.Second}

// tryGet is a GET that reports failures instead of failing the test.
func tryGet(url string) (int, string) {
	resp, err := plainHTTP.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b)
}

// valueOf reads one resource through the Leshan demo's REST API and
// returns its value as text (the demo renders integers as strings) and
// the raw answer; "" when the read failed.
func valueOf(url string) (string, string) {
	code, b := tryGet(url)
	var r struct {
		Success bool `json:"success"`
		Content struct {
			Value any `json:"value"`
		} `json:"content"`
	}
	if code != 200 || json.Unmarshal([]byte(b), &r) != nil || !r.Success || r.Content.Value == nil {
		return "", b
	}
	return fmt.Sprint(r.Content.Value), b
}

// leshanResult is the Leshan demo's answer to an operation.
type leshanResult struct {
	Status  string          `json:"status"`
	Success bool            `json:"success"`
	Content json.RawMessage `json:"content"`
}

// leshanNode is a node of the Leshan demo's JSON: a resource (value or
// values) or an instance (resources).
type leshanNode struct {
	ID        int            `json:"id"`
	Value     any            `json:"value"`
	Values    map[string]any `json:"values"`
	Resources []leshanNode   `json:"resources"`
}

func (l *leshanServer) op(t *testing.T, method, path string, body any) (leshanResult, string) {
	t.Helper()
	code, b := httpJSON(t, method, l.api+path, "", body)
	var r leshanResult
	if code != 200 || json.Unmarshal(b, &r) != nil {
		t.Fatalf("Leshan %s %s: %d %s", method, path, code, b)
	}
	return r, string(b)
}

// read returns the node Leshan read at path.
func (l *leshanServer) read(t *testing.T, path string) (leshanNode, string) {
	t.Helper()
	r, raw := l.op(t, "GET", path, nil)
	var n leshanNode
	if !r.Success || json.Unmarshal(r.Content, &n) != nil {
		t.Fatalf("Leshan read %s: %s", path, raw)
	}
	return n, raw
}

func (n leshanNode) resource(id int) (any, bool) {
	for _, r := range n.Resources {
		if r.ID == id {
			return r.Value, true
		}
	}
	return nil, false
}

// firmwareImages writes v1, v2 and v3 of a 64 KiB image: each version
// changes a few places of the one before and grows a little, as real
// releases do.
func firmwareImages(t *testing.T, dir string) [3]string {
	t.Helper()
	rng := rand.New(rand.NewPCG(16, 2026))
	img := make([]byte, 64<<10)
	for i := range img {
		img[i] = byte(rng.Uint32())
	}
	var paths [3]string
	for v := range 3 {
		if v > 0 {
			for range 6 {
				off := rng.IntN(len(img) - 512)
				for i := range 300 {
					img[off+i] = byte(rng.Uint32())
				}
			}
			extra := make([]byte, 2048)
			for i := range extra {
				extra[i] = byte(rng.Uint32())
			}
			img = append(img, extra...)
		}
		paths[v] = filepath.Join(dir, fmt.Sprintf("v%d.bin", v+1))
		if err := os.WriteFile(paths[v], img, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return paths
}

// coapGet fetches a resource over plain CoAP with go-coap (Block2 as
// needed).
func coapGet(t *testing.T, addr, path string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cc, err := udp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	resp, err := cc.Get(ctx, path)
	if err != nil {
		t.Fatalf("coap GET %s%s: %v", addr, path, err)
	}
	body, err := resp.ReadBody()
	if err != nil || resp.Code().String() != "Content" {
		t.Fatalf("coap GET %s%s: %v %v", addr, path, resp.Code(), err)
	}
	return body
}

func TestLeshanServer(t *testing.T) {
	dir := leshanDir(t)
	srv := startFotaServer(t)
	ls := startLeshanServer(t, dir)

	// The Leshan bootstrap server.
	bsCoap, bsCoaps, bsWeb := freeUDPPort(t), freeUDPPort(t), freeTCPPort(t)
	bs := startProc(t, "leshan-bootstrap", javaCmd(dir, "io.fotastack.interop.LeshanBootstrapMain",
		"-lh", "127.0.0.1", "-lp", fmt.Sprint(bsCoap), "-slp", fmt.Sprint(bsCoaps), "-wp", fmt.Sprint(bsWeb)))
	bs.waitLine(t, 0, `^BS_STARTED `, 60*time.Second)
	bsAPI := fmt.Sprintf("http://127.0.0.1:%d/api", bsWeb)

	// Firmware v1 runs on the device; v2 comes by push, v3 by pull.
	work := t.TempDir()
	imgs := firmwareImages(t, work)
	const devType = "leshan-meter"
	for i, p := range imgs {
		srv.cli(t, "firmware", "add", p, "--version", fmt.Sprintf("%d.0", i+1), "--device-type", devType)
	}
	var images []struct {
		ID      string `json:"id"`
		Version string `json:"version"`
	}
	code, b := srv.do(t, "GET", "/api/firmware", nil)
	if code != 200 || json.Unmarshal(b, &images) != nil || len(images) != 3 {
		t.Fatalf("our firmware list: %d %s", code, b)
	}
	imageID := map[string]string{}
	for _, im := range images {
		imageID[im.Version] = im.ID
	}
	makePackage := func(to, from string) (id, path string, size int) {
		var pk struct {
			ID   string `json:"id"`
			Path string `json:"path"`
			Size int    `json:"size"`
		}
		code, b := srv.do(t, "POST", "/api/firmware/packages?image="+imageID[to]+"&from="+from, nil)
		if code != 200 || json.Unmarshal(b, &pk) != nil || pk.Path == "" {
			t.Fatalf("make package %s->%s: %d %s", from, to, code, b)
		}
		return pk.ID, pk.Path, pk.Size
	}

	// The device: bootstrap credentials from the factory; its DM account
	// (Leshan's server, DTLS-PSK) comes by bootstrap. The same DM
	// credentials are known to our server, where the Package URI points.
	ep := "fota-dev-1"
	bsID, bsKey := ep+"-bs", randomHex(t, 16)
	dmID, dmKey := ep+"-dm", randomHex(t, 16)
	if code, b := httpJSON(t, "PUT", bsAPI+"/security/clients", "", map[string]any{"endpoint": ep, "psk": map[string]any{"identity": bsID, "key": bsKey}}); code != 200 {
		t.Fatalf("Leshan bootstrap server: add credential: %d %s", code, b)
	}
	keyBytes, _ := hex.DecodeString(dmKey)
	cfg := map[string]any{
		"toDelete": []string{"/0", "/1"},
		"servers":  map[string]any{"0": map[string]any{"shortId": 123, "lifetime": 300, "binding": []string{"U"}, "notifIfDisabled": true}},
		"security": map[string]any{"1": map[string]any{
			"uri": "coaps://" + ls.coaps, "bootstrapServer": false, "securityMode": "PSK",
			"publicKeyOrId": javaBytes([]byte(dmID)), "secretKey": javaBytes(keyBytes), "serverId": 123,
		}},
	}
	if code, b := httpJSON(t, "PUT", bsAPI+"/bootstrap/"+ep, "", cfg); code != 200 {
		t.Fatalf("Leshan bootstrap server: add configuration: %d %s", code, b)
	}
	if code, b := httpJSON(t, "PUT", ls.api+"/security/clients", "", map[string]any{"endpoint": ep, "psk": map[string]any{"identity": dmID, "key": dmKey}}); code/100 != 2 {
		t.Fatalf("Leshan server: add credential: %d %s", code, b)
	}
	srv.addPSK(t, ep, dmID, dmKey)

	events := subscribe(t, ls.api[:len(ls.api)-len("/api")]+"/event?ep="+ep, "")
	cmd := exec.Command(srv.bin, "client", "--endpoint", ep, "--bootstrap", "coaps://127.0.0.1:"+fmt.Sprint(bsCoaps),
		"--psk-id", bsID, "--state-dir", filepath.Join(work, "state"), "--flash", filepath.Join(work, "dev.flash"),
		"--image", imgs[0], "--firmware-version", "1.0", "--device-type", devType, "--trust", srv.firmwarePublicKey,
		"--lifetime", "300s", "-v")
	cmd.Env = append(os.Environ(), "FOTA_PSK_KEY="+bsKey)
	dev := startProc(t, "fota-client", cmd)
	devLog := func() string {
		b, _ := os.ReadFile(dev.log)
		return string(b)
	}
	base := "/clients/" + ep

	t.Run("BootstrapThenRegisterPSK", func(t *testing.T) {
		bs.waitLine(t, 0, `^BS_END `+ep+`$`, 60*time.Second)
		waitEvent(t, events, "REGISTRATION", 30*time.Second, `"endpoint":"`+ep+`"`)
		code, b := httpJSON(t, "GET", ls.api+base, "", nil)
		var reg struct {
			Endpoint string `json:"endpoint"`
			Secure   bool   `json:"secure"`
			Links    []struct {
				URL string `json:"url"`
			} `json:"objectLinks"`
		}
		if code != 200 || json.Unmarshal(b, &reg) != nil || reg.Endpoint != ep || !reg.Secure {
			t.Fatalf("Leshan's registration of %s: %d %s", ep, code, b)
		}
		if !strings.Contains(string(b), `"/5/0"`) {
			t.Fatalf("registration without the Firmware Update object: %s", b)
		}
	})

	for _, f := range []string{"TLV", "SENML_JSON", "SENML_CBOR"} {
		name := map[string]string{"TLV": "ReadDeviceTLV", "SENML_JSON": "ReadDeviceSenMLJSON", "SENML_CBOR": "ReadDeviceSenMLCBOR"}[f]
		t.Run(name, func(t *testing.T) {
			n, raw := ls.read(t, base+"/3/0?format="+f)
			if v, _ := n.resource(2); v != ep {
				t.Fatalf("serial /3/0/2 = %v: %s", v, raw)
			}
			if v, _ := n.resource(3); v != "1.0" {
				t.Fatalf("firmware version /3/0/3 = %v: %s", v, raw)
			}
		})
	}

	t.Run("WriteAndReadBack", func(t *testing.T) {
		for _, v := range []string{"+02:00", "-07:00"} {
			r, raw := ls.op(t, "PUT", base+"/3/0/14", map[string]any{"id": 14, "value": v})
			if !r.Success {
				t.Fatalf("write /3/0/14: %s", raw)
			}
			n, raw := ls.read(t, base+"/3/0/14")
			if n.Value != v {
				t.Fatalf("read back /3/0/14: %s, want %s", raw, v)
			}
		}
	})

	t.Run("ExecuteRegistrationUpdateTrigger", func(t *testing.T) {
		r, raw := ls.op(t, "POST", base+"/1/0/8", "")
		if !r.Success {
			t.Fatalf("execute /1/0/8: %s", raw)
		}
		waitEvent(t, events, "UPDATED", 20*time.Second, ep)
	})

	t.Run("ObserveNotifications", func(t *testing.T) {
		if r, raw := ls.op(t, "PUT", base+"/3/0/13/attributes?pmax=1", nil); !r.Success {
			t.Fatalf("write-attributes pmax=1 on /3/0/13: %s", raw)
		}
		if r, raw := ls.op(t, "POST", base+"/3/0/13/observe", nil); !r.Success {
			t.Fatalf("observe /3/0/13: %s", raw)
		}
		seen := map[string]bool{}
		deadline := time.Now().Add(20 * time.Second)
		for len(seen) < 3 && time.Now().Before(deadline) {
			ev := waitEvent(t, events, "NOTIFICATION", time.Until(deadline), `"/3/0/13"`)
			seen[ev.Data] = true
		}
		if len(seen) < 3 {
			t.Fatalf("%d distinct notifications of /3/0/13 within 20 s", len(seen))
		}
		if code, b := httpJSON(t, "DELETE", ls.api+base+"/3/0/13/observe", "", nil); code != 200 {
			t.Fatalf("cancel observation: %d %s", code, b)
		}
	})

	// update waits until the device runs version (after the reboot of an
	// update it registers again) and reports Update Result 1.
	update := func(t *testing.T, version string) {
		t.Helper()
		r, raw := ls.op(t, "POST", base+"/5/0/2", "")
		if !r.Success {
			t.Fatalf("execute Update /5/0/2: %s", raw)
		}
		poll(t, 60*time.Second, "device on "+version+" with update result 1", func() (bool, string) {
			v, b := valueOf(ls.api + base + "/3/0/3")
			if v != version {
				return false, b
			}
			v, b = valueOf(ls.api + base + "/5/0/5")
			return v == "1", b
		})
	}
	state := func(t *testing.T) string {
		n, _ := ls.read(t, base+"/5/0/3")
		return fmt.Sprint(n.Value)
	}

	t.Run("FirmwarePushBlock1", func(t *testing.T) {
		_, path, _ := makePackage("2.0", "1.0")
		pkg := coapGet(t, srv.coap, path)
		if len(pkg) <= 1024 {
			t.Fatalf("package of %d bytes: too small to need Block1", len(pkg))
		}
		r, raw := ls.op(t, "PUT", base+"/5/0/0?timeout=120&format=OPAQUE", map[string]any{"id": 0, "value": hex.EncodeToString(pkg)})
		if !r.Success {
			t.Fatalf("write /5/0/0 (%d bytes): %s", len(pkg), raw)
		}
		// Californium cut it in Block1 blocks; our client saw them.
		if blocks := strings.Count(devLog(), "firmware push block"); blocks < 2 {
			t.Fatalf("%d Block1 blocks in our client's log for a %d-byte package", blocks, len(pkg))
		}
		if s := state(t); s != "2" {
			t.Fatalf("state /5/0/3 = %s after the push, want 2 (Downloaded)", s)
		}
		update(t, "2.0")
	})

	t.Run("FirmwarePullPackageURIBlock2", func(t *testing.T) {
		_, path, size := makePackage("3.0", "2.0")
		if size <= 1024 {
			t.Fatalf("package of %d bytes: fits one Block2 block of 1024", size)
		}
		// Only our server has it: the device must fetch it there, over
		// DTLS with its own PSK, block by block.
		uri := "coaps://" + srv.coaps + path
		r, raw := ls.op(t, "PUT", base+"/5/0/1", map[string]any{"id": 1, "value": uri})
		if !r.Success {
			t.Fatalf("write Package URI /5/0/1 = %s: %s", uri, raw)
		}
		poll(t, 60*time.Second, "download of "+uri, func() (bool, string) {
			v, b := valueOf(ls.api + base + "/5/0/3")
			return v == "2", b
		})
		update(t, "3.0")
	})

	t.Run("NoKeyInLogs", func(t *testing.T) {
		for _, p := range []*proc{dev, bs, ls.p, srv.p} {
			b, err := os.ReadFile(p.log)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{bsKey, dmKey, srv.token} {
				if strings.Contains(strings.ToLower(string(b)), k) {
					t.Errorf("%s's output holds a secret", p.name)
				}
			}
		}
	})
}

// javaBytes is b as the JSON Gson reads into a Java byte[] (signed).
func javaBytes(b []byte) []int {
	out := make([]int, len(b))
	for i, c := range b {
		out[i] = int(int8(c))
	}
	return out
}
