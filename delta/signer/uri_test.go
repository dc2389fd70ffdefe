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

// FuzzParseURI: any text is refused with ErrURI or read, never a panic;
// what is read names a module and a token, and never a PIN value.
func FuzzParseURI(f *testing.F) {
	for _, s := range []string{
		"pkcs11:token=My%20Token;object=fw%3Bsign;id=%01%02;type=private?module-path=/usr/lib/x.so&pin-source=file:/etc/pin",
		"pkcs11:token=t;object=k?module-path=/m.so",
		"pkcs11:token=t;object=k?module-path=/m.so&pin-value=1234",
		"pkcs11:token=%zz", "pkcs11:;;?&&", "pkcs11:token", "file:/key", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		t.Setenv("FOTA_PKCS11_MODULE", "")
		u, err := ParseURI(s)
		if err != nil {
			if !errors.Is(err, ErrURI) {
				t.Fatalf("%q: error %v is not ErrURI", s, err)
			}
			return
		}
		if u.Module == "" || u.Token == "" {
			t.Fatalf("%q read without a module or token: %+v", s, u)
		}
	})
}
