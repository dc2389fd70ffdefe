package inplace

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/fotastack/fota/delta"
)

// fullPatch is a full-image package of new: made from no old image, as the
// server makes it for a device whose running version it does not know.
func fullPatch(t testing.TB, new []byte, mod func(*delta.Options)) []byte {
	t.Helper()
	return makePatch(t, nil, new, 4096, mod)
}

// A device running any image, larger or smaller than the new one, takes a
// full-image package: every step is written directly (none reads its own
// target), the device boots the new version, and the region's bytes past
// the new image do not matter.
func TestFullImageInstallOverAnyImage(t *testing.T) {
	_, new := smallPair()
	patch := fullPatch(t, new, nil)
	hdr, err := delta.Parse(patch)
	if err != nil || !FullImage(hdr) {
		t.Fatalf("full package header: %+v %v", hdr, err)
	}
	r := rand.New(rand.NewPCG(9, 9))
	bigger := make([]byte, len(new)+30000)
	for i := range bigger {
		bigger[i] = byte(r.IntN(256))
	}
	for _, old := range [][]byte{bigger, []byte("a tiny unknown image"), new[:len(new)/2]} {
		f := provisioned(t, smallGeo, old)
		rep, err := Install(f, patch, Options{})
		if err != nil {
			t.Fatalf("install over a %d-byte image: %v", len(old), err)
		}
		if rep.DirectSteps != rep.Steps {
			t.Fatalf("%d of %d steps direct: a full-image step read its own target", rep.DirectSteps, rep.Steps)
		}
		res, err := Boot(f, Options{})
		if err != nil || res.Version != "2.0.0" || !bytes.Equal(bootImage(t, f), new) {
			t.Fatalf("boot after full install over %d bytes: %+v %v", len(old), res, err)
		}
		if rep.ArenaPeak != Need(hdr) {
			t.Fatalf("arena peak %d, Need %d", rep.ArenaPeak, Need(hdr))
		}
		t.Logf("over %d bytes: package %d bytes for a %d-byte image, %d steps, %d flash ops, %v simulated, RAM %d",
			len(old), len(patch), len(new), rep.Steps, rep.Ops, rep.SimTime, rep.ArenaPeak)
	}
}

// A full-image package is checked like a delta in everything but the old
// image: the wrong key, device type, sequence number (rollback), erase
// block or size are refused before the flash changes.
func TestFullImageRefusals(t *testing.T) {
	old, new := smallPair()
	_, otherKey, _ := ed25519.GenerateKey(nil)
	l, _ := LayoutFor(smallGeo)
	huge := make([]byte, l.ImageSize+1)
	for i := range huge {
		huge[i] = byte(i >> 12)
	}
	cases := []struct {
		name  string
		patch []byte
		want  error
	}{
		{"wrong-signature", fullPatch(t, new, func(o *delta.Options) { o.Key = otherKey }), delta.ErrSignature},
		{"wrong-device-type", fullPatch(t, new, func(o *delta.Options) { o.DeviceType = "other-meter" }), ErrDeviceType},
		{"rollback", fullPatch(t, new, func(o *delta.Options) { o.SeqNo = 0 }), ErrRollback},
		{"wrong-erase-block", makePatch(t, nil, new, 8192, nil), ErrDoesNotFit},
		{"image-bigger-than-region", fullPatch(t, huge, nil), ErrDoesNotFit},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := provisioned(t, smallGeo, old)
			ops := f.Stats().Ops()
			if _, err := Install(f, c.patch, Options{}); !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if f.Stats().Ops() != ops {
				t.Fatal("refused package changed the flash")
			}
			if res, err := Boot(f, Options{}); err != nil || res.Version != "1.0.0" {
				t.Fatalf("boot after refusal: %+v %v", res, err)
			}
		})
	}
}

// CheckBase: a full-image package must name the hash of nothing; a delta
// must name the running image exactly.
func TestCheckBase(t *testing.T) {
	rec := &BootRecord{ImageSize: 10, ImageHash: [32]byte{1}}
	if err := CheckBase(&delta.Header{OldSize: 0, OldHash: emptyHash}, rec); err != nil {
		t.Fatalf("full: %v", err)
	}
	if err := CheckBase(&delta.Header{OldSize: 0, OldHash: [32]byte{1}}, rec); !errors.Is(err, delta.ErrOldImage) {
		t.Fatalf("full with an old hash: %v", err)
	}
	if err := CheckBase(&delta.Header{OldSize: 10, OldHash: [32]byte{1}}, rec); err != nil {
		t.Fatalf("matching delta: %v", err)
	}
	if err := CheckBase(&delta.Header{OldSize: 11, OldHash: [32]byte{1}}, rec); !errors.Is(err, delta.ErrOldImage) {
		t.Fatalf("other size: %v", err)
	}
}

// TestFullImagePowerCutSweep cuts power after every erase or program of a
// full-image install, clean and torn: each operation of the staging copy,
// then each of the in-place phase. A cut before the package is journaled
// as staged boots the old image (and the retried install succeeds); any
// later cut must be finished by boot, since the old image is gone once the
// first block is erased: no in-place cut may come back on the old image.
func TestFullImagePowerCutSweep(t *testing.T) {
	old, new := smallPair()
	sweepEveryOperation(t, "full image, ", fullPatch(t, new, nil), old, new)
}

// Double faults: a cut in the install and another in the boot that
// resumes it, at random points; every run ends on the new image.
func TestFullImagePowerCutDuringResumeTwice(t *testing.T) {
	old, new := smallPair()
	patch := fullPatch(t, new, nil)
	base := provisioned(t, smallGeo, old)
	if _, err := Stage(base, patch, Options{}); err != nil {
		t.Fatal(err)
	}
	resume := func(f *Flash) error { _, err := Resume(f, Options{}); return err }
	total := opsOf(t, base, resume)
	r := rand.New(rand.NewPCG(5, 6))
	bad, tried := 0, 0
	for i := 0; i < 100/sweepStride(); i++ {
		k := 1 + r.IntN(total)
		second := 1 + r.IntN(total-k+10)
		ok, retried := runCut(t, base, resume, patch, old, new, k, i%2 == 0, second)
		tried++
		if !ok || retried {
			bad++
		}
	}
	if bad != 0 {
		t.Fatalf("%d of %d double-fault runs did not end on the new image by boot alone", bad, tried)
	}
}
