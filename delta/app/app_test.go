package app

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"testing"
)

func makePkg(t testing.TB, kind byte, name, version string, payload []byte) ([]byte, ed25519.PublicKey) {
	pub, priv, err := ed25519.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{7}, 64)))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := Make(&b, kind, name, version, bytes.NewReader(payload), int64(len(payload)), sha256.Sum256(payload), priv); err != nil {
		t.Fatal(err)
	}
	if int64(b.Len()) != Size(name, version, int64(len(payload))) {
		t.Fatalf("package of %d bytes, Size says %d", b.Len(), Size(name, version, int64(len(payload))))
	}
	return b.Bytes(), pub
}

func TestRoundTrip(t *testing.T) {
	payload := bytes.Repeat([]byte("meter application "), 5000)
	pkg, pub := makePkg(t, KindBlob, "meter-app", "1.2.0", payload)
	h, err := Verify(bytes.NewReader(pkg), int64(len(pkg)), pub)
	if err != nil {
		t.Fatal(err)
	}
	if h.Name != "meter-app" || h.Version != "1.2.0" || h.Kind != KindBlob || h.PayloadLen != int64(len(payload)) {
		t.Fatalf("header %+v", h)
	}
	if !bytes.Equal(pkg[h.PayloadOff:h.PayloadOff+h.PayloadLen], payload) {
		t.Fatal("payload is not where the header says")
	}
}

func TestTamperedRefused(t *testing.T) {
	payload := []byte("0123456789abcdef")
	pkg, pub := makePkg(t, KindTree, "assets", "2", payload)
	bad := bytes.Clone(pkg)
	bad[len(bad)-70] ^= 1 // a payload byte
	if _, err := Verify(bytes.NewReader(bad), int64(len(bad)), pub); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("changed payload: %v, want ErrIntegrity", err)
	}
	other, _, _ := ed25519.GenerateKey(nil)
	if _, err := Verify(bytes.NewReader(pkg), int64(len(pkg)), other); !errors.Is(err, ErrSignature) {
		t.Fatalf("other key: %v, want ErrSignature", err)
	}
	// Without a trusted key only the hash is checked.
	if _, err := Verify(bytes.NewReader(pkg), int64(len(pkg)), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(bytes.NewReader(pkg[:len(pkg)-1]), int64(len(pkg)-1), pub); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("cut package: %v, want ErrCorrupt", err)
	}
}

func FuzzParse(f *testing.F) {
	pkg, _ := makePkg(f, KindBlob, "meter-app", "1.2.0", []byte("payload bytes"))
	for _, s := range [][]byte{pkg, pkg[:20], []byte(magic), append([]byte(magic), 1, 9)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := Parse(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		if h.PayloadOff+h.PayloadLen+ed25519.SignatureSize != int64(len(b)) || len(h.Name) > MaxName || h.Name == "" {
			t.Fatalf("accepted header %+v of a %d-byte package", h, len(b))
		}
	})
}
