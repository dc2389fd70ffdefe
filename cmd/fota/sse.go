package main

import (
	"bufio"
	"errors"
	"io"
	"strings"
)

// errStopStream ends readSSE without an error: the caller has what it
// wanted.
var errStopStream = errors.New("stop stream")

// readSSE calls fn for each Server-Sent Event read from r (the HTML
// living-standard event-stream format: "event:" and "data:" lines, a blank
// line ends an event, ":" lines are comments such as keep-alives) until r
// ends or fn returns an error. errStopStream from fn ends it with nil.
func readSSE(r io.Reader, fn func(event, data string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20) // a campaign status carries every device
	event, data := "", []string(nil)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if len(data) > 0 {
				if event == "" {
					event = "message"
				}
				if err := fn(event, strings.Join(data, "\n")); err != nil {
					if errors.Is(err, errStopStream) {
						return nil
					}
					return err
				}
			}
			event, data = "", nil
		case strings.HasPrefix(line, ":"):
		default:
			k, v, _ := strings.Cut(line, ":")
			v = strings.TrimPrefix(v, " ")
			switch k {
			case "event":
				event = v
			case "data":
				data = append(data, v)
			}
		}
	}
	return sc.Err()
}
