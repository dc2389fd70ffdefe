package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/fotastack/fota/server"
	"github.com/fotastack/fota/server/dm"
	"github.com/fotastack/fota/server/store/bolt"
	"github.com/fotastack/fota/server/store/postgres"
)

func init() {
	register("server", "run the LwM2M server (CoAP, DTLS, HTTP API)", runServer)
}

func runServer(args []string) error {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	db := fs.String("db", "fota.db", "bbolt database `file` (the default store)")
	storeDSN := fs.String("store", os.Getenv("FOTA_STORE"), "PostgreSQL `DSN` (postgres://USER@HOST:PORT/DB) to keep state in instead of --db (default $FOTA_STORE: keeps a password out of process listings)")
	coap := fs.String("coap", ":5683", "plain CoAP listen `address` (empty: off)")
	coaps := fs.String("coaps", ":5684", "CoAP over DTLS listen `address` (empty: off)")
	httpAddr := fs.String("http", ":8080", "HTTP API listen `address` (empty: off)")
	token := fs.String("api-token", os.Getenv("FOTA_API_TOKEN"), "bearer token of the HTTP API (default $FOTA_API_TOKEN, else generated and stored)")
	certFile := fs.String("cert", "", "server certificate `file` (PEM) for X.509 devices")
	keyFile := fs.String("key", "", "server private key `file` (PEM)")
	caFile := fs.String("client-ca", "", "CA `file` (PEM) that signs device certificates")
	bsCoap := fs.String("bootstrap-coap", "", "bootstrap server plain CoAP listen `address` (empty: off; LwM2M default :5783)")
	bsCoaps := fs.String("bootstrap-coaps", "", "bootstrap server DTLS listen `address` (empty: off; LwM2M default :5784)")
	publicHost := fs.String("public-host", "", "host name devices reach this server by, written into bootstrapped accounts (default: the listen address, 127.0.0.1 for wildcards)")
	verbose := fs.Bool("v", false, "debug logging")
	if err := fs.Parse(args); err != nil {
		return &exitError{2, err}
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	cfg := server.Config{HTTPAddr: *httpAddr, APIToken: *token, Config: dm.Config{CoAPAddr: *coap, CoAPSAddr: *coaps, Logger: log}}
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
	srv, err := server.Start(cfg)
	if err != nil {
		return err
	}
	// Devices are provisioned with this key (also at GET /api/firmware/key).
	log.Info("firmware packages signed", "ed25519PublicKey", hex.EncodeToString(srv.Firmware.PublicKey()))
	if tok, generated := srv.APIToken(); generated {
		fmt.Fprintf(os.Stderr, "API token (generated, stored in %s; shown once): %s\n", where, tok)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	log.Info("shutting down")
	return srv.Close()
}
