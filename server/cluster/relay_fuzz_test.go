package cluster

import (
	"bytes"
	"net/netip"
	"testing"
)

// FuzzDecodeFrame: any datagram on the cluster address is refused or
// decoded without a panic, and only a frame made with the secret decodes,
// to what was encoded.
func FuzzDecodeFrame(f *testing.F) {
	secret := []byte("cluster-secret-for-the-fuzz-test")
	dev := netip.MustParseAddrPort("192.0.2.7:40123")
	rec := append([]byte{23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 9, 0, 4}, "data"...)
	good, err := encodeFrame(secret, frameIn, 3, dev, rec)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)-1])        // cut: the MAC no longer matches
	f.Add(good[:frameHead+frameMAC]) // no record
	f.Add(append([]byte{'G'}, good[1:]...))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		kind, sender, device, got, err := decodeFrame(secret, b)
		if err != nil {
			return
		}
		again, err := encodeFrame(secret, kind, sender, device, got)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("decoded %x to kind %d sender %d device %v, which encodes to %x", b, kind, sender, device, again)
		}
	})
}

func TestFrameRoundTripAndRefusals(t *testing.T) {
	secret := []byte("s3cret")
	dev := netip.MustParseAddrPort("10.1.2.3:5684")
	rec := bytes.Repeat([]byte{0x17}, 40)
	b, err := encodeFrame(secret, frameOut, 2, dev, rec)
	if err != nil {
		t.Fatal(err)
	}
	kind, sender, device, got, err := decodeFrame(secret, b)
	if err != nil || kind != frameOut || sender != 2 || device != dev || !bytes.Equal(got, rec) {
		t.Fatalf("round trip: %d %d %v %x %v", kind, sender, device, got, err)
	}
	if _, _, _, _, err := decodeFrame([]byte("other"), b); err == nil {
		t.Fatal("a frame made with another secret decoded")
	}
	b[len(b)-1] ^= 1
	if _, _, _, _, err := decodeFrame(secret, b); err == nil {
		t.Fatal("a changed record decoded")
	}
	if _, err := encodeFrame(secret, frameIn, 1, netip.MustParseAddrPort("[2001:db8::1]:5684"), rec); err == nil {
		t.Fatal("an IPv6 device address was framed (the frame holds IPv4 only)")
	}
}
