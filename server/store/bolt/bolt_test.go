package bolt

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"testing"

	bbolt "go.etcd.io/bbolt"

	"github.com/fotastack/fota/server/store"
	"github.com/fotastack/fota/server/store/storetest"
)

func openAt(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Backend{
		New: func(t *testing.T) store.Store { return openAt(t, filepath.Join(t.TempDir(), "s.db")) },
		Reopen: func(t *testing.T, s store.Store) store.Store {
			path := s.(*Store).db.Path()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			return openAt(t, path)
		},
	})
}

// A second process cannot open the same file (bbolt's flock); it fails,
// saying what holds it, instead of corrupting it.
func TestSingleWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	s := openAt(t, path)
	defer s.Close()
	_, err := Open(path)
	if err == nil {
		t.Fatal("opened a file held by another store")
	}
	if !bytes.Contains([]byte(err.Error()), []byte("another process")) {
		t.Fatalf("error does not say another process holds the file: %v", err)
	}
}

// An upload cut by a crash leaves chunks that no index entry names; the
// next open drops them, and the blobs that were finished stay readable.
func TestUnfinishedUploadDroppedOnOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	s := openAt(t, path)
	sum, _, err := s.PutBlob(bytes.NewReader(make([]byte, 100_000)), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	// What PutBlob has written when the process dies before its last
	// transaction: chunk buckets without an index entry.
	err = s.db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.Bucket(bucketFwChunks).CreateBucket([]byte("cut-upload"))
		if err != nil {
			return err
		}
		return b.Put(chunkKey(0), make([]byte, chunkSize))
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openAt(t, path)
	defer s.Close()
	err = s.db.View(func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketFwChunks).Bucket([]byte("cut-upload")) != nil {
			t.Error("the chunks of a cut upload are still there")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	bl, err := s.OpenBlob(sum)
	if err != nil {
		t.Fatal(err)
	}
	if bl.Size() != 100_000 {
		t.Fatalf("finished blob size %d", bl.Size())
	}
}

// A file written by the server before it was split into parts (made by
// that release: testdata/before-parts.db, firmware blobs whole in
// fw_blobs) opens: every record reads back, the blobs are rewritten into
// chunks once, and their bytes still match their hashes.
func TestOpensFileOfEarlierRelease(t *testing.T) {
	data, err := os.ReadFile("testdata/before-parts.db")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "old.db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	s := openAt(t, path)
	if s.Migrated == "" {
		t.Fatal("the old blob layout was not migrated")
	}
	t.Log("migrated:", s.Migrated)
	check := func(s *Store) {
		t.Helper()
		regs, err := s.Registrations()
		if err != nil || len(regs) != 1 || regs[0].Endpoint != "meter-1" || regs[0].Identity != "meter-1-id" || !regs[0].Queue {
			t.Fatalf("registrations %+v %v", regs, err)
		}
		if c, err := s.CredentialByIdentity("meter-1-id"); err != nil || c.Endpoint != "meter-1" || !bytes.Equal(c.Key, []byte{1, 2, 3, 4}) {
			t.Fatalf("credential %+v %v", c, err)
		}
		if obs, err := s.Observations(); err != nil || len(obs) != 1 || obs[0].Paths[0] != "/3/0/3" {
			t.Fatalf("observations %+v %v", obs, err)
		}
		if v, err := s.Setting("custom"); err != nil || string(v) != "value" {
			t.Fatalf("setting %q %v", v, err)
		}
		if _, err := s.Setting("firmware-signing-key"); err != nil {
			t.Fatalf("signing key: %v", err)
		}
		if c, err := s.BootstrapConfig("meter-1"); err != nil || c.Servers[0].Lifetime != 300 || string(c.Security[0].PublicKeyOrID) != "meter-1-id" {
			t.Fatalf("bootstrap config %+v %v", c, err)
		}
		if c, err := s.BootstrapCredentialByIdentity("meter-1-bs"); err != nil || c.Endpoint != "meter-1" {
			t.Fatalf("bootstrap credential %+v %v", c, err)
		}
		imgs, err := s.Images()
		if err != nil || len(imgs) != 3 {
			t.Fatalf("images %+v %v", imgs, err)
		}
		pkgs, err := s.Packages()
		if err != nil || len(pkgs) != 1 || pkgs[0].Kind != "delta" {
			t.Fatalf("packages %+v %v", pkgs, err)
		}
		var sums []string
		for _, img := range imgs {
			sums = append(sums, img.SHA256)
		}
		for _, sum := range append(sums, pkgs[0].SHA256) {
			bl, err := s.OpenBlob(sum)
			if err != nil {
				t.Fatalf("blob %s: %v", sum, err)
			}
			h := sha256.New()
			if _, err := io.Copy(h, io.NewSectionReader(bl, 0, bl.Size())); err != nil {
				t.Fatal(err)
			}
			if hex.EncodeToString(h.Sum(nil)) != sum {
				t.Fatalf("blob %s: bytes do not match their hash", sum)
			}
		}
		if p, err := s.Profile("meter"); err != nil || p.EraseBlock != 4096 {
			t.Fatalf("profile %+v %v", p, err)
		}
		cs, err := s.Campaigns()
		if err != nil || len(cs) != 1 || cs[0].State != "paused" || cs[0].Name != "fixture" {
			t.Fatalf("campaigns %+v %v", cs, err)
		}
		devs, err := s.CampaignDevices(cs[0].ID)
		if err != nil || len(devs) != 2 {
			t.Fatalf("campaign devices %+v %v", devs, err)
		}
	}
	check(s)
	s.Close()
	s = openAt(t, path)
	defer s.Close()
	if s.Migrated != "" {
		t.Fatalf("migrated twice: %s", s.Migrated)
	}
	check(s)
}
