package firmware

import "testing"

func TestParseVersion(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Version
		bad  bool
	}{
		{in: "1", want: Version{1, 0, 0, ""}},
		{in: "1.0", want: Version{1, 0, 0, ""}},
		{in: "v2.10.3", want: Version{2, 10, 3, ""}},
		{in: "3.0-vendor", want: Version{3, 0, 0, "vendor"}},
		{in: "1.2.3+build.7", want: Version{1, 2, 3, ""}},
		{in: "", bad: true},
		{in: "1.2.3.4", bad: true},
		{in: "1.x", bad: true},
		{in: "01.2", bad: true},
		{in: "1.0-", bad: true},
		{in: "2026.1.0", bad: true}, // over the major bound: needs --seq
		{in: "-1", bad: true},
	} {
		got, err := ParseVersion(tc.in)
		if tc.bad != (err != nil) || (!tc.bad && got != tc.want) {
			t.Errorf("ParseVersion(%q) = %+v, %v", tc.in, got, err)
		}
	}
}

// The rollback counter follows version order: a device accepts a package
// whose counter is not below its own, so an older version must have a
// smaller code.
func TestVersionOrderAndCode(t *testing.T) {
	ordered := []string{"0.0.0", "0.0.1", "0.9", "1.0.0-alpha", "1.0.0-beta", "1.0", "1.0.1", "1.1", "1.10", "2.0.0-rc1", "2", "10.0", "1022.511.511"}
	for i := 1; i < len(ordered); i++ {
		a, _ := ParseVersion(ordered[i-1])
		b, err := ParseVersion(ordered[i])
		if err != nil {
			t.Fatal(err)
		}
		if a.Compare(b) != -1 || b.Compare(a) != 1 {
			t.Errorf("%s is not older than %s", ordered[i-1], ordered[i])
		}
		if a.Code() > b.Code() || (a.Pre == "" && b.Pre == "" && a.Code() >= b.Code()) {
			t.Errorf("code of %s (%d) not below %s (%d)", ordered[i-1], a.Code(), ordered[i], b.Code())
		}
		if b.Code() == 0 || b.Code() >= 1<<28 {
			t.Errorf("code of %s = %d, want in (0, 1<<28)", ordered[i], b.Code())
		}
	}
	if c, ok := CompareVersions("1.0", "1.0.0"); !ok || c != 0 {
		t.Errorf("1.0 vs 1.0.0: %d %v", c, ok)
	}
	if _, ok := CompareVersions("1.0", "nightly"); ok {
		t.Error("a version that does not parse was ordered")
	}
}

func FuzzParseVersion(f *testing.F) {
	for _, s := range []string{"1.0", "v2.3.4-rc.1+b5", "", "1..2", "999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseVersion(s)
		if err != nil {
			return
		}
		if v.Compare(v) != 0 || v.Code() == 0 || v.Code() >= 1<<28 {
			t.Fatalf("%q: %+v code %d", s, v, v.Code())
		}
	})
}
