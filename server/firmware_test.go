package server_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/options"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/fotastack/fota/delta"
	"github.com/fotastack/fota/server"
	"github.com/fotastack/fota/server/firmware"
	"github.com/fotastack/fota/server/servertest"
)

// testImages returns an old image and a new one that differs from it in a
// few places, as a firmware update does.
func testImages(size int, seed int64) (old, new []byte) {
	rng := rand.New(rand.NewSource(seed))
	old = make([]byte, size)
	rng.Read(old)
	new = append([]byte(nil), old...)
	for i := 0; i < 20; i++ {
		off := rng.Intn(size - 64)
		rng.Read(new[off : off+32])
	}
	new = append(new, []byte("v2 trailer")...)
	return old, new
}

func startFirmware(t *testing.T, path string, mod ...func(*server.Config)) (*servertest.Server, *firmware.Repository) {
	t.Helper()
	srv := servertest.StartAt(t, path, mod...)
	return srv, srv.Firmware
}

func apiRaw(t *testing.T, srv *servertest.Server, method, path, ctype string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+servertest.Token)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// The repository over the HTTP API: raw and multipart uploads, listing,
// duplicates and bad input refused with a clear status, the signing key,
// delete.
func TestFirmwareRepositoryAPI(t *testing.T) {
	srv, fw := startFirmware(t, filepath.Join(t.TempDir(), "fota.db"))
	old, new := testImages(8<<10, 1)
	if code, b := apiRaw(t, srv, "POST", "/api/firmware?deviceType=sensor&version=1.0", "application/octet-stream", old); code != 201 {
		t.Fatalf("raw upload: %d %s", code, b)
	}
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	_ = mw.WriteField("deviceType", "sensor")
	_ = mw.WriteField("version", "2.0")
	fwr, _ := mw.CreateFormFile("file", "v2.bin")
	fwr.Write(new)
	mw.Close()
	if code, b := apiRaw(t, srv, "POST", "/api/firmware", mw.FormDataContentType(), mp.Bytes()); code != 201 {
		t.Fatalf("multipart upload: %d %s", code, b)
	}
	if code, _ := apiRaw(t, srv, "POST", "/api/firmware?deviceType=sensor&version=1.0", "", old); code != 409 {
		t.Fatalf("duplicate upload: %d, want 409", code)
	}
	for _, q := range []string{"?deviceType=sensor", "?version=3", "?deviceType=sensor&version=3&eraseBlock=7"} {
		if code, b := apiRaw(t, srv, "POST", "/api/firmware"+q, "", old); code != 400 {
			t.Fatalf("upload %s: %d %s, want 400", q, code, b)
		}
	}
	if code, _ := apiRaw(t, srv, "POST", "/api/firmware?deviceType=sensor&version=3", "", nil); code != 400 {
		t.Fatalf("empty image accepted")
	}
	var imgs []firmware.Image
	if code := srv.API("GET", "/api/firmware", nil, &imgs); code != 200 || len(imgs) != 2 {
		t.Fatalf("list: %d %v", code, imgs)
	}
	if imgs[0].Version != "1.0" || imgs[1].Version != "2.0" || imgs[1].SeqNo <= imgs[0].SeqNo || imgs[1].Size != len(new) {
		t.Fatalf("images %+v", imgs)
	}
	var pk map[string]any
	if code := srv.API("POST", "/api/firmware/packages?image="+imgs[1].ID+"&from=1.0", nil, &pk); code != 200 ||
		pk["kind"] != firmware.PackageDelta || pk["path"] != "/fw/"+pk["id"].(string) || len(pk["etag"].(string)) != 16 {
		t.Fatalf("make package: %d %v", code, pk)
	}
	var pks []map[string]any
	if code := srv.API("GET", "/api/firmware/packages", nil, &pks); code != 200 || len(pks) != 1 || pks[0]["id"] != pk["id"] {
		t.Fatalf("packages: %d %v", code, pks)
	}
	if code := srv.API("POST", "/api/firmware/packages?image=nope", nil, nil); code != 404 {
		t.Fatalf("package of a missing image: %d", code)
	}
	var key map[string]string
	if code := srv.API("GET", "/api/firmware/key", nil, &key); code != 200 || key["publicKey"] != hex.EncodeToString(fw.PublicKey()) {
		t.Fatalf("key: %d %v", code, key)
	}
	if code := srv.API("DELETE", "/api/firmware/"+imgs[0].ID, nil, nil); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	if code := srv.API("DELETE", "/api/firmware/"+imgs[0].ID, nil, nil); code != 404 {
		t.Fatalf("second delete: %d", code)
	}
	resp, err := http.Post(srv.URL+"/api/firmware?deviceType=sensor&version=9", "", bytes.NewReader(old))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("upload without token: %d", resp.StatusCode)
	}
}

