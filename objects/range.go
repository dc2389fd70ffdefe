package objects

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"

	"github.com/fotastack/fota/lwm2m"
)

// Interval is a closed interval [Min, Max] of a resource's range.
type Interval struct{ Min, Max float64 }

func (iv Interval) String() string {
	if iv.Min == iv.Max {
		return strconv.FormatFloat(iv.Min, 'g', -1, 64)
	}
	return strconv.FormatFloat(iv.Min, 'g', -1, 64) + ".." + strconv.FormatFloat(iv.Max, 'g', -1, 64)
}

// maxRangeTokens bounds how many comma-separated parts a range may have, so
// a hostile DDF cannot make the model grow without bound.
const maxRangeTokens = 256

// lengthUnits are words that OMA definitions put after a length range
// ("0..255 bytes").
var lengthUnits = []string{"bytes", "byte", "octets", "octet", "characters", "chars", "b"}

// parseRange reads a <RangeEnumeration> for a resource of type t and fills
// Bounds, Lengths or Enum. The OMA registry writes ranges as "0..255",
// "1..65534", "-40..85", a single value "6", lists "16,32,48", lengths with a
// unit "0..255 bytes", and sometimes prose; prose constrains nothing and is
// not an error. A range that reads as numbers but is inverted (max < min) is
// an error.
func (r *ResourceModel) parseRange() error {
	text := strings.TrimSpace(r.Range)
	r.Bounds, r.Lengths, r.Enum = nil, nil, nil
	if text == "" {
		return nil
	}
	parts := strings.Split(text, ",")
	if len(parts) > maxRangeTokens {
		return fmt.Errorf("range %q: more than %d parts", truncate(text), maxRangeTokens)
	}
	switch r.Type {
	case lwm2m.TypeInteger, lwm2m.TypeUnsignedInteger, lwm2m.TypeFloat, lwm2m.TypeTime:
		ivs, ok, err := parseIntervals(parts, false)
		if err != nil {
			return fmt.Errorf("range %q: %w", truncate(text), err)
		}
		if ok {
			r.Bounds = ivs
		}
	case lwm2m.TypeString, lwm2m.TypeOpaque, lwm2m.TypeCoreLnk:
		ivs, ok, err := parseIntervals(parts, true)
		if err != nil {
			return fmt.Errorf("range %q: %w", truncate(text), err)
		}
		if ok {
			for _, iv := range ivs {
				if iv.Min < 0 || iv.Min != math.Trunc(iv.Min) || iv.Max != math.Trunc(iv.Max) {
					return fmt.Errorf("range %q: a length range needs whole numbers >= 0", truncate(text))
				}
			}
			r.Lengths = ivs
			return nil
		}
		if r.Type == lwm2m.TypeString {
			r.Enum = parseEnum(parts)
		}
	}
	return nil
}

// parseIntervals reads every part as "a..b" or "n" (and, where lengths
// allow a unit word, "a..b bytes"). ok is false when some part is not
// numeric, meaning the range is prose.
func parseIntervals(parts []string, lengths bool) (ivs []Interval, ok bool, err error) {
	for _, p := range parts {
		p = strings.TrimSpace(p)
		if lengths {
			if i := strings.LastIndexByte(p, ' '); i > 0 {
				for _, u := range lengthUnits {
					if strings.EqualFold(p[i+1:], u) {
						p = strings.TrimSpace(p[:i])
						break
					}
				}
			}
		}
		lo, hi, isRange := strings.Cut(p, "..")
		if !isRange {
			// "0-100" is also seen; a leading '-' is a sign, not a separator.
			if i := strings.IndexByte(p[min(1, len(p)):], '-'); i >= 0 && len(p) > 0 {
				lo, hi, isRange = p[:i+1], p[i+2:], true
			}
		}
		if !isRange {
			lo, hi = p, p
		}
		a, err1 := parseNumber(lo)
		b, err2 := parseNumber(hi)
		if err1 != nil || err2 != nil {
			return nil, false, nil
		}
		if b < a {
			return nil, false, fmt.Errorf("%q: maximum below minimum", p)
		}
		ivs = append(ivs, Interval{a, b})
	}
	return ivs, true, nil
}

