package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/fotastack/fota/delta/signer"
	"github.com/fotastack/fota/server"
	"github.com/fotastack/fota/server/cluster"
	"github.com/fotastack/fota/server/dm"
	"github.com/fotastack/fota/server/store/bolt"
	"github.com/fotastack/fota/server/store/postgres"
)

func init() {
	register("server", "run the LwM2M server (CoAP, DTLS, HTTP API)", runServer)
}

func runServer(args []string) error {
	fs := newFlags("server", "", "Run the LwM2M server: CoAP, DTLS, the HTTP API and, with --bootstrap-coaps, the bootstrap server. The API token is $FOTA_API_TOKEN or --api-token-file; without either, the token in DB.token beside the database, generated there (mode 0600) on the first start.",
		"fota server --db fota.db --coap :5683 --coaps :5684 --http :8080 --bootstrap-coaps :5784")
	db := fs.String("db", "fota.db", "bbolt database `file` (the default store)")
	storeDSN := fs.String("store", "", "PostgreSQL `DSN` (postgres://USER@HOST:PORT/DB) to keep state in instead of --db (default $FOTA_STORE: keeps a password out of process listings)")
	coap := fs.String("coap", ":5683", "plain CoAP listen `address` (empty: off)")
	coaps := fs.String("coaps", ":5684", "CoAP over DTLS listen `address` (empty: off)")
	httpAddr := fs.String("http", "127.0.0.1:8080", "HTTP API listen `address`, loopback only unless --http-insecure (empty: off)")
	httpInsecure := fs.Bool("http-insecure", false, "let --http listen beyond loopback (tokens cross it in clear: only behind a TLS proxy)")
	httpsAddr := fs.String("https", "", "HTTPS API listen `address` (empty: off)")
	tlsCert := fs.String("tls-cert", "", "the HTTPS API's certificate `file` (PEM; default: a self-signed one made on the first start in DB.https-cert.pem)")
	tlsKey := fs.String("tls-key", "", "the HTTPS API's private key `file` (PEM)")
	tokenOf := tokenFlags(fs.FlagSet)
	certFile := fs.String("cert", "", "server certificate `file` (PEM) for X.509 devices")
	keyFile := fs.String("key", "", "server private key `file` (PEM)")
	caFile := fs.String("client-ca", "", "CA `file` (PEM) that signs device certificates")
	bsCoap := fs.String("bootstrap-coap", "", "bootstrap server plain CoAP listen `address` (empty: off; LwM2M default :5783)")
	bsCoaps := fs.String("bootstrap-coaps", "", "bootstrap server DTLS listen `address` (empty: off; LwM2M default :5784)")
	publicHost := fs.String("public-host", "", "host name devices reach this server by, written into bootstrapped accounts (default: the listen address, 127.0.0.1 for wildcards)")
	pprofOn := fs.Bool("pprof", false, "serve Go's profiler (net/http/pprof) at /debug/pprof/ on the HTTP listener, behind the API token")
	nodeID := fs.String("node-id", "", "run as node `ID` of a cluster on the PostgreSQL --store (doc/cluster.md); two live nodes never share an id")
	clusterAddr := fs.String("cluster-addr", "", "`HOST:PORT` the other nodes reach this one at (TCP: forwarded API requests; UDP: relayed DTLS records); with --node-id")
	clusterLease := fs.Duration("cluster-lease", 10*time.Second, "how long a node without a heartbeat stays alive to the others (`DURATION`); with --node-id")
	clusterSecretOf := secretFlags(fs.FlagSet, "cluster-secret", "FOTA_CLUSTER_SECRET", "shared `secret` that authenticates the nodes to each other (default: one kept in the database)")
	verbose := fs.Bool("v", false, "debug logging")
	signingKey := fs.String("signing-key", "", "package signing key: a key file or a PKCS#11 URI pkcs11:token=T;object=K?module-path=LIB (PIN from $FOTA_PKCS11_PIN or pin-source=file:PATH); default: the key kept in the store")
	if _, err := fs.parseN(args, 0, 0); err != nil {
		return err
	}
	token, err := tokenOf()
	if err != nil {
		return err
	}
	tokenFile := *db + ".token"
	if token == "" {
		if token, err = readTokenFile(tokenFile); err != nil {
			return err
		}
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	cfg := server.Config{HTTPAddr: *httpAddr, APIToken: token, PProf: *pprofOn, Config: dm.Config{CoAPAddr: *coap, CoAPSAddr: *coaps, Logger: log}}
	if *httpAddr != "" && !*httpInsecure {
		if err := loopbackOnly(*httpAddr); err != nil {
			return &exitError{2, err}
		}
	}
	if *httpsAddr != "" {
		cert, fp, created, err := apiCertificate(*tlsCert, *tlsKey, *db, *httpsAddr)
		if err != nil {
			return err
		}
		cfg.HTTPSAddr, cfg.HTTPSCert = *httpsAddr, &cert
		how := "its certificate"
		if created {
			how = "a new self-signed certificate in " + *db + ".https-cert.pem"
		}
		// The fingerprint is public: clients pin it (fota --tls-pin).
		fmt.Fprintf(os.Stderr, "https api on %s with %s, SHA-256 fingerprint %s (clients: export FOTA_TLS_PIN=%s)\n", *httpsAddr, how, fp, fp)
	}
	if *certFile != "" {
		cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			return fmt.Errorf("load server certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			return fmt.Errorf("read client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return errors.New("client CA file has no PEM certificate")
		}
		cfg.ClientCAs = pool
	}
	where := *db
	if *storeDSN == "" {
		*storeDSN = os.Getenv("FOTA_STORE")
	}
	if *storeDSN != "" {
		st, err := postgres.Open(context.Background(), *storeDSN)
		if err != nil {
			return err
		}
		defer st.Close()
		cfg.Store, where = st, "the PostgreSQL store"
	} else {
		st, err := bolt.Open(*db)
		if err != nil {
			return err
		}
		defer st.Close()
		if st.Migrated != "" {
			log.Info("store migrated to this release's layout", "file", *db, "what", st.Migrated)
		}
		cfg.Store = st
	}
	cfg.Bootstrap.CoAPAddr, cfg.Bootstrap.CoAPSAddr, cfg.PublicHost = *bsCoap, *bsCoaps, *publicHost
	if *signingKey != "" {
		k, err := signer.Open(*signingKey)
		if err != nil {
			return fmt.Errorf("--signing-key: %w", err)
		}
		defer k.Close()
		cfg.SigningKey = signer.Unwrap(k)
	}
	if *nodeID != "" || *clusterAddr != "" {
		pg, ok := cfg.Store.(*postgres.Store)
		if !ok {
			return &exitError{2, errors.New("--node-id: a cluster keeps its state in PostgreSQL: give --store postgres://... (or $FOTA_STORE)")}
		}
		if *nodeID == "" || *clusterAddr == "" {
			return &exitError{2, errors.New("a cluster node needs both --node-id and --cluster-addr")}
		}
		secret, err := clusterSecretOf()
		if err != nil {
			return err
		}
		cfg.Cluster = cluster.Config{Store: pg, NodeID: *nodeID, Addr: *clusterAddr, Lease: *clusterLease, Secret: []byte(secret), Logger: log}
	}
	srv, err := server.Start(cfg)
	if err != nil {
		return err
	}
	var lost <-chan struct{}
	if srv.Cluster != nil {
		lost = srv.Cluster.Lost()
	}
	// Devices are provisioned with this key (also at GET /api/firmware/key).
	log.Info("firmware packages signed", "ed25519PublicKey", hex.EncodeToString(srv.Firmware.PublicKey()))
	if token == "" {
		// Neither given nor in the token file: the server generated one
		// (or kept one in the database, as releases before the file did).
		tok, generated := srv.APIToken()
		if err := writeTokenFile(tokenFile, tok); err != nil {
			srv.Close()
			return err
		}
		how := "the API token stored in " + where
		if generated {
			how = "a new API token"
		}
		// The path, never the token: stderr often ends up in a log.
		fmt.Fprintf(os.Stderr, "wrote %s to %s (mode 0600); clients: export FOTA_API_TOKEN=$(cat %s)\n", how, tokenFile, tokenFile)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	select {
	case <-sig:
	case <-lost:
		_ = srv.Close()
		return errors.New("this node lost its cluster lease (another process took --node-id " + *nodeID + "); it stopped so that one node drives each device")
	}
	log.Info("shutting down")
	return srv.Close()
}

// readTokenFile reads the token file beside the database; "" when there is
// none yet.
func readTokenFile(path string) (string, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	return readSecretFile(path, "API token file")
}

// writeTokenFile creates the token file readable by its owner only. It
// never replaces a file: one that appeared meanwhile is someone else's.
func writeTokenFile(path, token string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write API token file: %w", err)
	}
	if _, err := f.WriteString(token + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("write API token file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write API token file: %w", err)
	}
	return nil
}
