package client

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/fotastack/fota/lwm2m"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/mux"
)

// recorder is a mux.ResponseWriter that keeps the answer, so the request
// router can be driven without a socket.
type recorder struct {
	msg  *pool.Message
	code codes.Code
	set  bool
}

func (r *recorder) SetResponse(code codes.Code, cf message.MediaType, d io.ReadSeeker, opts ...message.Option) error {
	r.code, r.set = code, true
	r.msg.SetCode(code)
	r.msg.SetContentFormat(cf)
	if d != nil {
		r.msg.SetBody(d)
	}
	for _, o := range opts {
		r.msg.AddOptionBytes(o.ID, o.Value)
	}
	return nil
}
func (r *recorder) Conn() mux.Conn             { return nil }
func (r *recorder) SetMessage(m *pool.Message) { r.msg = m }
func (r *recorder) Message() *pool.Message     { return r.msg }

// FuzzServe sends arbitrary requests through the client's router and the
// objects behind it: every request gets an answer, nothing panics.
func FuzzServe(f *testing.F) {
	c, err := New(Config{Endpoint: "fuzz", ServerURI: "coap://127.0.0.1:9", Logger: testLogger(f)})
	if err != nil {
		f.Fatal(err)
	}
	tlv, _ := lwm2m.Encode(lwm2m.FormatTLV, lwm2m.InstancePath(3, 0), []lwm2m.Entry{{Path: lwm2m.ResourcePath(3, 0, 14), Value: lwm2m.String("+01:00")}})
	senml, _ := lwm2m.Encode(lwm2m.FormatSenMLCBOR, lwm2m.Root, []lwm2m.Entry{{Path: lwm2m.ResourcePath(1, 0, 1), Value: lwm2m.Integer(60)}})
	seeds := []struct {
		code   codes.Code
		path   string
		cf     int32
		accept int32
		query  string
		body   []byte
	}{
		{codes.GET, "/3/0", -1, int32(lwm2m.FormatTLV), "", nil},
		{codes.GET, "/3", -1, 40, "", nil},
		{codes.PUT, "/3/0", int32(lwm2m.FormatTLV), -1, "", tlv},
		{codes.POST, "/3/0", int32(lwm2m.FormatTLV), -1, "", tlv},
		{codes.PUT, "/4/0/2", -1, -1, "pmin=1", nil},
		{codes.POST, "/3/0/4", 0, -1, "", []byte("0='a'")},
		{codes.POST, "/1", int32(lwm2m.FormatTLV), -1, "", nil},
		{codes.DELETE, "/1/0", -1, -1, "", nil},
		{codes.FETCH, "/", int32(lwm2m.FormatSenMLJSON), -1, "", []byte(`[{"n":"/3/0/0"}]`)},
		{codes.IPATCH, "/", int32(lwm2m.FormatSenMLCBOR), -1, "", senml},
	}
	for _, s := range seeds {
		f.Add(uint8(s.code), s.path, s.cf, s.accept, s.query, s.body)
	}
	f.Fuzz(func(t *testing.T, code uint8, path string, cf, accept int32, query string, body []byte) {
		m := pool.NewMessage(context.Background())
		m.SetCode(codes.Code(code))
		m.SetToken([]byte{1, 2, 3, 4})
		if m.SetPath(path) != nil {
			return
		}
		if cf >= 0 && cf <= 0xffff {
			m.SetContentFormat(message.MediaType(cf))
		}
		if accept >= 0 && accept <= 0xffff {
			m.SetAccept(message.MediaType(accept))
		}
		if query != "" {
			m.AddQuery(query)
		}
		if body != nil {
			m.SetBody(bytes.NewReader(body))
		}
		w := &recorder{msg: pool.NewMessage(context.Background())}
		c.serve(w, &mux.Message{Message: m})
		switch codes.Code(code) {
		case codes.GET, codes.PUT, codes.POST, codes.DELETE, codes.FETCH, codes.IPATCH:
			if !w.set {
				t.Fatalf("%v %s: no answer", codes.Code(code), path)
			}
		}
		// Observations started by the fuzzer end here.
		c.stopObservations()
	})
}
