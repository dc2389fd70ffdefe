package lwm2m

import "testing"

// Decoder benchmarks: a Read of the Device object /3/0 (all its resources,
// the spec's example values) in each multi-value format, and one resource
// (/3/0/0 or /3/0/13) in the single-value formats.

func benchDecode(b *testing.B, cf ContentFormat, base Path, es []Entry) {
	data, err := Encode(cf, base, es)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Decode(cf, base, data, deviceTypes); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeTLV(b *testing.B) { benchDecode(b, FormatTLV, InstancePath(3, 0), deviceEntries()) }
func BenchmarkDecodeSenMLJSON(b *testing.B) {
	benchDecode(b, FormatSenMLJSON, InstancePath(3, 0), deviceEntries())
}
func BenchmarkDecodeSenMLCBOR(b *testing.B) {
	benchDecode(b, FormatSenMLCBOR, InstancePath(3, 0), deviceEntries())
}
func BenchmarkDecodeLwM2MJSON(b *testing.B) {
	benchDecode(b, FormatLwM2MJSON, InstancePath(3, 0), deviceEntries())
}
func BenchmarkDecodeLwM2MCBOR(b *testing.B) {
	benchDecode(b, FormatLwM2MCBOR, InstancePath(3, 0), deviceEntries())
}
func BenchmarkDecodeText(b *testing.B) {
	benchDecode(b, FormatText, ResourcePath(3, 0, 13), deviceEntries()[13:14])
}
func BenchmarkDecodeCBOR(b *testing.B) {
	benchDecode(b, FormatCBOR, ResourcePath(3, 0, 13), deviceEntries()[13:14])
}
func BenchmarkDecodeOpaque(b *testing.B) {
	p := ResourcePath(5, 0, 0)
	benchDecode(b, FormatOpaque, p, []Entry{{p, Opaque(make([]byte, 1024))}})
}

func benchEncode(b *testing.B, cf ContentFormat) {
	es := deviceEntries()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Encode(cf, InstancePath(3, 0), es); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeTLV(b *testing.B)       { benchEncode(b, FormatTLV) }
func BenchmarkEncodeSenMLJSON(b *testing.B) { benchEncode(b, FormatSenMLJSON) }
func BenchmarkEncodeSenMLCBOR(b *testing.B) { benchEncode(b, FormatSenMLCBOR) }
func BenchmarkEncodeLwM2MCBOR(b *testing.B) { benchEncode(b, FormatLwM2MCBOR) }
