// Package coapmux routes CoAP requests by method and path, as
// http.ServeMux does for HTTP: the registration interface, the firmware
// download and the bootstrap interface each add their routes to the router
// of the listener they share.
package coapmux

import (
	"log/slog"
	"strings"
	"sync"

	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
)

// Handler handles one CoAP request; args are the path segments that
// matched "*" in the route pattern.
type Handler func(w mux.ResponseWriter, r *mux.Message, args []string)

// Router routes CoAP requests by method and path, like http.ServeMux.
// Several interfaces (registration, bootstrap, firmware download) share one
// listener by adding their routes to one Router. Messages that are
// responses (notifications whose observation go-coap does not know, as
// after a restart) go to the Responses handler.
type Router struct {
	// Log, if set, receives a line for every request no route takes.
	Log *slog.Logger

	mu        sync.RWMutex
	routes    []route
	responses func(w mux.ResponseWriter, r *mux.Message)
}

type route struct {
	method  codes.Code
	pattern []string
	h       Handler
}

// NewRouter returns an empty router.
func NewRouter() *Router { return &Router{} }

// Handle adds a route. method is "GET", "POST", "PUT", "DELETE", "FETCH" or
// "IPATCH"; pattern is a slash-separated path in which "*" matches one
// segment ("rd/*").
func (rt *Router) Handle(method, pattern string, h Handler) {
	var c codes.Code
	switch method {
	case "GET":
		c = codes.GET
	case "POST":
		c = codes.POST
	case "PUT":
		c = codes.PUT
	case "DELETE":
		c = codes.DELETE
	case "FETCH":
		c = codes.FETCH
	case "IPATCH":
		c = codes.IPATCH
	default:
		panic("server: unknown CoAP method " + method) // programming error, not input
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.routes = append(rt.routes, route{method: c, pattern: splitPath(pattern), h: h})
}

// Responses sets the handler of response messages that no request waits for.
func (rt *Router) Responses(h func(w mux.ResponseWriter, r *mux.Message)) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.responses = h
}

func splitPath(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// ServeCOAP implements mux.Handler.
func (rt *Router) ServeCOAP(w mux.ResponseWriter, r *mux.Message) {
	code := r.Code()
	if code == codes.Empty {
		return
	}
	rt.mu.RLock()
	routes, responses := rt.routes, rt.responses
	rt.mu.RUnlock()
	if code >= 64 { // class 2..5: a response
		if responses != nil {
			responses(w, r)
		}
		return
	}
	p, _ := r.Options().Path()
	segs := splitPath(p)
	methodMismatch := false
	for _, rte := range routes {
		args, ok := match(rte.pattern, segs)
		if !ok {
			continue
		}
		if rte.method != code {
			methodMismatch = true
			continue
		}
		rte.h(w, r, args)
		return
	}
	if rt.Log != nil {
		rt.Log.Warn("coap request refused: no route", "method", code, "path", p, "from", w.Conn().RemoteAddr(), "methodNotAllowed", methodMismatch)
	}
	if methodMismatch {
		_ = w.SetResponse(codes.MethodNotAllowed, 0, nil)
		return
	}
	_ = w.SetResponse(codes.NotFound, 0, nil)
}

func match(pattern, segs []string) ([]string, bool) {
	if len(pattern) != len(segs) {
		return nil, false
	}
	var args []string
	for i, p := range pattern {
		if p == "*" {
			args = append(args, segs[i])
			continue
		}
		if p != segs[i] {
			return nil, false
		}
	}
	return args, true
}
