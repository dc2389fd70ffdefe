package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"strings"
	"time"
)

// TLS of the HTTP API: the server's certificate (given, or self-signed on
// the first start and kept beside the database) and the CLI's trust in it
// (a CA file, or the certificate's pinned SHA-256 fingerprint, which is
// what a self-signed certificate needs: no CA to chain to).

// fingerprint is the SHA-256 of a certificate's DER, hex, as the server
// prints it and --tls-pin takes it.
func fingerprint(der []byte) string {
	h := sha256.Sum256(der)
	return hex.EncodeToString(h[:])
}

// apiCertificate loads certFile/keyFile, or (both empty) the self-signed
// certificate at base.https-cert.pem/-key.pem, made there on first use
// for the host of addr. created says the caller is to print the
// fingerprint as news.
func apiCertificate(certFile, keyFile, base, addr string) (cert tls.Certificate, fp string, created bool, err error) {
	if (certFile == "") != (keyFile == "") {
		return cert, "", false, errors.New("--tls-cert and --tls-key go together")
	}
	if certFile == "" {
		certFile, keyFile = base+".https-cert.pem", base+".https-key.pem"
		if _, serr := os.Stat(certFile); errors.Is(serr, os.ErrNotExist) {
			if err := selfSigned(certFile, keyFile, addr); err != nil {
				return cert, "", false, fmt.Errorf("make the API's self-signed certificate: %w", err)
			}
			created = true
		}
	}
	cert, err = tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return cert, "", false, fmt.Errorf("load the API's TLS certificate %s: %w", certFile, err)
	}
	return cert, fingerprint(cert.Certificate[0]), created, nil
}

// selfSigned writes a self-signed ECDSA P-256 certificate for the host of
// addr, localhost and loopback (key file mode 0600, never replaced).
func selfSigned(certFile, keyFile, addr string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: "fota API"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(5, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if host, _, err := net.SplitHostPort(addr); err == nil && host != "" {
		if ip := net.ParseIP(host); ip != nil {
			if !ip.IsUnspecified() {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			}
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, host)
		}
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		tmpl.DNSNames = append(tmpl.DNSNames, h)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kd, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	kf, err := os.OpenFile(keyFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := pem.Encode(kf, &pem.Block{Type: "PRIVATE KEY", Bytes: kd}); err != nil {
		kf.Close()
		return err
	}
	if err := kf.Close(); err != nil {
		return err
	}
	return os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

// loopbackOnly refuses a plain HTTP listen address that is not loopback:
// bearer tokens cross it in clear.
func loopbackOnly(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--http %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("--http %s is not a loopback address: plain HTTP carries the API's bearer tokens in clear; serve the API with --https HOST:PORT (and --http 127.0.0.1:PORT for local tools), or pass --http-insecure if a TLS proxy in front of it is your choice", addr)
}

// clientTLS is the CLI's trust in the API's certificate: caFile (PEM), or
// pin (the SHA-256 fingerprint the server printed; colons allowed), or
// the system's roots when both are empty.
func clientTLS(caFile, pin string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		data, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(data) {
			return nil, fmt.Errorf("--tls-ca %s: no PEM certificate in it", caFile)
		}
		cfg.RootCAs = pool
	}
	if pin != "" {
		want, err := hex.DecodeString(strings.ReplaceAll(strings.TrimPrefix(strings.ToLower(pin), "sha256:"), ":", ""))
		if err != nil || len(want) != sha256.Size {
			return nil, fmt.Errorf("--tls-pin %q: want the 64 hex digits of the SHA-256 fingerprint the server printed", pin)
		}
		// The pin is the trust: the chain is not checked (a self-signed
		// certificate has none), the certificate's hash is.
		cfg.InsecureSkipVerify = true
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the server sent no certificate")
			}
			got := sha256.Sum256(cs.PeerCertificates[0].Raw)
			if !bytes.Equal(got[:], want) {
				return fmt.Errorf("the server's certificate has fingerprint %s, not the pinned %s: a different server, or its certificate was replaced (check its start log)", hex.EncodeToString(got[:]), hex.EncodeToString(want))
			}
			return nil
		}
	}
	return cfg, nil
}
