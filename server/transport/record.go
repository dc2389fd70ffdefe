package transport

import "encoding/binary"

// DTLS record layer (RFC 6347 4.1; RFC 9146 4 for tls12_cid records).
const (
	recordHeaderLen      = 13
	contentTypeAlert     = 21
	contentTypeHandshake = 22
	contentTypeCID       = 25
	handshakeClientHello = 1
)

// isClientHello reports whether the datagram starts with an epoch-0
// handshake record carrying a ClientHello: the start of a new association.
func isClientHello(b []byte) bool {
	return len(b) > recordHeaderLen &&
		b[0] == contentTypeHandshake &&
		b[3] == 0 && b[4] == 0 &&
		b[recordHeaderLen] == handshakeClientHello
}

// fixRecordVersions rewrites the record-layer version of epoch-0 records
// from 0xFE00 (mbedTLS's default before it knows the version, dropped by
// pion) to 0xFEFD. The version in the record header is not covered by the
// handshake hash, so the rewrite is invisible to both ends. 0xFEFF (DTLS
// 1.0, used by several stacks in the first flight) pion accepts as is. It
// walks every record of the datagram and stops at a malformed one.
func fixRecordVersions(b []byte) {
	for len(b) >= recordHeaderLen {
		if b[0] == contentTypeCID {
			return // CID records are never epoch 0
		}
		if b[1] == 0xfe && b[2] == 0x00 && b[3] == 0 && b[4] == 0 {
			b[2] = 0xfd
		}
		n := int(binary.BigEndian.Uint16(b[11:13]))
		if recordHeaderLen+n > len(b) {
			return
		}
		b = b[recordHeaderLen+n:]
	}
}

// recordCID returns the connection ID of a tls12_cid record with CIDs of
// size bytes, or nil.
func recordCID(b []byte, size int) []byte {
	if size == 0 || len(b) < 11+size+2 || b[0] != contentTypeCID {
		return nil
	}
	return b[11 : 11+size]
}

// TLS alert descriptions (RFC 5246 7.2, RFC 4279 2).
const (
	alertInternalError      = 80
	alertUnknownPSKIdentity = 115
)

// unknownIdentityAlert returns b with the description of a plaintext
// (epoch 0) internal_error alert changed to unknown_psk_identity, the alert
// RFC 4279 2 names for a PSK identity the server does not know: pion sends
// internal_error when the PSK callback fails, which tells a device's
// operator nothing. b itself is not changed (it is pion's buffer).
func unknownIdentityAlert(b []byte) []byte {
	var out []byte
	for off := 0; len(b)-off >= recordHeaderLen; {
		rec := b[off:]
		n := int(binary.BigEndian.Uint16(rec[11:13]))
		if recordHeaderLen+n > len(rec) {
			break
		}
		if rec[0] == contentTypeAlert && rec[3] == 0 && rec[4] == 0 && n == 2 && rec[recordHeaderLen+1] == alertInternalError {
			if out == nil {
				out = append([]byte(nil), b...)
			}
			out[off+recordHeaderLen+1] = alertUnknownPSKIdentity
		}
		off += recordHeaderLen + n
	}
	if out == nil {
		return b
	}
	return out
}