// A delta package is made once and then served from the store, also after
// a restart (same key, same ID, no new build); an unknown base falls back
// to the full image; an opaque package is served as is.
func TestPackageCache(t *testing.T) {
	db := filepath.Join(t.TempDir(), "fota.db")
	srv, fw := startFirmware(t, db)
	old, new := testImages(64<<10, 2)
	if err := fw.SetProfile(firmware.DeviceProfile{DeviceType: "sensor", EraseBlock: 1024, RAM: 16384}); err != nil {
		t.Fatal(err)
	}
	if _, err := fw.AddImage("sensor", "1.0", old, false); err != nil {
		t.Fatal(err)
	}
	target, err := fw.AddImage("sensor", "2.0", new, false)
	if err != nil {
		t.Fatal(err)
	}
	p1, err := fw.PackageFor(target, "1.0", false)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := fw.PackageFor(target, "1.0", false)
	if err != nil {
		t.Fatal(err)
	}
	if p1.ID != p2.ID || fw.Builds() != 1 || p1.Kind != firmware.PackageDelta {
		t.Fatalf("second request: %+v vs %+v, builds %d", p1, p2, fw.Builds())
	}
	data, err := fw.PackageData(p1)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) >= len(new)/4 {
		t.Fatalf("delta of %d bytes for %d changed bytes of %d", len(data), 20*32, len(new))
	}
	got, err := delta.Apply(old, data, fw.PublicKey())
	if err != nil || !bytes.Equal(got, new) {
		t.Fatalf("apply delta: %v", err)
	}
	h, _ := delta.Parse(data)
	if !h.InPlace || h.EraseBlock != 1024 || h.DeviceType != "sensor" || h.Version != "2.0" || h.SeqNo != target.SeqNo {
		t.Fatalf("header %+v", h)
	}
	full, err := fw.PackageFor(target, "0.9-unknown", false)
	if err != nil {
		t.Fatal(err)
	}
	if full.Kind != firmware.PackageFull || full.FromVersion != "" {
		t.Fatalf("fallback: %+v", full)
	}
	fdata, _ := fw.PackageData(full)
	if got, err := delta.Apply(nil, fdata, fw.PublicKey()); err != nil || !bytes.Equal(got, new) {
		t.Fatalf("apply full package: %v", err)
	}
	forced, _ := fw.PackageFor(target, "1.0", true)
	if forced.ID != full.ID {
		t.Fatalf("full=true gave %+v", forced)
	}
	vendor := []byte("another vendor's package format")
	op, _ := fw.AddImage("sensor", "3.0-vendor", vendor, true)
	opk, err := fw.PackageFor(op, "1.0", false)
	if err != nil || opk.Kind != firmware.PackageOpaque {
		t.Fatalf("opaque: %+v %v", opk, err)
	}
	if b, _ := fw.PackageData(opk); !bytes.Equal(b, vendor) {
		t.Fatal("opaque package altered")
	}
	pub := fw.PublicKey()

	srv.Stop()
	_, fw2 := startFirmware(t, db)
	if !bytes.Equal(fw2.PublicKey(), pub) {
		t.Fatal("signing key changed over a restart")
	}
	p3, err := fw2.PackageFor(target, "1.0", false)
	if err != nil || p3.ID != p1.ID || fw2.Builds() != 0 {
		t.Fatalf("after restart: %+v %v builds %d", p3, err, fw2.Builds())
	}
	// Deleting the base image drops the deltas made from it.
	if err := fw2.DeleteImage(firmware.ImageID("sensor", "1.0")); err != nil {
		t.Fatal(err)
	}
	if _, err := fw2.Package(p1.ID); err == nil {
		t.Fatal("delta from a deleted image is still listed")
	}
}

