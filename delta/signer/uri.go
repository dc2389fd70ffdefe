package signer

import (
	"fmt"
	"net/url"
	"os"
	"strings"
)

// URI is the part of an RFC 7512 PKCS#11 URI that names a signing key.
type URI struct {
	Module    string // module-path (or $FOTA_PKCS11_MODULE)
	Token     string // token label
	Object    string // key label (CKA_LABEL)
	ID        []byte // key ID (CKA_ID), optional
	PINSource string // pin-source: a file, file:PATH
}

// ParseURI reads a pkcs11: URI. Path attributes (token, object, id, type)
// are separated by ';', query attributes (module-path, pin-source) by '&',
// values percent-encoded (RFC 7512 2.3). pin-value is refused: a PIN in a
// URI ends up in shell history and process listings.
func ParseURI(s string) (*URI, error) {
	rest, ok := strings.CutPrefix(s, "pkcs11:")
	if !ok {
		return nil, fmt.Errorf("%w: %q does not start with \"pkcs11:\"", ErrURI, s)
	}
	path, query, _ := strings.Cut(rest, "?")
	u := &URI{}
	set := func(attr string, sep string) error {
		for _, kv := range strings.Split(attr, sep) {
			if kv == "" {
				continue
			}
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return fmt.Errorf("%w: attribute %q has no value", ErrURI, k)
			}
			val, err := url.PathUnescape(v)
			if err != nil {
				return fmt.Errorf("%w: %s: %v", ErrURI, k, err)
			}
			switch k {
			case "token":
				u.Token = val
			case "object":
				u.Object = val
			case "id":
				u.ID = []byte(val)
			case "type":
				if val != "private" && val != "public" {
					return fmt.Errorf("%w: type=%s, a signing key is type=private", ErrURI, val)
				}
			case "module-path":
				u.Module = val
			case "pin-source":
				u.PINSource = val
			case "pin-value":
				return fmt.Errorf("%w: pin-value would put the PIN where process listings show it: use pin-source=file:PATH or $FOTA_PKCS11_PIN", ErrURI)
			default:
				// RFC 7512 2.3: unknown attributes may be ignored; a
				// vendor's own ones (x-...) are.
			}
		}
		return nil
	}
	if err := set(path, ";"); err != nil {
		return nil, err
	}
	if err := set(query, "&"); err != nil {
		return nil, err
	}
	if u.Module == "" {
		u.Module = os.Getenv("FOTA_PKCS11_MODULE")
	}
	switch {
	case u.Module == "":
		return nil, fmt.Errorf("%w: no module-path (the vendor's PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so) in the URI or $FOTA_PKCS11_MODULE", ErrURI)
	case u.Token == "":
		return nil, fmt.Errorf("%w: no token=LABEL", ErrURI)
	case u.Object == "" && u.ID == nil:
		return nil, fmt.Errorf("%w: no object=LABEL (or id=) naming the key", ErrURI)
	}
	return u, nil
}