func parseNumber(s string) (float64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty")
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("not a number")
	}
	// ParseFloat accepts "0x1p3", "1e3", "inf": keep to decimal notation.
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c == '.' || c == '-' || c == '+') {
			return 0, fmt.Errorf("not a decimal number")
		}
	}
	return f, nil
}

// parseEnum reads a list of bare words ("U,UQ,S") as an enumeration; a part
// with spaces means the range is prose, and gives no enumeration.
func parseEnum(parts []string) []string {
	if len(parts) < 2 {
		return nil
	}
	out := make([]string, 0, len(parts))
	for _, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" || strings.IndexFunc(p, unicode.IsSpace) >= 0 {
			return nil
		}
		out = append(out, p)
	}
	return out
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// Check tells whether v, already of the resource's type, lies in the
// resource's range: numeric bounds, byte-length bounds or enumeration. The
// error wraps ErrOutOfRange and says which rule v breaks.
func (r *ResourceModel) Check(v lwm2m.Value) error {
	switch v.Type() {
	case lwm2m.TypeInteger, lwm2m.TypeTime:
		if len(r.Bounds) > 0 && !inBoundsInt(r.Bounds, v.Int()) {
			return fmt.Errorf("%w: %d is outside %s", ErrOutOfRange, v.Int(), r.Range)
		}
	case lwm2m.TypeUnsignedInteger:
		if len(r.Bounds) > 0 && !inBoundsUint(r.Bounds, v.Uint()) {
			return fmt.Errorf("%w: %d is outside %s", ErrOutOfRange, v.Uint(), r.Range)
		}
	case lwm2m.TypeFloat:
		f := v.Float()
		if len(r.Bounds) > 0 && !inBoundsFloat(r.Bounds, f) {
			return fmt.Errorf("%w: %g is outside %s", ErrOutOfRange, f, r.Range)
		}
	case lwm2m.TypeString, lwm2m.TypeCoreLnk:
		s := v.Str()
		if len(r.Lengths) > 0 && !inBoundsUint(r.Lengths, uint64(len(s))) {
			return fmt.Errorf("%w: length %d bytes is outside %s", ErrOutOfRange, len(s), r.Range)
		}
		if len(r.Enum) > 0 {
			for _, e := range r.Enum {
				if s == e {
					return nil
				}
			}
			return fmt.Errorf("%w: %q is not one of %s", ErrOutOfRange, truncate(s), r.Range)
		}
	case lwm2m.TypeOpaque:
		n := len(v.Bytes())
		if len(r.Lengths) > 0 && !inBoundsUint(r.Lengths, uint64(n)) {
			return fmt.Errorf("%w: length %d bytes is outside %s", ErrOutOfRange, n, r.Range)
		}
	}
	return nil
}

// The bounds are float64; integers are compared exactly by rounding the
// bound inwards (x >= 0.5 is x >= 1) instead of rounding x to float64,
// which would blur values above 2^53.

func inBoundsInt(ivs []Interval, x int64) bool {
	for _, iv := range ivs {
		if geInt(x, math.Ceil(iv.Min)) && leInt(x, math.Floor(iv.Max)) {
			return true
		}
	}
	return false
}

func geInt(x int64, b float64) bool {
	switch {
	case b <= math.MinInt64:
		return true
	case b >= math.MaxInt64: // 2^63 as a float64: above every int64
		return false
	}
	return x >= int64(b)
}

func leInt(x int64, b float64) bool {
	switch {
	case b >= math.MaxInt64:
		return true
	case b < math.MinInt64:
		return false
	}
	return x <= int64(b)
}

func inBoundsUint(ivs []Interval, x uint64) bool {
	for _, iv := range ivs {
		lo, hi := math.Ceil(iv.Min), math.Floor(iv.Max)
		if hi < 0 {
			continue
		}
		okLo := lo <= 0 || (lo < math.MaxUint64 && x >= uint64(lo))
		okHi := hi >= math.MaxUint64 || x <= uint64(hi)
		if okLo && okHi {
			return true
		}
	}
	return false
}

func inBoundsFloat(ivs []Interval, f float64) bool {
	for _, iv := range ivs {
		if f >= iv.Min && f <= iv.Max { // false for NaN
			return true
		}
	}
	return false
}
