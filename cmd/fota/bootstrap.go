package main

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/fotastack/fota/server"
	"github.com/fotastack/fota/server/store"
)

func init() {
	register("bootstrap", "run the LwM2M bootstrap server alone (CoAP :5783, DTLS :5784)", runBootstrap)
}

// dmURIOf is the coaps URI devices use to reach the DM listener at addr:
// a wildcard listen address is replaced by publicHost (default 127.0.0.1).
func dmURIOf(addr net.Addr, publicHost string) string {
	if addr == nil {
		return ""
	}
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return ""
	}
	if publicHost != "" {
		host = publicHost
	} else if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "coaps://" + net.JoinHostPort(host, port)
}

// startBootstrapBeside starts the bootstrap server next to a running DM
// server: same bbolt file, generated PSKs go to its security store, its
// coaps URI is the default DM URI, the API routes join its HTTP API. Called
// by `fota server` when --bootstrap-coap or --bootstrap-coaps is given.
func startBootstrapBeside(srv *server.Server, st *store.Bolt, coap, coaps, publicHost string, log *slog.Logger) (*server.BootstrapServer, error) {
	bst, err := server.NewBootstrapStore(st.DB())
	if err != nil {
		return nil, err
	}
	b, err := server.StartBootstrap(server.BootstrapOptions{
		Store: bst, DMStore: st, DMURI: dmURIOf(srv.CoAPSAddr(), publicHost),
		CoAPAddr: coap, CoAPSAddr: coaps, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	b.RegisterAPI(srv.Mux())
	srv.ReserveIdentities(b.BootstrapIdentity)
	return b, nil
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
	st, err := store.OpenBolt(*db)
	if err != nil {
		return err
	}
	defer st.Close()
	bst, err := server.NewBootstrapStore(st.DB())
	if err != nil {
		return err
	}
	// Alone, there is no DM server in this process: generated PSKs land in
	// this file's DM credential store, useful only to a DM server that
	// opens the same file later.
	b, err := server.StartBootstrap(server.BootstrapOptions{
		Store: bst, DMStore: st, DMURI: *dmURI, CoAPAddr: *coap, CoAPSAddr: *coaps, Logger: log,
	})
	if err != nil {
		return err
	}
	defer b.Close()
	var hs *http.Server
	if *httpAddr != "" {
		mux := http.NewServeMux()
		b.RegisterAPI(mux)
		ln, err := net.Listen("tcp", *httpAddr)
		if err != nil {
			return fmt.Errorf("listen http %s: %w", *httpAddr, err)
		}
		tok := *token
		hs = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
			if subtle.ConstantTimeCompare([]byte(got), []byte(tok)) != 1 {
				http.Error(w, `{"error":"missing or wrong bearer token"}`, http.StatusUnauthorized)
				return
			}
			mux.ServeHTTP(w, r)
		})}
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
