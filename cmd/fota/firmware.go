package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	fwrepo "github.com/fotastack/fota/server/firmware"
)

func init() {
	register("firmware", "firmware repository of a running server: add, list, rm, key", runFirmware)
}

// apiFlags adds --url and --api-token (defaults from FOTA_URL and
// FOTA_API_TOKEN, like kubectl's context) to fs.
func apiFlags(fs *flag.FlagSet) func() (apiClient, error) {
	u := fs.String("url", os.Getenv("FOTA_URL"), "server HTTP API `URL` (default $FOTA_URL)")
	tok := fs.String("api-token", os.Getenv("FOTA_API_TOKEN"), "API bearer token (default $FOTA_API_TOKEN)")
	return func() (apiClient, error) {
		if *u == "" {
			return apiClient{}, &exitError{2, errors.New("--url or FOTA_URL is required")}
		}
		return apiClient{base: strings.TrimRight(*u, "/"), token: *tok, hc: &http.Client{Timeout: 2 * time.Minute}}, nil
	}
}

func runFirmware(args []string) error {
	if len(args) == 0 {
		return &exitError{2, errors.New("usage: fota firmware add FILE --version V --device-type T | list | rm ID | key | example")}
	}
	switch args[0] {
	case "add":
		return firmwareAdd(args[1:])
	case "list", "ls":
		return firmwareList(args[1:])
	case "rm", "delete":
		return firmwareRemove(args[1:])
	case "key":
		return firmwareKey(args[1:])
	case "example":
		return firmwareExample(args[1:])
	}
	return &exitError{2, fmt.Errorf("unknown firmware command %q (add, list, rm, key, example)", args[0])}
}

func firmwareAdd(args []string) error {
	fs := flag.NewFlagSet("firmware add", flag.ContinueOnError)
	api := apiFlags(fs)
	version := fs.String("version", "", "firmware version of the image (required)")
	devType := fs.String("device-type", "", "device type the image runs on (required)")
	opaque := fs.Bool("opaque", false, "store as another vendor's package, served as is (no delta)")
	eraseBlock := fs.Int("erase-block", 0, "erase block of the device type in bytes (stored for its packages)")
	ram := fs.Int("ram", 0, "RAM the device type may spend on applying a package, bytes")
	seq := fs.Uint("seq", 0, "rollback counter of the image (default: from the version, which must then be MAJOR[.MINOR[.PATCH]])")
	pos, err := parseWithPositionals(fs, args) // cmd/fota/flash.go
	if err != nil {
		return &exitError{2, err}
	}
	if len(pos) != 1 || *version == "" || *devType == "" {
		return &exitError{2, errors.New("usage: fota firmware add FILE --version V --device-type T")}
	}
	a, err := api()
	if err != nil {
		return err
	}
	data, err := os.ReadFile(pos[0])
	if err != nil {
		return err
	}
	q := url.Values{"version": {*version}, "deviceType": {*devType}}
	if *opaque {
		q.Set("opaque", "true")
	}
	if *eraseBlock != 0 {
		q.Set("eraseBlock", strconv.Itoa(*eraseBlock))
	}
	if *ram != 0 {
		q.Set("ram", strconv.Itoa(*ram))
	}
	if *seq != 0 {
		q.Set("seq", strconv.FormatUint(uint64(*seq), 10))
	}
	req, err := http.NewRequest("POST", a.base+"/api/firmware?"+q.Encode(), bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("upload: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	var img fwrepo.Image
	if err := json.Unmarshal(body, &img); err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	fmt.Printf("added %s %s: id %s, %d bytes, sha256 %s, seq %d\n", img.DeviceType, img.Version, img.ID, img.Size, img.SHA256, img.SeqNo)
	return nil
}

func firmwareList(args []string) error {
	fs := flag.NewFlagSet("firmware list", flag.ContinueOnError)
	api := apiFlags(fs)
	if err := fs.Parse(args); err != nil {
		return &exitError{2, err}
	}
	a, err := api()
	if err != nil {
		return err
	}
	out, err := a.do("GET", "/api/firmware", nil)
	if err != nil {
		return err
	}
	var imgs []fwrepo.Image
	if err := json.Unmarshal(out, &imgs); err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tDEVICE TYPE\tVERSION\tSIZE\tSHA256\tSEQ\tKIND")
	for _, i := range imgs {
		kind := "image"
		if i.Opaque {
			kind = "opaque"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.16s\t%d\t%s\n", i.ID, i.DeviceType, i.Version, i.Size, i.SHA256, i.SeqNo, kind)
	}
	return tw.Flush()
}

func firmwareRemove(args []string) error {
	fs := flag.NewFlagSet("firmware rm", flag.ContinueOnError)
	api := apiFlags(fs)
	pos, err := parseWithPositionals(fs, args)
	if err != nil {
		return &exitError{2, err}
	}
	if len(pos) != 1 {
		return &exitError{2, errors.New("usage: fota firmware rm ID")}
	}
	a, err := api()
	if err != nil {
		return err
	}
	if _, err := a.do("DELETE", "/api/firmware/"+url.PathEscape(pos[0]), nil); err != nil {
		return err
	}
	fmt.Println("removed", pos[0])
	return nil
}

func firmwareKey(args []string) error {
	fs := flag.NewFlagSet("firmware key", flag.ContinueOnError)
	api := apiFlags(fs)
	if err := fs.Parse(args); err != nil {
		return &exitError{2, err}
	}
	a, err := api()
	if err != nil {
		return err
	}
	out, err := a.do("GET", "/api/firmware/key", nil)
	if err != nil {
		return err
	}
	var k struct {
		PublicKey string `json:"publicKey"`
	}
	if err := json.Unmarshal(out, &k); err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	fmt.Println(k.PublicKey)
	return nil
}

// firmwareExample writes two real firmware images, v1.bin and v2.bin, for
// trying the stack by hand: the demo's pair (MicroPython for the pyboard,
// from ../shared/firmware or --firmware-dir), else a generated pair, and
// says which.
func firmwareExample(args []string) error {
	fs := flag.NewFlagSet("firmware example", flag.ContinueOnError)
	out := fs.String("o", ".", "write v1.bin and v2.bin into this `directory`")
	dir := fs.String("firmware-dir", "", "directory of image pairs (default $FOTA_FIRMWARE_DIR, else ../shared/firmware)")
	pair := fs.String("pair", defaultDemoPair, "image pair (a folder of old.bin and new.bin)")
	if err := fs.Parse(args); err != nil {
		return &exitError{2, err}
	}
	if fs.NArg() > 0 {
		return &exitError{2, fmt.Errorf("firmware example takes no arguments (got %q); use -o DIR", fs.Arg(0))}
	}
	fw, ok, err := loadDemoFirmware(firmwareDirCandidates(*dir), *pair)
	if err != nil {
		return err
	}
	if !ok {
		fw = generateDemoFirmware(160<<10, 1)
		fw.Source += "; no firmware pair found (give --firmware-dir)"
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	for name, data := range map[string][]byte{"v1.bin": fw.V1, "v2.bin": fw.V2} {
		if err := os.WriteFile(filepath.Join(*out, name), data, 0o644); err != nil {
			return fmt.Errorf("write example image: %w", err)
		}
	}
	fmt.Printf("v1.bin (%d bytes) and v2.bin (%d bytes) in %s: %s\n", len(fw.V1), len(fw.V2), *out, fw.Source)
	return nil
}
