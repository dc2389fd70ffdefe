package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/fotastack/fota/server/store"
	"github.com/fotastack/fota/server/store/bolt"
	"github.com/fotastack/fota/server/store/postgres"
)

func init() {
	registerGroup(storeGroup, "store maintenance: migrate a bbolt file into PostgreSQL")
}

// storeGroup is `fota store`.
var storeGroup = group{
	name:    "store",
	summary: "Store maintenance.",
	subs: []subcommand{
		{name: "migrate", args: "--from bolt:FILE --to postgres://USER@HOST:PORT/DB", summary: "copy every record of a bbolt file into an empty PostgreSQL database", run: storeMigrate},
	},
	examples: []string{"FOTA_STORE=postgres://fota@127.0.0.1:5432/fota fota store migrate --from bolt:fota.db"},
}

func runStore(args []string) error { return storeGroup.run(args) }

func storeMigrate(args []string) error {
	fs := newFlags("store migrate", "", "Copy every record of a bbolt file into an empty PostgreSQL database.",
		"FOTA_STORE=postgres://fota@127.0.0.1:5432/fota fota store migrate --from bolt:fota.db")
	from := fs.String("from", "", "the bbolt store to copy, as bolt:`FILE`")
	to := fs.String("to", "", "PostgreSQL `DSN` to copy into, an empty database (default $FOTA_STORE: keeps a password out of process listings)")
	if _, err := fs.parseN(args, 0, 0); err != nil {
		return err
	}
	if *to == "" {
		*to = os.Getenv("FOTA_STORE")
	}
	file, ok := strings.CutPrefix(*from, "bolt:")
	if !ok || file == "" {
		return &exitError{2, errors.New("store migrate: --from must name a bbolt file as bolt:FILE")}
	}
	if *to == "" {
		return &exitError{2, errors.New("store migrate: --to (or $FOTA_STORE) must name the PostgreSQL database")}
	}
	src, err := bolt.Open(file)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := postgres.Open(context.Background(), *to)
	if err != nil {
		return err
	}
	defer dst.Close()
	n, err := migrateStore(src, dst)
	if err != nil {
		return err
	}
	fmt.Printf("store migrated: %s\n", n)
	return nil
}

// migrateStore copies every record of src into dst, which must be empty
// (a second run would add history and audit entries twice). Blobs are
// streamed, never held whole. The store interfaces list neither settings
// nor history endpoints nor profiles, so those are copied for the names
// the server uses: the settings it writes, the endpoints any other record
// names, the device types of images, packages and campaigns.
func migrateStore(src, dst store.Store) (string, error) {
	if imgs, err := dst.Images(); err != nil || len(imgs) > 0 {
		return "", fmt.Errorf("store migrate: the destination already holds images (or cannot be read: %v); migrate into an empty database", err)
	}
	if a, err := dst.Audit(1); err != nil || len(a) > 0 {
		return "", fmt.Errorf("store migrate: the destination already holds an audit trail (or cannot be read: %v); migrate into an empty database", err)
	}
	var counts []string
	count := func(what string, n int) { counts = append(counts, fmt.Sprintf("%d %s", n, what)) }
	endpoints := map[string]bool{}
	deviceTypes := map[string]bool{}

	regs, err := src.Registrations()
	if err != nil {
		return "", err
	}
	for _, r := range regs {
		endpoints[r.Endpoint] = true
		if err := dst.PutRegistration(r); err != nil {
			return "", err
		}
	}
	count("registrations", len(regs))
	creds, err := src.Credentials()
	if err != nil {
		return "", err
	}
	for _, c := range creds {
		endpoints[c.Endpoint] = true
		if err := dst.PutCredential(c); err != nil {
			return "", err
		}
	}
	count("credentials", len(creds))
	obs, err := src.Observations()
	if err != nil {
		return "", err
	}
	for _, o := range obs {
		if err := dst.PutObservation(o); err != nil {
			return "", err
		}
	}
	count("observations", len(obs))
	cfgs, err := src.BootstrapConfigs()
	if err != nil {
		return "", err
	}
	for ep, c := range cfgs {
		endpoints[ep] = true
		if err := dst.PutBootstrapConfig(ep, c); err != nil {
			return "", err
		}
	}
	count("bootstrap configs", len(cfgs))
	bcreds, err := src.BootstrapCredentials()
	if err != nil {
		return "", err
	}
	for _, c := range bcreds {
		endpoints[c.Endpoint] = true
		if err := dst.PutBootstrapCredential(c); err != nil {
			return "", err
		}
	}
	count("bootstrap credentials", len(bcreds))

	imgs, err := src.Images()
	if err != nil {
		return "", err
	}
	pkgs, err := src.Packages()
	if err != nil {
		return "", err
	}
	blobs := map[string]bool{}
	copyBlob := func(sum string) error {
		if blobs[sum] {
			return nil
		}
		bl, err := src.OpenBlob(sum)
		if err != nil {
			return err
		}
		got, _, err := dst.PutBlob(io.NewSectionReader(bl, 0, bl.Size()), bl.Size())
		if err != nil {
			return fmt.Errorf("copy blob %s: %w", sum, err)
		}
		if got != sum {
			return fmt.Errorf("copy blob %s: the copy's SHA-256 is %s: the bolt file is damaged", sum, got)
		}
		blobs[sum] = true
		return nil
	}
	for _, img := range imgs {
		deviceTypes[img.DeviceType] = true
		if err := copyBlob(img.SHA256); err != nil {
			return "", err
		}
		// A stored image has its SeqNo: AddImage keeps a given one.
		if _, err := dst.AddImage(img); err != nil {
			return "", err
		}
	}
	count("images", len(imgs))
	for _, p := range pkgs {
		deviceTypes[p.DeviceType] = true
		if err := copyBlob(p.SHA256); err != nil {
			return "", err
		}
		if _, err := dst.PutPackage(p); err != nil {
			return "", err
		}
	}
	count("packages", len(pkgs))
	count("blobs", len(blobs))

	camps, err := src.Campaigns()
	if err != nil {
		return "", err
	}
	for _, c := range camps {
		deviceTypes[c.DeviceType] = true
		devs, err := src.CampaignDevices(c.ID)
		if err != nil {
			return "", err
		}
		for _, d := range devs {
			endpoints[d.Endpoint] = true
		}
		if err := dst.PutCampaign(c, devs); err != nil {
			return "", err
		}
	}
	count("campaigns", len(camps))

	profiles := 0
	settings := []string{"api-token", "firmware-signing-key"}
	for dt := range deviceTypes {
		settings = append(settings, "firmware-generation/"+dt)
		p, err := src.Profile(dt)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return "", err
		}
		if err := dst.PutProfile(p); err != nil {
			return "", err
		}
		profiles++
	}
	count("profiles", profiles)
	nset := 0
	for _, k := range settings {
		v, err := src.Setting(k)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return "", err
		}
		if err := dst.PutSetting(k, v); err != nil {
			return "", err
		}
		nset++
	}
	count("settings", nset)

	const all = 1 << 30
	nhist := 0
	for ep := range endpoints {
		h, err := src.History(ep, all)
		if err != nil {
			return "", err
		}
		if len(h) == 0 {
			continue
		}
		if err := dst.AddHistory(h, len(h)); err != nil {
			return "", err
		}
		nhist += len(h)
	}
	count("history entries", nhist)
	audit, err := src.Audit(all)
	if err != nil {
		return "", err
	}
	for _, a := range audit {
		if err := dst.AddAudit(a, len(audit)); err != nil {
			return "", err
		}
	}
	count("audit entries", len(audit))
	return strings.Join(counts, ", "), nil
}