// dialDTLS opens a DTLS-PSK CoAP connection to the server as endpoint ep.
// blockwise turns on go-coap's client blockwise (whole transfers); off, the
// test sees each block.
func dialDTLS(t *testing.T, srv *servertest.Server, ep string, bw bool) *udpClient.Conn {
	t.Helper()
	key := []byte("fw-test-psk-key!")
	srv.AddPSK(ep, ep+"-id", key)
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pionPSK(pc, srv.CoAPSAddr(), ep+"-id", key)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := conn.HandshakeContext(ctx); err != nil {
		t.Fatal(err)
	}
	cc := coapdtls.Client(conn, options.WithCloseSocket(), options.WithBlockwise(bw, blockwise.SZX1024, time.Minute))
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// registerOn registers endpoint ep over cc (LwM2M Core 6.2.1).
func registerOn(t *testing.T, cc *udpClient.Conn, ep string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	q := func(s string) message.Option { return message.Option{ID: message.URIQuery, Value: []byte(s)} }
	r, err := cc.Post(ctx, "/rd", message.AppLinkFormat, bytes.NewReader([]byte("</3/0>,</5/0>")),
		q("ep="+ep), q("lt=300"), q("lwm2m=1.1"), q("b=U"))
	if err != nil {
		t.Fatalf("register %s: %v", ep, err)
	}
	if r.Code() != codes.Created {
		t.Fatalf("register %s: %v", ep, r.Code())
	}
	loc, _ := r.Options().LocationPath()
	return loc
}

// getBlock fetches one block of path with an explicit Block2 option.
func getBlock(t *testing.T, cc *udpClient.Conn, path string, num int64, szx blockwise.SZX) (codes.Code, []byte, []byte, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := cc.NewGetRequest(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := blockwise.EncodeBlockOption(szx, num, false)
	req.SetOptionUint32(message.Block2, v)
	resp, err := cc.Do(req)
	if err != nil {
		t.Fatalf("GET %s block %d: %v", path, num, err)
	}
	etag, _ := resp.Options().GetBytes(message.ETag)
	var body []byte
	if resp.Body() != nil {
		body, _ = io.ReadAll(resp.Body())
	}
	more := false
	if bv, err := resp.Options().GetUint32(message.Block2); err == nil {
		_, _, more, _ = blockwise.DecodeBlockOption(bv)
	}
	return resp.Code(), body, etag, more
}

// A device downloads a package by Block2 over its DTLS session: whole
// (go-coap's client blockwise), block by block in any order with the same
// ETag, validation with the ETag, and a block past the end refused.
func TestBlock2DownloadOverDTLS(t *testing.T) {
	srv, fw := startFirmware(t, filepath.Join(t.TempDir(), "fota.db"))
	_, img := testImages(20<<10, 3)
	target, _ := fw.AddImage("sensor", "2.0", img, false)
	p, err := fw.PackageFor(target, "", false)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := fw.PackageData(p)
	cc := dialDTLS(t, srv, "dl-1", true)
	registerOn(t, cc, "dl-1")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cc.Get(ctx, firmware.PathOf(p))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body())
	if resp.Code() != codes.Content || !bytes.Equal(got, want) {
		t.Fatalf("whole GET: %v, %d bytes, want %d", resp.Code(), len(got), len(want))
	}
	if n := fw.Fetched("dl-1", p.ID); n != len(want) {
		t.Fatalf("progress %d of %d", n, len(want))
	}

	cc = dialDTLS(t, srv, "dl-2", false)
	nblocks := (len(want) + 511) / 512
	var etag0 []byte
	for _, num := range []int64{int64(nblocks - 1), 0, 3, 1} {
		code, body, etag, more := getBlock(t, cc, firmware.PathOf(p), num, blockwise.SZX512)
		end := min(int(num+1)*512, len(want))
		if code != codes.Content || !bytes.Equal(body, want[num*512:end]) {
			t.Fatalf("block %d: %v, %d bytes", num, code, len(body))
		}
		if more != (end < len(want)) {
			t.Fatalf("block %d: more=%v", num, more)
		}
		if etag0 == nil {
			etag0 = etag
		}
		if !bytes.Equal(etag, etag0) || !bytes.Equal(etag, p.ETag()) {
			t.Fatalf("block %d: etag %x, want %x", num, etag, p.ETag())
		}
	}
	if code, _, _, _ := getBlock(t, cc, firmware.PathOf(p), int64(nblocks+5), blockwise.SZX512); code != codes.BadOption {
		t.Fatalf("block past the end: %v", code)
	}
	if code, _, _, _ := getBlock(t, cc, "/fw/0000000000000000", 0, blockwise.SZX512); code != codes.NotFound {
		t.Fatalf("unknown package: %v", code)
	}
	// Validation: the device holds the current ETag.
	vreq, _ := cc.NewGetRequest(ctx, firmware.PathOf(p))
	vreq.SetOptionBytes(message.ETag, p.ETag())
	vresp, err := cc.Do(vreq)
	if err != nil || vresp.Code() != codes.Valid {
		t.Fatalf("validate: %v %v", vresp, err)
	}
}

// The real firmware pairs of ../shared/firmware: the package service makes
// a delta far smaller than the image.
func TestPackageRealFirmware(t *testing.T) {
	if testing.Short() {
		t.Skip("delta of real firmware takes seconds")
	}
	dir := "../../shared/firmware/upy-pybv11-oneline"
	old, err1 := os.ReadFile(filepath.Join(dir, "old.bin"))
	new, err2 := os.ReadFile(filepath.Join(dir, "new.bin"))
	if err1 != nil || err2 != nil {
		t.Skip("../shared/firmware not present")
	}
	_, fw := startFirmware(t, filepath.Join(t.TempDir(), "fota.db"))
	fw.AddImage("pybv11", "1", old, false)
	target, _ := fw.AddImage("pybv11", "2", new, false)
	p, err := fw.PackageFor(target, "1", false)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("package %d bytes for an image of %d (%.2f%%)", p.Size, len(new), 100*float64(p.Size)/float64(len(new)))
	if p.Size > len(new)/10 {
		t.Fatalf("delta of %d bytes", p.Size)
	}
}

// BenchmarkBlock2Download: one device fetching a 256 KiB package by Block2
// (SZX 1024) over its DTLS session; allocations are per whole download.
func BenchmarkBlock2Download(b *testing.B) {
	srv := servertest.Start(b)
	fw := srv.Firmware
	rng := rand.New(rand.NewSource(5))
	img := make([]byte, 256<<10)
	rng.Read(img)
	target, _ := fw.AddImage("bench", "1", img, true) // opaque: served as is
	p, err := fw.PackageFor(target, "", false)
	if err != nil {
		b.Fatal(err)
	}
	key := []byte("bench-psk-key-01")
	srv.AddPSK("bench", "bench-id", key)
	pc, _ := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	conn, err := pionPSK(pc, srv.CoAPSAddr(), "bench-id", key)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := conn.HandshakeContext(ctx); err != nil {
		b.Fatal(err)
	}
	cc := coapdtls.Client(conn, options.WithCloseSocket(), options.WithBlockwise(true, blockwise.SZX1024, time.Minute))
	defer cc.Close()
	b.SetBytes(int64(p.Size))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		resp, err := cc.Get(ctx, firmware.PathOf(p))
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body())
		if n != int64(p.Size) {
			b.Fatalf("%d bytes", n)
		}
	}
}

