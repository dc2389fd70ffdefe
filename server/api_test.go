package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fotastack/fota/server/servertest"
)

// GET /api/event streams REGISTRATION and NOTIFICATION events as
// Server-Sent Events; EventSource clients pass the token as ?token=.
func TestEventStream(t *testing.T) {
	srv := servertest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/api/event?token="+servertest.Token, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("HTTP %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	<-lines // the stream's opening comment
	d := connect(t, srv, "coap", "sse-dev")
	next := func(want string) map[string]any {
		t.Helper()
		var event string
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatal("stream ended")
				}
				if v, ok := strings.CutPrefix(l, "event: "); ok {
					event = v
				}
				if v, ok := strings.CutPrefix(l, "data: "); ok && event == want {
					var m map[string]any
					if err := json.Unmarshal([]byte(v), &m); err != nil {
						t.Fatalf("event data %q: %v", v, err)
					}
					return m
				}
			case <-ctx.Done():
				t.Fatalf("no %s event", want)
			}
		}
	}
	if e := next("REGISTRATION"); e["endpoint"] != "sse-dev" {
		t.Fatalf("registration event %v", e)
	}
	if _, err := srv.Observe(ctx, "sse-dev", "/3/0/9", nil); err != nil {
		t.Fatal(err)
	}
	d.set("/3/0/9", "12")
	if err := d.notify("/3/0/9"); err != nil {
		t.Fatal(err)
	}
	e := next("NOTIFICATION")
	b, _ := json.Marshal(e)
	// Decoded with the object model: /3/0/9 (Battery Level) is an integer.
	if !strings.Contains(string(b), `"entries":[{"path":"/3/0/9","type":"integer","value":12}]`) {
		t.Fatalf("notification event %s", b)
	}
}
