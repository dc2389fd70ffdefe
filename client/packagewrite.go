package client

import (
	"fmt"
	"io"
	"strings"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
)

// PackageWrite is a write of a package resource (/5/0/0, /9/x/2) as a
// RawHandler receives it: the whole package in one request, or one Block1
// block of it (RFC 7959 2.5). Firmware Update and Software Management keep
// what they do with it; the decoding and the answer's options are here.
type PackageWrite struct {
	Body []byte
	// Blocked says the request carried Block1; the fields below are its.
	Blocked bool
	SZX     blockwise.SZX
	Num     int64
	More    bool
	Size    int   // the block size
	Size1   int64 // the whole size the server announced, -1 if it did not
	option  uint32
}

// ReadPackageWrite decodes a package write of at most max bytes of body
// (one more is read, so that an oversized one shows). A failure is the
// answer to give: its code and a diagnostic, already sent on w.
func ReadPackageWrite(w mux.ResponseWriter, r *mux.Message, max int64) (PackageWrite, bool) {
	if cf, err := r.Options().ContentFormat(); err == nil && cf != message.AppOctets {
		Respond(w, codes.UnsupportedMediaType, fmt.Sprintf("package content format %v, want application/octet-stream", cf))
		return PackageWrite{}, false
	}
	var pw PackageWrite
	if b := r.Body(); b != nil {
		// The client core has read the body already; read it again.
		if _, err := b.Seek(0, io.SeekStart); err != nil {
			Respond(w, codes.BadRequest, "read package payload: "+err.Error())
			return PackageWrite{}, false
		}
		var err error
		if pw.Body, err = io.ReadAll(io.LimitReader(b, max+1)); err != nil {
			Respond(w, codes.BadRequest, "read package payload: "+err.Error())
			return PackageWrite{}, false
		}
	}
	v, ok := Block1(r)
	if !ok {
		return pw, true
	}
	szx, num, more, err := blockwise.DecodeBlockOption(v)
	if err != nil || szx > blockwise.SZX1024 {
		// BERT (SZX 7) is for CoAP over TCP only (RFC 8323 6).
		Respond(w, codes.BadRequest, "bad Block1 option")
		return PackageWrite{}, false
	}
	pw.Blocked, pw.SZX, pw.Num, pw.More, pw.Size, pw.Size1, pw.option = true, szx, num, more, int(szx.Size()), -1, v
	if s, err := r.Options().GetUint32(message.Size1); err == nil {
		pw.Size1 = int64(s)
	}
	return pw, true
}

// AnswerBlock answers a Block1 block: code with msg; echo repeats the
// request's Block1 option (2.31, and the final 2.04); a 4.08 carries the
// block expected (next, -1 if none); a 4.13 carries in Size1 the largest
// package accepted (RFC 7959 2.9.3).
func (pw PackageWrite) AnswerBlock(w mux.ResponseWriter, code codes.Code, echo bool, next int64, msg string, largest int64) {
	Respond(w, code, msg)
	switch {
	case echo:
		w.Message().SetOptionUint32(message.Block1, pw.option)
	case code == codes.RequestEntityIncomplete && next >= 0:
		if bv, err := blockwise.EncodeBlockOption(pw.SZX, next, true); err == nil {
			w.Message().SetOptionUint32(message.Block1, bv)
		}
	case code == codes.RequestEntityTooLarge:
		w.Message().SetOptionUint32(message.Size1, uint32(largest))
	}
}

// Respond answers a RawHandler's request with code and, when msg is not
// empty, a plain-text diagnostic.
func Respond(w mux.ResponseWriter, code codes.Code, msg string) {
	var body io.ReadSeeker
	if msg != "" {
		body = strings.NewReader(msg)
	}
	_ = w.SetResponse(code, message.TextPlain, body)
}
