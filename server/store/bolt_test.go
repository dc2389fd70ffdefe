package store

import (
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func open(t *testing.T, path string) *Bolt {
	t.Helper()
	s, err := OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Everything written survives closing and reopening the file.
func TestBoltSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	s := open(t, path)
	now := time.Now().UTC().Truncate(time.Second)
	reg := Registration{ID: "r1", Endpoint: "ep1", Lifetime: 60, Version: "1.1", Binding: "U", Links: "</1/0>", Created: now, Updated: now}
	must(t, s.PutRegistration(reg))
	must(t, s.PutCredential(Credential{Endpoint: "ep1", Mode: "psk", Identity: "id1", Key: []byte{1, 2}}))
	must(t, s.PutObservation(Observation{Token: []byte{9, 9}, Endpoint: "ep1", RegID: "r1", Paths: []string{"/3/0/9"}}))
	must(t, s.PutObservation(Observation{Token: []byte{8}, Endpoint: "ep2", RegID: "r2", Paths: []string{"/3/0/9"}}))
	must(t, s.PutSetting("k", []byte("v")))
	must(t, s.Close())

	s = open(t, path)
	defer s.Close()
	regs, err := s.Registrations()
	must(t, err)
	if len(regs) != 1 || regs[0].Endpoint != "ep1" || !regs[0].Updated.Equal(now) || regs[0].Expires() != now.Add(time.Minute) {
		t.Fatalf("registrations %+v", regs)
	}
	c, err := s.CredentialByIdentity("id1")
	must(t, err)
	if c.Endpoint != "ep1" || string(c.Key) != "\x01\x02" {
		t.Fatalf("credential %+v", c)
	}
	v, err := s.Setting("k")
	must(t, err)
	if string(v) != "v" {
		t.Fatalf("setting %q", v)
	}
	// Deleting a registration deletes its observations, not others'.
	must(t, s.DeleteRegistration("r1"))
	obs, err := s.Observations()
	must(t, err)
	if len(obs) != 1 || obs[0].RegID != "r2" {
		t.Fatalf("observations after delete %+v", obs)
	}
}

// A PSK identity belongs to one endpoint; changing an endpoint's identity
// frees the old one.
func TestBoltPSKIdentityIndex(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "s.db"))
	defer s.Close()
	must(t, s.PutCredential(Credential{Endpoint: "a", Mode: "psk", Identity: "shared", Key: []byte{1}}))
	if err := s.PutCredential(Credential{Endpoint: "b", Mode: "psk", Identity: "shared", Key: []byte{2}}); err == nil {
		t.Fatal("second endpoint took the same PSK identity")
	}
	must(t, s.PutCredential(Credential{Endpoint: "a", Mode: "psk", Identity: "new", Key: []byte{1}}))
	if _, err := s.CredentialByIdentity("shared"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("old identity still maps: %v", err)
	}
	must(t, s.PutCredential(Credential{Endpoint: "b", Mode: "psk", Identity: "shared", Key: []byte{2}}))
	must(t, s.DeleteCredential("b"))
	if _, err := s.CredentialByIdentity("shared"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted identity still maps: %v", err)
	}
	if err := s.DeleteCredential("b"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	if _, err := s.Credential("zz"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown endpoint: %v", err)
	}
}

// A second process cannot open the same file (bbolt's flock); it fails
// instead of corrupting it.
func TestBoltSingleWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	s := open(t, path)
	defer s.Close()
	if _, err := OpenBolt(path); err == nil {
		t.Fatal("opened a file held by another store")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
