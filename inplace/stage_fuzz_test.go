package inplace

import (
	"crypto/ed25519"
	"sync"
	"testing"
)

var fuzzBase struct {
	once  sync.Once
	flash *Flash
	patch []byte
}

// FuzzInstallSignedPackage feeds the installer packages whose bytes are
// arbitrary but whose signature is valid (re-signed with the trusted key),
// so that everything behind the signature check is exercised: header
// checks, the structural decode, staging, the steps and the final hash.
// The installer must never panic, and a package Stage refuses must leave
// the flash untouched.
func FuzzInstallSignedPackage(f *testing.F) {
	fuzzBase.once.Do(func() {
		old, new := smallPair()
		fuzzBase.patch = makePatch(f, old[:16<<10], new[:18<<10], 4096, nil)
		fuzzBase.flash = provisioned(f, smallGeo, old[:16<<10])
	})
	p := fuzzBase.patch
	f.Add(p[:len(p)-ed25519.SignatureSize])
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) > 64<<10 {
			return
		}
		patch := append(append([]byte(nil), body...), ed25519.Sign(testKey, body)...)
		fl := fuzzBase.flash.Clone()
		ops := fl.Stats().Ops()
		if _, err := Stage(fl, patch, Options{}); err != nil {
			if fl.Stats().Ops() != ops {
				t.Fatalf("refused package changed the flash: %v", err)
			}
			return
		}
		// Staged: resume must end committed or failed, never panic.
		_, _ = Resume(fl, Options{})
		if _, err := Resume(fl, Options{}); err == nil {
			t.Fatal("second resume found work after the first ended")
		}
	})
}
