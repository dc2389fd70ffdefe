package firmware

import (
	"fmt"
	"strconv"
	"strings"
)

// Version is a parsed firmware version: MAJOR[.MINOR[.PATCH]] with an
// optional leading "v", an optional -prerelease (which sorts before its
// release, as semver says) and an optional +build (ignored in order).
// "1.0" and "1.0.0" are the same version.
type Version struct {
	Major, Minor, Patch int
	Pre                 string
}

// Bounds of the parts a version may have for its rollback counter to
// follow it (Code): versions beyond them need an explicit --seq.
const (
	maxMajor = 1<<10 - 2 // so that Code of the largest stays below 1<<28
	maxMinor = 1<<9 - 1
	maxPatch = 1<<9 - 1
)

// ParseVersion parses s as a semantic version, or fails saying why.
func ParseVersion(s string) (Version, error) {
	t := strings.TrimPrefix(s, "v")
	if i := strings.IndexByte(t, '+'); i >= 0 {
		t = t[:i]
	}
	var v Version
	if i := strings.IndexByte(t, '-'); i >= 0 {
		t, v.Pre = t[:i], t[i+1:]
		if v.Pre == "" {
			return Version{}, fmt.Errorf("version %q: empty pre-release after '-'", s)
		}
	}
	parts := strings.Split(t, ".")
	if t == "" || len(parts) > 3 {
		return Version{}, fmt.Errorf("version %q is not MAJOR[.MINOR[.PATCH]]", s)
	}
	nums := [3]*int{&v.Major, &v.Minor, &v.Patch}
	limits := [3]int{maxMajor, maxMinor, maxPatch}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || (len(p) > 1 && p[0] == '0') {
			return Version{}, fmt.Errorf("version %q: %q is not a number", s, p)
		}
		if n > limits[i] {
			return Version{}, fmt.Errorf("version %q: part %d is over %d (give the rollback counter with --seq)", s, n, limits[i])
		}
		*nums[i] = n
	}
	return v, nil
}

// Compare orders versions: -1, 0 or +1.
func (v Version) Compare(w Version) int {
	for _, d := range [3]int{v.Major - w.Major, v.Minor - w.Minor, v.Patch - w.Patch} {
		if d != 0 {
			if d < 0 {
				return -1
			}
			return 1
		}
	}
	switch {
	case v.Pre == w.Pre:
		return 0
	case v.Pre == "": // a release is newer than its pre-releases
		return 1
	case w.Pre == "":
		return -1
	case v.Pre < w.Pre:
		return -1
	}
	return 1
}

// Code is the rollback counter of the version: increasing with the version
// (a pre-release shares its release's), never 0, below 1<<28 so that
// generations (Repository.PackageFor) fit above it.
func (v Version) Code() uint32 {
	return uint32(v.Major)<<18 | uint32(v.Minor)<<9 | uint32(v.Patch) + 1
}

// CompareVersions orders two version strings when both parse; ok is false
// when either does not (then nothing is known of their order).
func CompareVersions(a, b string) (c int, ok bool) {
	va, err1 := ParseVersion(a)
	vb, err2 := ParseVersion(b)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return va.Compare(vb), true
}
