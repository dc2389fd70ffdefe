package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/fotastack/fota/server/api"
	"github.com/fotastack/fota/server/bootstrap"
	"github.com/fotastack/fota/server/store/bolt"
)

func init() {
	register("bootstrap", "run the LwM2M bootstrap server alone (CoAP :5783, DTLS :5784)", runBootstrap)
}

func runBootstrap(args []string) error {
	fs := newFlags("bootstrap", "", "Run the LwM2M bootstrap server alone, with an HTTP API for its configurations (the DM server runs one itself with --bootstrap-coaps).",
		"FOTA_API_TOKEN=$(cat bs.token) fota bootstrap --db bs.db --coaps :5784 --http :8081 --dm-uri coaps://dm.example.com:5684")
	db := fs.String("db", "fota-bootstrap.db", "bbolt database `file`")
	coap := fs.String("coap", ":5783", "plain CoAP listen `address` (empty: off)")
	coaps := fs.String("coaps", ":5784", "CoAP over DTLS listen `address` (empty: off)")
	httpAddr := fs.String("http", ":8081", "HTTP API listen `address` (empty: off)")
	tokenOf := tokenFlags(fs.FlagSet)
	dmURI := fs.String("dm-uri", "", "DM server URI written when a configuration leaves it empty")
	verbose := fs.Bool("v", false, "debug logging")
	if _, err := fs.parseN(args, 0, 0); err != nil {
		return err
	}
	token, err := tokenOf()
	if err != nil {
		return err
	}
	if *httpAddr != "" && token == "" {
		return &exitError{2, errors.New("an API token is required with --http: set FOTA_API_TOKEN or give --api-token-file")}
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	st, err := bolt.Open(*db)
	if err != nil {
		return err
	}
	defer st.Close()
	// Alone, there is no DM server in this process: generated PSKs land in
	// this file's DM credential store, useful only to a DM server that
	// opens the same file later.
	b, err := bootstrap.Start(bootstrap.Options{
		Store: st, DMStore: st, DMURI: *dmURI, CoAPAddr: *coap, CoAPSAddr: *coaps, Logger: log,
	})
	if err != nil {
		return err
	}
	defer b.Close()
	var hs *http.Server
	if *httpAddr != "" {
		ln, err := net.Listen("tcp", *httpAddr)
		if err != nil {
			return fmt.Errorf("listen http %s: %w", *httpAddr, err)
		}
		hs = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: api.New(api.Config{Token: token, Bootstrap: b, Store: st, Logger: log})}
		go func() {
			if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("http server", "err", err)
			}
		}()
		log.Info("bootstrap http api listening", "addr", ln.Addr())
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	log.Info("shutting down")
	if hs != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = hs.Shutdown(ctx)
		cancel()
	}
	return nil
}

// parseHexKey reads a PSK given in hex on the command line.
func parseHexKey(flagName, s string) ([]byte, error) {
	k, err := hex.DecodeString(s)
	if err != nil || len(k) == 0 {
		// The value is a secret: the message does not repeat it.
		return nil, fmt.Errorf("%s: not a non-empty hex string (%d characters)", flagName, len(s))
	}
	if len(k) > 64 {
		return nil, fmt.Errorf("%s: %d bytes, at most 64", flagName, len(k))
	}
	return k, nil
}
