//go:build cgo

package signer

import (
	"crypto"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/miekg/pkcs11"
)

// PKCS#11 3.0 names for Edwards curves, which miekg/pkcs11's 2.40
// constants lack.
const (
	ckkECEdwards           = 0x40
	ckmECEdwardsKeyPairGen = 0x1055
	ckmEdDSA               = 0x1057
	ed25519Public          = 32
)

// oidEd25519 is the DER OBJECT IDENTIFIER 1.3.101.112 (RFC 8410), the
// CKA_EC_PARAMS of an Ed25519 key.
var oidEd25519 = []byte{0x06, 0x03, 0x2b, 0x65, 0x70}

// hsmKey is an Ed25519 private key in a token, with one logged-in
// session; Sign is serialised because a PKCS#11 session is not safe for
// concurrent use.
type hsmKey struct {
	mu   sync.Mutex
	ctx  *pkcs11.Ctx
	sess pkcs11.SessionHandle
	priv pkcs11.ObjectHandle
	pub  ed25519.PublicKey
	desc string

	module string
}

// modules are the loaded PKCS#11 libraries: C_Initialize and C_Finalize
// act on the whole library in the process, so keys opened from one module
// share one context, finalised when the last is closed.
var modules struct {
	sync.Mutex
	m map[string]*loaded
}

type loaded struct {
	ctx  *pkcs11.Ctx
	refs int
}

func loadModule(path string) (*pkcs11.Ctx, error) {
	modules.Lock()
	defer modules.Unlock()
	if l := modules.m[path]; l != nil {
		l.refs++
		return l.ctx, nil
	}
	ctx := pkcs11.New(path)
	if ctx == nil {
		return nil, fmt.Errorf("%w: %s (is it installed? SoftHSM2: apt-get install softhsm2)", ErrNoModule, path)
	}
	if err := ctx.Initialize(); err != nil && !isRV(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		ctx.Destroy()
		return nil, fmt.Errorf("%w: %s: C_Initialize: %v", ErrNoModule, path, err)
	}
	if modules.m == nil {
		modules.m = map[string]*loaded{}
	}
	modules.m[path] = &loaded{ctx: ctx, refs: 1}
	return ctx, nil
}

func unloadModule(path string) {
	modules.Lock()
	defer modules.Unlock()
	l := modules.m[path]
	if l == nil {
		return
	}
	if l.refs--; l.refs == 0 {
		l.ctx.Finalize()
		l.ctx.Destroy()
		delete(modules.m, path)
	}
}

func openPKCS11(u *URI) (Signer, error) { return open(u, false) }

func generatePKCS11(u *URI) (Signer, error) { return open(u, true) }

func open(u *URI, generate bool) (s Signer, err error) {
	pin, err := readPIN(u)
	if err != nil {
		return nil, err
	}
	ctx, err := loadModule(u.Module)
	if err != nil {
		return nil, err
	}
	k := &hsmKey{ctx: ctx, module: u.Module, desc: fmt.Sprintf("token %q key %q", u.Token, u.Object)}
	defer func() {
		if err != nil {
			k.Close()
		}
	}()
	slot, err := findToken(ctx, u.Token)
	if err != nil {
		return nil, err
	}
	if k.sess, err = ctx.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION); err != nil {
		return nil, fmt.Errorf("PKCS#11 token %q: open session: %w", u.Token, err)
	}
	// PKCS#11 logs in per application and token, not per session: when
	// another key of this process holds the token open, the token is
	// already unlocked and C_Login says so.
	if err := ctx.Login(k.sess, pkcs11.CKU_USER, pin); err != nil && !isRV(err, pkcs11.CKR_USER_ALREADY_LOGGED_IN) {
		switch {
		case isRV(err, pkcs11.CKR_PIN_INCORRECT):
			return nil, fmt.Errorf("%w: token %q: wrong PIN (check $FOTA_PKCS11_PIN or the pin-source file; repeated failures lock the token)", ErrLocked, u.Token)
		case isRV(err, pkcs11.CKR_PIN_LOCKED):
			return nil, fmt.Errorf("%w: token %q is locked after wrong PINs: its security officer must unlock it", ErrLocked, u.Token)
		}
		return nil, fmt.Errorf("%w: token %q: login: %v", ErrLocked, u.Token, err)
	}
	if generate {
		if _, err := k.find(pkcs11.CKO_PRIVATE_KEY, u); err == nil {
			return nil, fmt.Errorf("%w: %s", ErrKeyExists, k.desc)
		}
		if err := k.generate(u); err != nil {
			return nil, err
		}
	}
	if k.priv, err = k.find(pkcs11.CKO_PRIVATE_KEY, u); err != nil {
		return nil, err
	}
	pubObj, err := k.find(pkcs11.CKO_PUBLIC_KEY, u)
	if err != nil {
		return nil, fmt.Errorf("%w (its public half, to check signatures against)", err)
	}
	attrs, err := ctx.GetAttributeValue(k.sess, pubObj, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, nil)})
	if err != nil || len(attrs) != 1 {
		return nil, fmt.Errorf("PKCS#11 %s: read public key: %v", k.desc, err)
	}
	if k.pub, err = ecPoint(attrs[0].Value); err != nil {
		return nil, fmt.Errorf("PKCS#11 %s: %w", k.desc, err)
	}
	return k, nil
}

