package main

import (
	"fmt"
	"runtime/debug"
	"strings"
)

func init() {
	register("version", "print the module version and VCS revision of this binary", runVersion)
}

func runVersion(args []string) error {
	fs := newFlags("version", "", "Print the module version, the VCS revision and time this binary was built from (as go build stamps them), and the Go version.",
		"fota version")
	if _, err := fs.parseN(args, 0, 0); err != nil {
		return err
	}
	bi, _ := debug.ReadBuildInfo()
	fmt.Println(versionLine(bi))
	return nil
}

// buildVCS is what `go build` in a checkout records (-buildvcs=auto).
type buildVCS struct {
	revision, time string
	modified       bool
}

func vcsOf(bi *debug.BuildInfo) buildVCS {
	var v buildVCS
	if bi == nil {
		return v
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.revision = s.Value
		case "vcs.time":
			v.time = s.Value
		case "vcs.modified":
			v.modified = s.Value == "true"
		}
	}
	return v
}

// versionLine is `fota version`'s answer, from the build information
// alone so that no release step has to stamp anything: the module version
// (Go 1.24 and later derive a pseudo-version from the commit in a checkout;
// "(devel)" when there is none, as with go run), then the revision, commit
// time and whether the tree had uncommitted changes.
func versionLine(bi *debug.BuildInfo) string {
	if bi == nil {
		return "fota (devel): no build information in this binary"
	}
	mod := bi.Main.Version
	if mod == "" {
		mod = "(devel)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "fota %s", mod)
	v := vcsOf(bi)
	switch {
	case v.revision != "":
		fmt.Fprintf(&b, ", revision %s", short(v.revision))
		if v.time != "" {
			fmt.Fprintf(&b, " of %s", v.time)
		}
		if v.modified {
			b.WriteString(", with uncommitted changes")
		}
	case mod == "(devel)":
		b.WriteString(", no VCS revision recorded (go run, or a build outside a checkout)")
	}
	if bi.GoVersion != "" {
		fmt.Fprintf(&b, "; %s", bi.GoVersion)
	}
	return b.String()
}

// shortVersion names this build in one word, for the Software Version a
// simulated device reports (/3/0/19).
func shortVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(devel)"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	if r := vcsOf(bi).revision; r != "" {
		return short(r)
	}
	return "(devel)"
}

func short(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}