// BenchmarkPackageForCached: asking for a package that is already made.
func BenchmarkPackageForCached(b *testing.B) {
	srv := servertest.Start(b)
	fw := srv.Firmware
	old, new := testImages(64<<10, 9)
	fw.AddImage("bench", "1", old, false)
	target, _ := fw.AddImage("bench", "2", new, false)
	if _, err := fw.PackageFor(target, "1", false); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := fw.PackageFor(target, "1", false); err != nil {
			b.Fatal(err)
		}
	}
	if fw.Builds() != 1 {
		b.Fatalf("%d builds", fw.Builds())
	}
}

// BenchmarkBlock2Retained: heap still held, per device, right after 10
// devices each downloaded a 256 KiB package over DTLS (what go-coap's
// per-exchange caches keep; the package itself is one shared copy).
func BenchmarkBlock2Retained(b *testing.B) {
	srv := servertest.Start(b)
	fw := srv.Firmware
	rng := rand.New(rand.NewSource(6))
	img := make([]byte, 256<<10)
	rng.Read(img)
	target, _ := fw.AddImage("bench", "1", img, true)
	p, _ := fw.PackageFor(target, "", false)
	if _, err := fw.PackageData(p); err != nil { // the shared copy, loaded before measuring
		b.Fatal(err)
	}
	const devices = 10
	for i := 0; i < b.N; i++ {
		var conns []*udpClient.Conn
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for d := 0; d < devices; d++ {
			ep := fmt.Sprintf("ret-%d-%d", i, d)
			key := []byte("bench-psk-key-01")
			srv.AddPSK(ep, ep+"-id", key)
			pc, _ := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			conn, err := pionPSK(pc, srv.CoAPSAddr(), ep+"-id", key)
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if err := conn.HandshakeContext(ctx); err != nil {
				b.Fatal(err)
			}
			cc := coapdtls.Client(conn, options.WithCloseSocket(), options.WithBlockwise(true, blockwise.SZX1024, time.Minute))
			resp, err := cc.Get(ctx, firmware.PathOf(p))
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body())
			cancel()
			conns = append(conns, cc)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/devices/1024, "KiB-retained/device")
		for _, cc := range conns {
			cc.Close()
		}
	}
}

