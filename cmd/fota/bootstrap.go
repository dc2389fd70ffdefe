package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
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
	fs := flag.NewFlagSet("bootstrap", flag.ContinueOnError)
	db := fs.String("db", "fota-bootstrap.db", "bbolt database `file`")
	coap := fs.String("coap", ":5783", "plain CoAP listen `address` (empty: off)")
	coaps := fs.String("coaps", ":5784", "CoAP over DTLS listen `address` (empty: off)")
	httpAddr := fs.String("http", ":8081", "HTTP API listen `address` (empty: off)")
	token := fs.String("api-token", os.Getenv("FOTA_API_TOKEN"), "bearer token of the HTTP API (required with --http; default $FOTA_API_TOKEN)")
	dmURI := fs.String("dm-uri", "", "DM server URI written when a configuration leaves it empty")
	verbose := fs.Bool("v", false, "debug logging")
	if err := fs.Parse(args); err != nil {
		return &exitError{2, err}
	}
	if *httpAddr != "" && *token == "" {
		return &exitError{2, errors.New("--api-token (or FOTA_API_TOKEN) is required with --http")}
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
		hs = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: api.New(api.Config{Token: *token, Bootstrap: b, Store: st, Logger: log})}
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
		return nil, fmt.Errorf("%s: %q is not a non-empty hex string", flagName, s)
	}
	if len(k) > 64 {
		return nil, fmt.Errorf("%s: %d bytes, at most 64", flagName, len(k))
	}
	return k, nil
}
