package lwm2m

import "time"

// The Device object /3/0 of the examples in LwM2M Core Appendix: the values
// every spec example of a Device read uses.

var deviceTypes = TypeMap{
	ResourcePath(3, 0, 0):  TypeString,
	ResourcePath(3, 0, 1):  TypeString,
	ResourcePath(3, 0, 2):  TypeString,
	ResourcePath(3, 0, 3):  TypeString,
	ResourcePath(3, 0, 6):  TypeInteger,
	ResourcePath(3, 0, 7):  TypeInteger,
	ResourcePath(3, 0, 8):  TypeInteger,
	ResourcePath(3, 0, 9):  TypeInteger,
	ResourcePath(3, 0, 10): TypeInteger,
	ResourcePath(3, 0, 11): TypeInteger,
	ResourcePath(3, 0, 13): TypeTime,
	ResourcePath(3, 0, 14): TypeString,
	ResourcePath(3, 0, 15): TypeString,
	ResourcePath(3, 0, 16): TypeString,
}

func deviceEntries() []Entry {
	p := func(r uint16) Path { return ResourcePath(3, 0, r) }
	ri := func(r, i uint16) Path { return ResourceInstancePath(3, 0, r, i) }
	return []Entry{
		{p(0), String("Open Mobile Alliance")},
		{p(1), String("Lightweight M2M Client")},
		{p(2), String("345000123")},
		{p(3), String("1.0")},
		{ri(6, 0), Integer(1)},
		{ri(6, 1), Integer(5)},
		{ri(7, 0), Integer(3800)},
		{ri(7, 1), Integer(5000)},
		{ri(8, 0), Integer(125)},
		{ri(8, 1), Integer(900)},
		{p(9), Integer(100)},
		{p(10), Integer(15)},
		{ri(11, 0), Integer(0)},
		{p(13), TimeUnix(1367491215)},
		{p(14), String("+02:00")},
		{p(16), String("U")},
	}
}

func entriesEqual(a, b []Entry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Path != b[i].Path || !a[i].Value.Equal(b[i].Value) {
			return false
		}
	}
	return true
}

var timeZero = time.Unix(1700000000, 0)
