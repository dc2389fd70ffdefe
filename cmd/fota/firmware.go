package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	fwrepo "github.com/fotastack/fota/server/firmware"
)

func init() {
	registerGroup(firmwareGroup, "firmware repository of a running server: add, list, rm, key")
}

// firmwareGroup is `fota firmware`: the repository of a running server,
// over its HTTP API.
var firmwareGroup = group{
	name:    "firmware",
	summary: "The firmware repository of a running server (over its HTTP API: --url, --api-token-file or $FOTA_URL, $FOTA_API_TOKEN).",
	subs: []subcommand{
		{name: "add", args: "FILE --version V --device-type T", summary: "upload a firmware image", run: firmwareAdd},
		{name: "list", aliases: []string{"ls"}, summary: "list the images", run: firmwareList},
		{name: "rm", aliases: []string{"delete"}, args: "ID", summary: "remove an image", run: firmwareRemove},
		{name: "key", summary: "print the server's package signing public key (what devices trust)", run: firmwareKey},
		{name: "example", summary: "write two real example images, v1.bin and v2.bin", run: firmwareExample},
	},
	examples: []string{"fota firmware add v2.bin --version 2.0 --device-type meter", "fota firmware list"},
}

func firmwareAdd(args []string) error {
	fs := newFlags("firmware add", "FILE --version V --device-type T", "Upload a firmware image to the server's repository.",
		"fota firmware add v2.bin --version 2.0 --device-type meter")
	api := apiFlags(fs.FlagSet)
	version := fs.String("version", "", "firmware version of the image (required)")
	devType := fs.String("device-type", "", "device type the image runs on (required)")
	opaque := fs.Bool("opaque", false, "store as another vendor's package, served as is (no delta)")
	eraseBlock := fs.Int("erase-block", 0, "erase block of the device type in bytes (stored for its packages)")
	ram := fs.Int("ram", 0, "RAM the device type may spend on applying a package, bytes")
	seq := fs.Uint("seq", 0, "rollback counter of the image (default: from the version, which must then be MAJOR[.MINOR[.PATCH]])")
	pos, err := fs.parseN(args, 1, 1)
	if err != nil {
		return err
	}
	if *version == "" || *devType == "" {
		return fs.usageError("--version and --device-type are required")
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
	fs := newFlags("firmware list", "", "List the images of the server's repository.", "fota firmware list")
	api := apiFlags(fs.FlagSet)
	asJSON := fs.Bool("json", false, "print the API's JSON answer")
	if _, err := fs.parseN(args, 0, 0); err != nil {
		return err
	}
	a, err := api()
	if err != nil {
		return err
	}
	out, err := a.do("GET", "/api/firmware", nil)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(out)
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
	fs := newFlags("firmware rm", "ID", "Remove an image from the server's repository (fota firmware list shows the IDs).", "fota firmware rm 3")
	api := apiFlags(fs.FlagSet)
	pos, err := fs.parseN(args, 1, 1)
	if err != nil {
		return err
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
	fs := newFlags("firmware key", "", "Print the ed25519 public key the server signs packages with: devices trust it (fota client --trust).",
		`fota client --endpoint meter-1 --trust "$(fota firmware key)" ...`)
	api := apiFlags(fs.FlagSet)
	if _, err := fs.parseN(args, 0, 0); err != nil {
		return err
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

func runFirmware(args []string) error { return firmwareGroup.run(args) }

// firmwareExample writes two real firmware images, v1.bin and v2.bin, for
// trying the stack by hand: the demo's pair (MicroPython for the pyboard,
// from ../shared/firmware or --firmware-dir), else a generated pair, and
// says which.
func firmwareExample(args []string) error {
	fs := newFlags("firmware example", "", "Write two real firmware images, v1.bin and v2.bin, to try the stack by hand.",
		"fota firmware example -o .")
	out := fs.String("o", ".", "write v1.bin and v2.bin into this `directory`")
	dir := fs.String("firmware-dir", "", "directory of image pairs (default $FOTA_FIRMWARE_DIR, else ../shared/firmware)")
	pair := fs.String("pair", defaultDemoPair, "image pair (a folder of old.bin and new.bin)")
	if _, err := fs.parseN(args, 0, 0); err != nil {
		return err
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
