package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"
)

func init() {
	register("provision", "give a device a bootstrap credential and a DM account (via the HTTP API)", runProvision)
}

// runProvision talks to a running server's HTTP API, as kubectl does: the
// server holds the bbolt file. It stores the device's bootstrap credential
// first and then a configuration that hands the device a fresh DM PSK
// (generated and registered by the server in the same step) and the DM
// URI; in that order, because an endpoint without a bootstrap credential
// may bootstrap over plain CoAP.
func runProvision(args []string) error {
	fs := newFlags("provision", "--endpoint EP --bs-psk-id ID --bs-psk-key-file FILE", "Give a device its bootstrap credential and a DM account with a fresh PSK (via the HTTP API); the device then bootstraps with its factory credential.",
		"FOTA_BS_PSK_KEY=000102030405060708090a0b0c0d0e0f fota provision --endpoint meter-1 --bs-psk-id meter-1-bs")
	apiOf := apiFlags(fs.FlagSet)
	ep := fs.String("endpoint", "", "endpoint client name (required)")
	bsID := fs.String("bs-psk-id", "", "bootstrap PSK identity the device is manufactured with (required)")
	bsKeyOf := secretFlags(fs.FlagSet, "bs-psk-key", "FOTA_BS_PSK_KEY", "bootstrap PSK `key` in hex (required)")
	dmURI := fs.String("dm-uri", "", "DM server URI for the device (default: the server's own coaps URI)")
	ssid := fs.Uint("short-server-id", 101, "short server ID of the DM account")
	lifetime := fs.Uint("lifetime", 300, "registration lifetime in seconds written to the device")
	if _, err := fs.parseN(args, 0, 0); err != nil {
		return err
	}
	switch {
	case *ep == "":
		return &exitError{2, errors.New("--endpoint is required")}
	case *bsID == "":
		return &exitError{2, errors.New("--bs-psk-id is required")}
	case *ssid == 0 || *ssid > 65534:
		return &exitError{2, errors.New("--short-server-id must be 1..65534")}
	}
	bsKey, err := bsKeyOf()
	if err != nil {
		return err
	}
	key, err := parseHexKey("--bs-psk-key", bsKey)
	if err != nil {
		return &exitError{2, err}
	}
	api, err := apiOf()
	if err != nil {
		return err
	}
	api.hc.Timeout = 15 * time.Second
	cred := map[string]any{
		"endpoint": *ep,
		"tls":      map[string]any{"mode": "psk", "details": map[string]any{"identity": *bsID, "key": hex.EncodeToString(key)}},
	}
	if _, err := api.do("PUT", "/api/bootstrap/security/clients", cred); err != nil {
		return fmt.Errorf("store bootstrap credential: %w", err)
	}
	cfg := map[string]any{
		// Clear whatever accounts the device had (except its bootstrap
		// account, which Bootstrap-Delete keeps), then write the new one.
		"toDelete": []string{"/0", "/1"},
		"security": map[string]any{"1": map[string]any{
			"uri": *dmURI, "securityMode": "PSK", "generatePsk": true, "serverId": *ssid,
		}},
		"servers": map[string]any{"0": map[string]any{"shortId": *ssid, "lifetime": *lifetime, "binding": "U"}},
	}
	out, err := api.do("PUT", "/api/bootstrap/"+url.PathEscape(*ep), cfg)
	if err != nil {
		return fmt.Errorf("store bootstrap configuration: %w", err)
	}
	var got struct {
		Config struct {
			Security map[string]struct {
				URI           string `json:"uri"`
				PublicKeyOrID string `json:"publicKeyOrId"`
			} `json:"security"`
		} `json:"config"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		return fmt.Errorf("read server answer: %w", err)
	}
	s := got.Config.Security["1"]
	id, _ := hex.DecodeString(s.PublicKeyOrID)
	fmt.Printf("provisioned %s: bootstrap identity %q; DM account %s with fresh psk identity %q\n", *ep, *bsID, s.URI, id)
	return nil
}