func findToken(ctx *pkcs11.Ctx, label string) (uint, error) {
	slots, err := ctx.GetSlotList(true)
	if err != nil {
		return 0, fmt.Errorf("PKCS#11: list slots: %w", err)
	}
	var seen []string
	for _, s := range slots {
		ti, err := ctx.GetTokenInfo(s)
		if err != nil || ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED == 0 {
			continue
		}
		l := strings.TrimRight(ti.Label, " \x00")
		if l == label {
			return s, nil
		}
		seen = append(seen, fmt.Sprintf("%q", l))
	}
	if len(seen) == 0 {
		return 0, fmt.Errorf("%w: %q: the module has no initialised token (SoftHSM2: softhsm2-util --init-token)", ErrNoToken, label)
	}
	return 0, fmt.Errorf("%w: %q; the module has %s", ErrNoToken, label, strings.Join(seen, ", "))
}

// find returns the one Ed25519 key object of class with the URI's label
// (and ID).
func (k *hsmKey) find(class uint, u *URI) (pkcs11.ObjectHandle, error) {
	tmpl := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, class),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, ckkECEdwards),
	}
	if u.Object != "" {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_LABEL, u.Object))
	}
	if u.ID != nil {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_ID, u.ID))
	}
	if err := k.ctx.FindObjectsInit(k.sess, tmpl); err != nil {
		return 0, fmt.Errorf("PKCS#11 %s: find: %w", k.desc, err)
	}
	objs, _, err := k.ctx.FindObjects(k.sess, 2)
	if ferr := k.ctx.FindObjectsFinal(k.sess); err == nil {
		err = ferr
	}
	switch {
	case err != nil:
		return 0, fmt.Errorf("PKCS#11 %s: find: %w", k.desc, err)
	case len(objs) == 0:
		return 0, fmt.Errorf("%w: %s", ErrNoKey, k.desc)
	case len(objs) > 1:
		return 0, fmt.Errorf("PKCS#11 %s: more than one key matches: add id= to the URI", k.desc)
	}
	return objs[0], nil
}

func (k *hsmKey) generate(u *URI) error {
	common := func(private bool) []*pkcs11.Attribute {
		a := []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, ckkECEdwards),
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, u.Object),
		}
		if u.ID != nil {
			a = append(a, pkcs11.NewAttribute(pkcs11.CKA_ID, u.ID))
		}
		if private {
			return append(a,
				pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
				pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
				pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
				pkcs11.NewAttribute(pkcs11.CKA_SIGN, true))
		}
		return append(a,
			pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, oidEd25519),
			pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true))
	}
	_, _, err := k.ctx.GenerateKeyPair(k.sess, []*pkcs11.Mechanism{pkcs11.NewMechanism(ckmECEdwardsKeyPairGen, nil)}, common(false), common(true))
	if err != nil {
		return fmt.Errorf("PKCS#11 %s: generate Ed25519 key pair: %w (does the token support CKM_EC_EDWARDS_KEY_PAIR_GEN?)", k.desc, err)
	}
	return nil
}

// ecPoint reads CKA_EC_POINT of an Ed25519 key: the 32-byte point, DER
// wrapped as an OCTET STRING (what SoftHSM2 and most tokens give) or bare.
func ecPoint(v []byte) (ed25519.PublicKey, error) {
	if len(v) == ed25519Public+2 && v[0] == 0x04 && v[1] == ed25519Public {
		v = v[2:]
	}
	if len(v) != ed25519Public {
		return nil, fmt.Errorf("public key point of %d bytes is not an Ed25519 key", len(v))
	}
	return ed25519.PublicKey(append([]byte(nil), v...)), nil
}

func (k *hsmKey) Public() crypto.PublicKey { return k.pub }

// Sign signs msg itself (pure Ed25519: opts.HashFunc() must be 0).
func (k *hsmKey) Sign(_ io.Reader, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts != nil && opts.HashFunc() != 0 {
		return nil, fmt.Errorf("PKCS#11 %s: signs pure Ed25519 only, not a %v digest", k.desc, opts.HashFunc())
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.ctx == nil {
		return nil, fmt.Errorf("PKCS#11 %s: closed", k.desc)
	}
	if err := k.ctx.SignInit(k.sess, []*pkcs11.Mechanism{pkcs11.NewMechanism(ckmEdDSA, nil)}, k.priv); err != nil {
		return nil, fmt.Errorf("PKCS#11 %s: sign: %w", k.desc, err)
	}
	sig, err := k.ctx.Sign(k.sess, msg)
	if err != nil {
		return nil, fmt.Errorf("PKCS#11 %s: sign: %w", k.desc, err)
	}
	return sig, nil
}

// Close logs out and lets go of the module.
func (k *hsmKey) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.ctx == nil {
		return nil
	}
	if k.sess != 0 {
		// Closing the last session logs the application out of the token
		// (C_CloseSession); C_Logout would log out other keys' sessions too.
		k.ctx.CloseSession(k.sess)
	}
	k.ctx = nil
	unloadModule(k.module)
	return nil
}

func isRV(err error, rv uint) bool {
	var e pkcs11.Error
	return errors.As(err, &e) && uint(e) == rv
}
