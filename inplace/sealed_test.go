package inplace

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"errors"
	"path/filepath"
	"testing"

	"github.com/fotastack/fota/delta"
	"github.com/fotastack/fota/delta/seal"
)

var (
	devA, _  = ecdh.X25519().NewPrivateKey(bytes.Repeat([]byte{0xA}, 32))
	devB, _  = ecdh.X25519().NewPrivateKey(bytes.Repeat([]byte{0xB}, 32))
	nextKey  = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{8}, 32))
	rogueKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32))
)

// sealedPatch makes old->new for the default device with the decoder's
// budget less one chunk, and seals it as opts says (signed by testKey
// unless opts.Signer is set).
func sealedPatch(t testing.TB, old, new []byte, opts seal.Options) (sealed, inner []byte) {
	t.Helper()
	inner = makePatch(t, old, new, 4096, func(o *delta.Options) { o.RAM = DefaultDecoderRAM - seal.ChunkRAM(seal.DefaultChunkSize) })
	if opts.Signer == nil {
		opts.Signer = testKey
	}
	sealed, err := seal.Seal(inner, opts)
	if err != nil {
		t.Fatal(err)
	}
	return sealed, inner
}

func TestSealedInstallDecryptsBlockByBlock(t *testing.T) {
	old, new := smallPair()
	// 512-byte chunks: the package is three of them.
	sealed, inner := sealedPatch(t, old, new, seal.Options{To: []*ecdh.PublicKey{devB.PublicKey(), devA.PublicKey()}, ChunkSize: 512})
	f := provisioned(t, smallGeo, old)
	rep, err := Install(f, sealed, Options{DeviceKey: devA})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bootImage(t, f), new) {
		t.Fatal("image after a sealed install is not the new image")
	}
	hdr, _ := delta.Parse(inner)
	want := Need(hdr) + seal.ChunkRAM(512)
	if rep.ArenaPeak != want || rep.ArenaPeak > DefaultRAMBudget+4096 {
		t.Fatalf("arena peak %d, want %d within %d", rep.ArenaPeak, want, DefaultRAMBudget+4096)
	}
	// What was staged is the ciphertext as sent; no run of the plaintext
	// package is anywhere in the flash.
	l, _ := LayoutFor(smallGeo)
	staged := make([]byte, len(sealed))
	if _, err := f.ReadAt(staged, l.StagingStart); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(staged, sealed) {
		t.Fatal("staging area does not hold the sealed package")
	}
	all := make([]byte, smallGeo.Size)
	if _, err := f.ReadAt(all, 0); err != nil {
		t.Fatal(err)
	}
	for off := hdr.HeaderSize; off+32 < len(inner)-64; off += 97 {
		if bytes.Contains(all, inner[off:off+32]) {
			t.Fatalf("plaintext package bytes at %d are in the flash", off)
		}
	}
	t.Logf("sealed %d bytes (inner %d); installer RAM %d = decoder %d + block 4096 + fixed + chunk %d",
		len(sealed), len(inner), rep.ArenaPeak, delta.ArenaSize(hdr), seal.ChunkRAM(512))
}

func TestSealedPackagesRefusedBeforeFlashChanges(t *testing.T) {
	old, new := smallPair()
	toB, _ := sealedPatch(t, old, new, seal.Options{To: []*ecdh.PublicKey{devB.PublicKey()}})
	toA, _ := sealedPatch(t, old, new, seal.Options{To: []*ecdh.PublicKey{devA.PublicKey()}})
	rogue, _ := sealedPatch(t, old, new, seal.Options{To: []*ecdh.PublicKey{devA.PublicKey()}, Signer: rogueKey})
	rogueRotation, _ := sealedPatch(t, old, new, seal.Options{NewKey: rogueKey.Public().(ed25519.PublicKey), Signer: rogueKey})
	flipped := bytes.Clone(toA)
	flipped[len(flipped)/2] ^= 4
	path := filepath.Join(t.TempDir(), "dev.flash")
	f, err := CreateFlash(path, smallGeo, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := Provision{Image: old, Version: "1.0.0", DeviceType: testDevice, TrustedKey: testKey.Public().(ed25519.PublicKey), SeqNo: 1}
	if err := p.Write(f); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		patch []byte
		key   *ecdh.PrivateKey
		want  error
	}{
		{"encrypted for another device", toB, devA, seal.ErrNotRecipient},
		{"encrypted, device has no key", toA, nil, seal.ErrNoDeviceKey},
		{"signed by another key", rogue, devA, seal.ErrSignature},
		{"announces a key, signed by it", rogueRotation, devA, seal.ErrSignature},
		{"a ciphertext bit", flipped, devA, seal.ErrSignature},
		{"cut short", toA[:len(toA)-1000], devA, seal.ErrFormat},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := readFlashBytes(t, path)
			ops := f.Stats().Ops()
			_, err := Install(f, c.patch, Options{DeviceKey: c.key})
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if !bytes.Equal(before, readFlashBytes(t, path)) || f.Stats().Ops() != ops {
				t.Fatal("refused package changed the flash")
			}
			t.Logf("refused: %v", err)
		})
	}
	// One chunk less of RAM than the package needs: refused up front.
	before := readFlashBytes(t, path)
	if _, err := Install(f, toA, Options{DeviceKey: devA, RAMBudget: DefaultRAMBudget + 4096 - 1000}); !errors.Is(err, ErrRAMBudget) {
		t.Fatalf("short budget: %v", err)
	}
	if !bytes.Equal(before, readFlashBytes(t, path)) {
		t.Fatal("over-budget sealed package changed the flash")
	}
	if _, err := Install(f, toA, Options{DeviceKey: devA}); err != nil {
		t.Fatalf("the package for this device after the refusals: %v", err)
	}
}

