//go:build !cgo

package signer

import "fmt"

// Without cgo the PKCS#11 binding (which loads the vendor's C library)
// is not built in.
func openPKCS11(u *URI) (Signer, error) {
	return nil, fmt.Errorf("%w: %s: this fota was built without cgo, which PKCS#11 needs (build with CGO_ENABLED=1)", ErrNoModule, u.Module)
}

func generatePKCS11(u *URI) (Signer, error) { return openPKCS11(u) }
