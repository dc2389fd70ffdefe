package client

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	"github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/options"

	"github.com/fotastack/fota/lwm2m"
)

// A new server account (what bootstrap provisions) moves the device: it
// de-registers from the old server and registers with the new one, with
// the new credentials.
func TestSetServerAccountMovesDevice(t *testing.T) {
	a := newTestServer(t, false)
	b := newTestServer(t, true)
	c, ev := startClient(t, a, nil)
	a.expect("register", time.Second)
	if err := c.SetServerAccount(ServerAccount{URI: b.uri}); err == nil {
		t.Fatal("coaps account without credentials accepted")
	}
	if err := c.SetServerAccount(ServerAccount{URI: b.uri, PSKIdentity: "dev-id", PSKKey: testPSKs["dev-id"]}); err != nil {
		t.Fatal(err)
	}
	if de := a.expect("deregister", 2*time.Second); de.code != codes.Deleted {
		t.Errorf("old server: deregister answered %v", de.code)
	}
	if reg := b.expect("register", 3*time.Second); reg.code != codes.Created {
		t.Fatalf("new server: register answered %v", reg.code)
	}
	ev.wait(t, EventRegistered, time.Second)
	if v, _ := c.SimpleObject(0).Get(lwm2m.ResourcePath(0, 0, SecServerURI)); v.Str() != b.uri {
		t.Errorf("Security object server URI %q, want %q", v.Str(), b.uri)
	}
	if id, _ := c.PSK(); id != "dev-id" {
		t.Errorf("PSK identity %q", id)
	}
}

// selfSigned makes an ECDSA P-256 certificate for cn.
func selfSigned(t *testing.T, cn string) (tls.Certificate, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, DNSNames: []string{cn},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, cert
}

// X.509 mode (LwM2M Core 7.1, security mode 2): the device verifies the
// server's certificate and presents its own.
func TestRegisterWithCertificates(t *testing.T) {
	srvCert, srvX := selfSigned(t, "lwm2m.test")
	devCert, devX := selfSigned(t, "dev-x509")
	devPool := x509.NewCertPool()
	devPool.AddCert(devX)
	s := &testServer{t: t, msgs: make(chan srvMsg, 100), regs: map[string]*testReg{}}
	l, err := coapnet.NewDTLSListener("udp", "127.0.0.1:0", coapnet.NewDTLSServerOptions(
		piondtls.WithCertificates(srvCert),
		piondtls.WithClientAuth(piondtls.RequireAndVerifyClientCert),
		piondtls.WithClientCAs(devPool),
		piondtls.WithCipherSuites(piondtls.TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8),
	))
	if err != nil {
		t.Fatal(err)
	}
	srv := dtls.NewServer(options.WithMux(mux.HandlerFunc(s.serve)))
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Stop(); _ = l.Close() })
	s.uri = "coaps://" + l.Addr().String()

	roots := x509.NewCertPool()
	roots.AddCert(srvX)
	c, _ := startClient(t, s, func(c *Config) {
		c.Endpoint = "dev-x509"
		c.Certificate, c.RootCAs, c.ServerName = &devCert, roots, "lwm2m.test"
	})
	if reg := s.expect("register", time.Second); reg.code != codes.Created {
		t.Fatalf("register answered %v", reg.code)
	}
	if r := s.device("dev-x509").do(codes.GET, "/3/0/0", -1, nil); r.code != codes.Content {
		t.Errorf("read over the X.509 session: %v", r.code)
	}
	if v, _ := c.SimpleObject(0).Get(lwm2m.ResourcePath(0, 0, SecMode)); v.Int() != SecurityModeCertificate {
		t.Errorf("security mode %v", v)
	}
}