// Issue 14: the rollback counter follows the version, not the order of
// upload. 2.0 uploaded before 1.0 keeps the higher counter; a version that
// is not semantic needs an explicit counter, and two versions may not share
// one.
func TestImageCounterFollowsVersion(t *testing.T) {
	srv, fw := startFirmware(t, filepath.Join(t.TempDir(), "fota.db"))
	old, new := testImages(4096, 3)
	v2, err := fw.AddImage("meter", "2.0", new, false)
	if err != nil {
		t.Fatal(err)
	}
	v1, err := fw.AddImage("meter", "1.0", old, false)
	if err != nil {
		t.Fatal(err)
	}
	if v1.SeqNo >= v2.SeqNo {
		t.Fatalf("1.0 uploaded after 2.0 has counter %d, 2.0 has %d", v1.SeqNo, v2.SeqNo)
	}
	code, body := apiRaw(t, srv, "POST", "/api/firmware?deviceType=meter&version=nightly", "", old)
	if code != 400 || !strings.Contains(string(body), "--seq") {
		t.Fatalf("non-semantic version without seq: %d %s", code, body)
	}
	if code, body := apiRaw(t, srv, "POST", "/api/firmware?deviceType=meter&version=nightly&seq=7", "", old); code != 201 {
		t.Fatalf("non-semantic version with seq: %d %s", code, body)
	}
	if code, body := apiRaw(t, srv, "POST", "/api/firmware?deviceType=meter&version=nightly-2&seq=7", "", new); code != 400 {
		t.Fatalf("a second version with counter 7: %d %s", code, body)
	}
	if _, err := fw.AddImage("meter", "1.0.0", old, false); err == nil {
		t.Fatal("1.0.0 beside 1.0 (the same version) was accepted")
	}
}
