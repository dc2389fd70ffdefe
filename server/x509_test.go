package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/options"

	"github.com/fotastack/fota/server"
	"github.com/fotastack/fota/server/servertest"
	"github.com/fotastack/fota/server/store"
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fota test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue makes a certificate with the given CN signed by the CA.
func (ca *testCA) issue(t *testing.T, cn string, serverSide bool) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if serverSide {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func (d *testDevice) dialX509(addr net.Addr, cert tls.Certificate, roots *x509.CertPool) error {
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return err
	}
	conn, err := piondtls.ClientWithOptions(pc, addr,
		piondtls.WithCertificates(cert),
		piondtls.WithRootCAs(roots),
		piondtls.WithServerName("127.0.0.1"),
		piondtls.WithCipherSuites(piondtls.TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8),
	)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := conn.HandshakeContext(ctx); err != nil {
		conn.Close()
		return err
	}
	d.cc = coapdtls.Client(conn, options.WithMux(d), options.WithCloseSocket())
	d.t.Cleanup(func() { _ = d.cc.Close() })
	return nil
}

// X.509 devices over ECDHE_ECDSA_WITH_AES_128_CCM_8: the certificate's CN
// is the endpoint (LwM2M Core 7.2.1); a device with another CN cannot
// register as it. PSK devices keep working on the same listener.
func TestX509Devices(t *testing.T) {
	ca := newTestCA(t)
	srv := servertest.Start(t, func(c *server.Config) {
		c.Certificates = []tls.Certificate{ca.issue(t, "fota server", true)}
		c.ClientCAs = ca.pool
	})
	if err := srv.Store.PutCredential(store.Credential{Endpoint: "x509-dev", Mode: "x509"}); err != nil {
		t.Fatal(err)
	}
	d := newTestDevice(t, "x509-dev")
	if err := d.dialX509(srv.CoAPSAddr(), ca.issue(t, "x509-dev", false), ca.pool); err != nil {
		t.Fatalf("x509 handshake: %v", err)
	}
	if r := d.register(); r.Code != codes.Created {
		t.Fatalf("register: %v", r.Code)
	}
	var c map[string]any
	srv.API("GET", "/api/clients/x509-dev", nil, &c)
	if c["security"] != "x509" || c["identity"] != "x509-dev" || c["transport"] != "coaps" {
		t.Fatalf("client %v", c)
	}
	if r, err := srv.Read(context.Background(), "x509-dev", "/3/0/0", nil); err != nil || string(r.Payload) != "fotastack" {
		t.Fatalf("read over x509 session: %+v %v", r, err)
	}

	other := newTestDevice(t, "x509-dev")
	if err := other.dialX509(srv.CoAPSAddr(), ca.issue(t, "someone-else", false), ca.pool); err != nil {
		t.Fatalf("x509 handshake: %v", err)
	}
	if r := other.register(); r.Code != codes.Forbidden {
		t.Fatalf("CN someone-else registering x509-dev: %v, want 4.03", r.Code)
	}

	// A certificate from another CA fails the handshake.
	rogue := newTestCA(t)
	bad := newTestDevice(t, "x509-dev")
	if err := bad.dialX509(srv.CoAPSAddr(), rogue.issue(t, "x509-dev", false), ca.pool); err == nil {
		t.Fatal("handshake with a certificate of an unknown CA succeeded")
	}

	connect(t, srv, "coaps", "psk-beside-x509")
}
