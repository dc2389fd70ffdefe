// Package seal wraps a signed delta package (delta.Make's FOTD) in a
// sealed package (FOTS): signed with the package signing key over the
// bytes as sent, optionally encrypted end to end to one device or a group,
// and optionally announcing the next signing key (key rotation).
//
// # Why this shape
//
// The signature is over the ciphertext (a digest of every byte before it),
// not over the plaintext: the device checks who made the package in one
// streaming pass with a 256-byte buffer before it unwraps a key or
// decrypts a byte, a member of a group cannot re-encrypt other content
// under the shared content key, and the recipient list is covered too.
// The second pass decrypts chunk by chunk; each chunk is AEAD-sealed
// (AES-256-GCM) with its index and a final-chunk flag in the nonce, so a
// reordered, repeated or truncated stream fails, and the installer needs
// one chunk of RAM (1 KiB by default) beside the decoder's arena.
//
// The content key is wrapped per recipient with X25519 ECDH to a fresh
// ephemeral key, HKDF-SHA256 and AES-256-GCM, rather than with a key
// derived from the device's DTLS PSK: the PSK is held by the server (and
// the bootstrap server), so PSK wrapping would let whoever reads the
// server's database decrypt the firmware. With X25519 the packager needs
// only the devices' public keys and the server stores ciphertext it cannot
// read; a group is either one wrap per device or a group key shared by
// its devices.
//
// # Format, version 1 (integers little-endian, uv an unsigned LEB128 varint)
//
//	off  size  field
//	0    4     magic "FOTS"
//	4    1     version (1)
//	5    1     flags: bit0 encrypted, bit1 announces a new signing key
//	6    1     chunk size as log2 (9..14, encrypted only; 0 otherwise)
//	7    uv    payload length P: the inner package's bytes (1..MaxPayload)
//	..   32    new signing key, Ed25519 public (flag bit1): the device
//	           trusts it instead of the current one once this package's
//	           update commits
//	..   32    ephemeral X25519 public key (bit0)
//	..   uv    R, recipients (bit0; 1..MaxRecipients)
//	..   R*56  per recipient: key ID (first 8 bytes of SHA-256 of its X25519
//	           public key), content key wrapped (32 bytes + 16 tag)
//	..         payload: P bytes as they are, or (bit0) ceil(P/C) chunks, each
//	           min(C, rest) bytes of ciphertext then a 16-byte tag
//	end-64 64  Ed25519 signature by the current signing key over
//	           "fota seal v1\x00" || SHA-256(every byte before it)
//
// Key wrap: KEK = HKDF-SHA256(X25519(ephemeral, device), salt = ephemeral
// public || device public, info "fota seal v1 key wrap"), wrapped =
// AES-256-GCM(KEK, nonce 0, content key, aad = key ID). The KEK is used
// once (a fresh ephemeral key per package), so the fixed nonce is safe.
//
// Chunk i: AES-256-GCM(content key, nonce = i as 8 bytes big-endian, 3
// zero bytes, 1 if it is the last chunk else 0; aad = SHA-256 of the
// header, bytes 0 to the payload).
//
// The inner package keeps its own signature (it stays a valid package);
// the installer relies on the outer one, which covers it through the AEAD.
package seal
