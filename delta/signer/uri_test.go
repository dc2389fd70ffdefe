package signer

import (
	"errors"
	"testing"
)

func TestParseURI(t *testing.T) {
	t.Setenv("FOTA_PKCS11_MODULE", "/env/lib.so")
	u, err := ParseURI("pkcs11:token=My%20Token;object=fw%3Bsign;id=%01%02;type=private?module-path=/usr/lib/x.so&pin-source=file:/etc/pin&x-vendor=1")
	if err != nil {
		t.Fatal(err)
	}
	if u.Token != "My Token" || u.Object != "fw;sign" || string(u.ID) != "\x01\x02" || u.Module != "/usr/lib/x.so" || u.PINSource != "file:/etc/pin" {
		t.Fatalf("%+v", u)
	}
	u, err = ParseURI("pkcs11:token=t;object=k")
	if err != nil || u.Module != "/env/lib.so" {
		t.Fatalf("module from the environment: %+v %v", u, err)
	}
	for _, bad := range []string{
		"file:/x", "pkcs11:object=k", "pkcs11:token=t", "pkcs11:token=t;object=k?pin-value=1234",
		"pkcs11:token=t;object=k;type=secret-key", "pkcs11:token=t;object", "pkcs11:token=%zz;object=k",
	} {
		if _, err := ParseURI(bad); !errors.Is(err, ErrURI) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
