package server_test

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/fotastack/fota/client"
	"github.com/fotastack/fota/client/firmware"
	"github.com/fotastack/fota/delta"
	"github.com/fotastack/fota/delta/seal"
	"github.com/fotastack/fota/delta/signer"
	"github.com/fotastack/fota/delta/signer/softhsmtest"
	"github.com/fotastack/fota/inplace"
	"github.com/fotastack/fota/server"
	"github.com/fotastack/fota/server/campaign"
	fwrepo "github.com/fotastack/fota/server/firmware"
)

// startKeyedDevice is a real device (client, Firmware Update object,
// in-place installer on a flash file) that trusts trust and holds the
// decryption key dev.
func startKeyedDevice(t *testing.T, e *campaignEnv, ep string, image []byte, trust ed25519.PublicKey, dev *ecdh.PrivateKey) *inplace.Flash {
	t.Helper()
	dir := t.TempDir()
	f, err := inplace.CreateFlash(filepath.Join(dir, "flash.bin"), inplace.Geometry{Size: 256 << 10, EraseBlock: 4096, PageSize: 256}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := (inplace.Provision{Image: image, Version: "1.0", DeviceType: "sim", TrustedKey: trust, SeqNo: 1}).Write(f); err != nil {
		t.Fatal(err)
	}
	key := []byte("real-device-key!")
	e.srv.AddPSK(ep, ep+"-id", key)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	c, err := client.New(client.Config{
		Endpoint: ep, ServerURI: "coaps://" + e.srv.CoAPSAddr().String(), PSKIdentity: ep + "-id", PSKKey: key,
		Device:   client.DeviceInfo{Manufacturer: "Fotastack Sim", FirmwareVersion: "1.0", DeviceType: "sim"},
		StateDir: filepath.Join(dir, "state"), Logger: quiet, RequestTimeout: 2 * time.Second, MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	o, err := firmware.Open(firmware.Config{Flash: f, StateDir: filepath.Join(dir, "fw"), Logger: quiet, Install: inplace.Options{DeviceKey: dev}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	firmware.Attach(ctx, c, o)
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		c.Stop()
		o.Close()
		f.Close()
	})
	return f
}

// An encrypted package end to end through the server: the operator seals
// a delta to one device's key; the repository stores and serves only the
// ciphertext; a campaign sends it to that device and to another: the
// first decrypts block by block and runs v2, the second refuses it
// (result 6, package not for it) and runs v1, its flash unchanged.
func TestCampaignSealedPackage(t *testing.T) {
	if testing.Short() {
		t.Skip("real devices with in-place install")
	}
	e := startCampaigns(t, filepath.Join(t.TempDir(), "fota.db"))
	v1, v2 := testImages(40<<10, 12)
	op := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{5}, 32)) // the operator's signing key, not the server's
	devA, _ := seal.GenerateDeviceKey()
	devB, _ := seal.GenerateDeviceKey()
	inner, err := delta.Make(v1, v2, delta.Options{InPlace: true, EraseBlock: 4096, RAM: inplace.DefaultDecoderRAM - seal.ChunkRAM(seal.DefaultChunkSize),
		Key: op, DeviceType: "sim", Version: "2.0", SeqNo: 2})
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := seal.Seal(inner, seal.Options{Signer: op, To: []*ecdh.PublicKey{devA.PublicKey()}})
	if err != nil {
		t.Fatal(err)
	}
	img, err := e.fw.Upload(fwrepo.ImageSpec{DeviceType: "sim", Version: "2.0"}, bytes.NewReader(sealed))
	if err != nil {
		t.Fatal(err)
	}
	if !img.Opaque {
		t.Fatal("a sealed upload was stored as an image to diff")
	}
	// At rest: the ciphertext as uploaded, no run of the plaintext.
	data, err := e.fw.ImageData(img)
	if err != nil || !bytes.Equal(data, sealed) {
		t.Fatalf("stored blob is not the sealed package: %v", err)
	}
	for off := 40; off+32 < len(inner)-64; off += 50 {
		if bytes.Contains(data, inner[off:off+32]) {
			t.Fatal("plaintext in the stored package")
		}
	}
	if _, err := e.fw.Upload(fwrepo.ImageSpec{DeviceType: "sim", Version: "2.1"}, bytes.NewReader(sealed[:len(sealed)-10])); err == nil {
		t.Fatal("a malformed sealed package was accepted")
	}
	flashA := startKeyedDevice(t, e, "sealed-a", v1, op.Public().(ed25519.PublicKey), devA)
	flashB := startKeyedDevice(t, e, "sealed-b", v1, op.Public().(ed25519.PublicKey), devB)
	waitFor(t, "devices registered", func() bool { return e.srv.Device("sealed-a") != nil && e.srv.Device("sealed-b") != nil })
	c, err := e.cm.Create(campaign.Campaign{Image: img.ID, Targets: campaign.Selector{Endpoints: []string{"sealed-a", "sealed-b"}},
		Method: campaign.DeliveryPull, Waves: []float64{100}, Concurrency: 2, ErrorThreshold: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, states := waitCampaign(t, e.cm, c.ID, "ended", func(c campaign.Campaign, ds []campaign.Device) bool {
		for _, d := range ds {
			if d.State != campaign.DeviceSucceeded && d.State != campaign.DeviceFailed {
				return false
			}
		}
		return len(ds) == 2
	})
	for _, s := range states {
		switch s.Endpoint {
		case "sealed-a":
			if s.State != campaign.DeviceSucceeded || s.PackageKind != fwrepo.PackageOpaque {
				t.Fatalf("device A: %+v", s)
			}
		case "sealed-b":
			if s.State != campaign.DeviceFailed || s.Result != 6 {
				t.Fatalf("device B: %+v, want failed with result 6", s)
			}
			t.Logf("device B refused: %s", s.Error)
		}
	}
	if got, _, _ := inplace.Image(flashA); !bytes.Equal(got, v2) {
		t.Fatal("device A does not run v2")
	}
	if got, _, _ := inplace.Image(flashB); !bytes.Equal(got, v1) {
		t.Fatal("device B does not run v1")
	}
}

// TestPKCS11ServerSigningKey: the server signs the packages it makes with
// a key in SoftHSM2 (server.Config.SigningKey, fota server --signing-key);
// they verify with the token's public key, which the API gives devices.
func TestPKCS11ServerSigningKey(t *testing.T) {
	module := softhsmtest.Token(t, "fota-server", "1357")
	t.Setenv("FOTA_PKCS11_PIN", "1357")
	k, err := signer.Generate("pkcs11:token=fota-server;object=firmware?module-path=" + module)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	pub, _ := signer.PublicKey(k)
	srv, fw := startFirmware(t, filepath.Join(t.TempDir(), "fota.db"), func(c *server.Config) { c.SigningKey = k })
	if !fw.PublicKey().Equal(pub) {
		t.Fatal("the repository does not name the HSM key")
	}
	var key map[string]string
	if code := srv.API("GET", "/api/firmware/key", nil, &key); code != 200 || key["publicKey"] == "" {
		t.Fatalf("key: %d %v", code, key)
	}
	v1, v2 := testImages(16<<10, 3)
	if _, err := fw.AddImage("sensor", "1.0", v1, false); err != nil {
		t.Fatal(err)
	}
	img2, err := fw.AddImage("sensor", "2.0", v2, false)
	if err != nil {
		t.Fatal(err)
	}
	p, err := fw.PackageFor(img2, "1.0", false)
	if err != nil {
		t.Fatal(err)
	}
	data, err := fw.PackageData(p)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := delta.Apply(v1, data, pub); err != nil || !bytes.Equal(out, v2) {
		t.Fatalf("the server's package with the HSM key: %v", err)
	}
}