// trusted is the key the boot record trusts now.
func trusted(t testing.TB, f *Flash) ed25519.PublicKey {
	t.Helper()
	_, rec, err := Image(f)
	if err != nil {
		t.Fatal(err)
	}
	return rec.TrustedKey
}

// Key rotation end to end: a package signed by the current key announces
// the next; once it commits the device trusts the next key only.
func TestKeyRotation(t *testing.T) {
	old, new := smallPair()
	next := nextKey.Public().(ed25519.PublicKey)
	rotate, _ := sealedPatch(t, old, new, seal.Options{NewKey: next, To: []*ecdh.PublicKey{devA.PublicKey()}})
	f := provisioned(t, smallGeo, old)
	if _, err := Install(f, rotate, Options{DeviceKey: devA}); err != nil {
		t.Fatal(err)
	}
	if !trusted(t, f).Equal(next) {
		t.Fatal("the announced key is not trusted after the update")
	}
	res, err := Boot(f, Options{DeviceKey: devA})
	if err != nil || res.Version != "2.0.0" {
		t.Fatalf("boot: %+v %v", res, err)
	}
	newer := append(bytes.Clone(new), bytes.Repeat([]byte("v3"), 900)...)
	mk := func(k ed25519.PrivateKey) []byte {
		return makePatch(t, new, newer, 4096, func(o *delta.Options) { o.Key, o.Version, o.SeqNo = k, "3.0.0", 3 })
	}
	ops := f.Stats().Ops()
	if _, err := Install(f, mk(testKey), Options{}); !errors.Is(err, delta.ErrSignature) {
		t.Fatalf("a package signed by the retired key: %v", err)
	}
	if f.Stats().Ops() != ops {
		t.Fatal("the refused package changed the flash")
	}
	if _, err := Install(f, mk(nextKey), Options{}); err != nil {
		t.Fatalf("a package signed by the new key: %v", err)
	}
	if !bytes.Equal(bootImage(t, f), newer) || !trusted(t, f).Equal(next) {
		t.Fatal("after the second update")
	}
}

// A power cut anywhere in a sealed, encrypted, key-rotating install: the
// device boots the old image trusting the old key, or the new image
// trusting the new key, never a mix; a boot without the device key cannot
// finish a staged encrypted update and says why.
func TestSealedPowerCutSweep(t *testing.T) {
	old, new := smallPair()
	next := nextKey.Public().(ed25519.PublicKey)
	sealed, _ := sealedPatch(t, old, new, seal.Options{NewKey: next, To: []*ecdh.PublicKey{devA.PublicKey()}})
	base := provisioned(t, smallGeo, old)
	opts := Options{DeviceKey: devA}
	install := func(f *Flash) error { _, err := Install(f, sealed, opts); return err }
	total := opsOf(t, base, install)
	stride := sweepStride() * 3
	var r sweepResult
	for k := 1; k < total; k += stride {
		f := base.Clone()
		f.CutAfter(k, k%2 == 0)
		if err := install(f); !errors.Is(err, ErrPowerCut) {
			t.Fatalf("cut %d: %v", k, err)
		}
		f.Reboot()
		if k == 1+stride*5 {
			if _, err := Boot(f, Options{}); err != nil && !errors.Is(err, seal.ErrNoDeviceKey) {
				t.Fatalf("cut %d: boot without the device key: %v", k, err)
			}
		}
		res, err := Boot(f, opts)
		if err != nil {
			t.Fatalf("cut %d: boot: %v", k, err)
		}
		img, rec, _ := Image(f)
		switch {
		case bytes.Equal(img, new) && res.Version == "2.0.0" && rec.TrustedKey.Equal(next):
			r.add(true, false)
		case bytes.Equal(img, old) && res.Version == "1.0.0" && rec.TrustedKey.Equal(testKey.Public().(ed25519.PublicKey)):
			if err := install(f); err != nil {
				t.Fatalf("cut %d: retry: %v", k, err)
			}
			r.add(bytes.Equal(bootImage(t, f), new) && trusted(t, f).Equal(next), true)
		default:
			t.Fatalf("cut %d: device runs %q with key %x", k, res.Version, rec.TrustedKey[:4])
		}
	}
	t.Logf("%d cuts of %d operations: %d bricked, %d booted old and retried", r.tried, total, r.bricked, r.oldThenRetried)
	if r.bricked > 0 {
		t.Fatal("bricked")
	}
}
