package transport

import (
	"bytes"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"
)

// BenchmarkHibernateResume measures one cycle of hibernating an idle
// session and resuming it for the device's next request (a GET answered
// over the resumed session), and reports the size of the kept record's
// serialized DTLS state.
func BenchmarkHibernateResume(b *testing.B) {
	srv, err := ListenDTLS("127.0.0.1:0", DTLSConfig{
		Handler: mux.HandlerFunc(func(w mux.ResponseWriter, r *mux.Message) {
			_ = w.SetResponse(codes.Content, message.TextPlain, bytes.NewReader([]byte(SessionFrom(r.Context()).Identity)))
		}),
		PSK:            func([]byte) ([]byte, error) { return pskKey, nil },
		HibernateAfter: time.Hour, // the benchmark hibernates by hand
		Logger:         discardLogger(),
	})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	cc := dialServing(b, pc, srv.Addr(), "bench")
	getID(b, cc)
	a := srv.Sessions()[0].assoc
	var stateBytes int
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a.hibernateIfIdle(time.Now().Add(2*time.Hour), time.Hour)
		a.mu.Lock()
		stateBytes = len(a.state)
		a.mu.Unlock()
		if stateBytes == 0 {
			b.Fatal("session did not hibernate")
		}
		getID(b, cc)
	}
	b.StopTimer()
	b.ReportMetric(float64(stateBytes), "state-bytes")
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
