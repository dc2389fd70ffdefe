package api

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
)

// The OpenAPI document: GET /api/openapi.json describes every route the API
// serves, built when the API is made from the operations of the parts it
// serves (operations.go) and the Go types of their bodies (schema.go).
// TestOpenAPIDocumentsEveryRoute compares its paths with the patterns the
// mux registered, both ways: a route added without an operation, or an
// operation left after its route went, fails the test.
//
// It is behind the bearer token like every route: one rule for the whole
// API, and the route list of a device-management server is not for
// anonymous callers; tools that read it (curl, Swagger UI, code
// generators) can send the token.

// operation documents one route.
type operation struct {
	// Route is the pattern exactly as registered: "GET /api/clients/{ep}".
	Route       string
	Tag         string
	Summary     string
	Description string
	// Query parameters; path parameters come from the pattern and
	// pathParams.
	Query []param
	// Body is the OpenAPI requestBody, nil for none.
	Body js
	// Responses maps status codes to OpenAPI responses; every operation
	// also answers 401 and may answer other problems ("default").
	Responses js
	// Role is the weakest role that may call it (viewer, operator,
	// administrator; root: the operator's token only). ServeHTTP enforces
	// it and the document shows it as x-fota-role; empty is root, so a
	// route added without thought is closed to domain tokens.
	Role string
	// Claims: the route creates the record its path names, which becomes
	// the caller's domain's (guard claims it instead of checking it).
	Claims bool
}

// param is a query parameter.
type param struct {
	Name, Desc string
	Schema     js
	Required   bool
}

// pathParams describes the path parameters of every pattern by name.
var pathParams = map[string]js{
	"ep": {"description": "The client's endpoint name.", "schema": js{"type": "string"}},
	"path": {"description": "The LwM2M path below the client, slashes included (`3/0/1`, `3/0`), optionally " +
		"followed by `/observe`, `/discover` or `/attributes`; or `composite` (with `?paths=`) and `composite/observe`. " +
		"It spans several segments (Go pattern `{path...}`): send its slashes as they are.",
		"schema": js{"type": "string"}, "example": "3/0/0"},
	"id":     {"description": "The ID of the image, campaign, application version or token.", "schema": js{"type": "string"}},
	"name":   {"description": "The application's name (/9/x/0 on the device).", "schema": js{"type": "string"}},
	"op":     {"description": "What to do with the device's application.", "schema": js{"type": "string", "enum": []string{"install", "uninstall", "activate", "deactivate"}}},
	"type":   {"description": "The device type (/3/0/17 of its devices).", "schema": js{"type": "string"}},
	"action": {"description": "What to do with the campaign.", "schema": js{"type": "string", "enum": []string{"pause", "resume", "abort"}}},
}

var patternParam = regexp.MustCompile(`\{([a-zA-Z_]+)(\.\.\.)?\}`)

// openAPIPath turns a ServeMux pattern's path into an OpenAPI path
// template: {path...} (several segments) becomes {path}.
func openAPIPath(p string) string { return patternParam.ReplaceAllString(p, "{$1}") }

// splitRoute splits "GET /api/x" into the method and the path.
func splitRoute(route string) (method, path string) {
	method, path, _ = strings.Cut(route, " ")
	return method, path
}

// buildOpenAPI renders the OpenAPI 3.1 document of ops.
func buildOpenAPI(s *schemas, ops []operation) ([]byte, error) {
	s.named("Problem", Problem{})
	if def, ok := s.defs["Problem"].(js); ok {
		def["description"] = "An error (RFC 9457). type is about:blank, " + ProblemDeviceError + " (the device answered 4.xx/5.xx: deviceCode, " +
			"deviceStatus, path) or " + ProblemContentFormat + " (415 before the device was asked: formats it takes)."
		def["required"] = []string{"type", "title", "status", "detail", "error"}
	}
	paths := js{}
	var tags []string
	for _, op := range ops {
		method, path := splitRoute(op.Route)
		var params []any
		for _, m := range patternParam.FindAllStringSubmatch(path, -1) {
			p := js{"name": m[1], "in": "path", "required": true}
			for k, v := range pathParams[m[1]] {
				p[k] = v
			}
			params = append(params, p)
		}
		for _, q := range op.Query {
			p := js{"name": q.Name, "in": "query", "description": q.Desc, "schema": q.Schema}
			if q.Schema == nil {
				p["schema"] = js{"type": "string"}
			}
			if q.Required {
				p["required"] = true
			}
			params = append(params, p)
		}
		resp := js{
			"401":     problemResponse("No, a wrong, an expired or a revoked bearer token."),
			"403":     problemResponse("The token's role is too weak for this route (x-fota-role)."),
			"default": problemResponse("Any other error, as an RFC 9457 problem."),
		}
		for code, r := range op.Responses {
			resp[code] = r
		}
		o := js{"summary": op.Summary, "tags": []string{op.Tag}, "responses": resp, "x-fota-role": roleOf(op)}
		if op.Description != "" {
			o["description"] = op.Description
		}
		if len(params) > 0 {
			o["parameters"] = params
		}
		if op.Body != nil {
			o["requestBody"] = op.Body
		}
		p := openAPIPath(path)
		item, _ := paths[p].(js)
		if item == nil {
			item = js{}
			paths[p] = item
		}
		item[strings.ToLower(method)] = o
		if !slices.Contains(tags, op.Tag) {
			tags = append(tags, op.Tag)
		}
	}
	var tagList []any
	for _, t := range tags {
		tagList = append(tagList, js{"name": t})
	}
	doc := js{
		"openapi": "3.1.0",
		"info": js{
			"title":   "fota HTTP API",
			"version": "1",
			"description": "The HTTP API of the fota LwM2M server (doc/server.md). Every route needs `Authorization: Bearer TOKEN` " +
				"(`?token=` for EventSource). Errors are RFC 9457 problems (application/problem+json) whose `error` member repeats " +
				"`detail` for older clients. A device's own 4.xx/5.xx answer is an error of type " + ProblemDeviceError +
				" naming the device's code in `deviceCode`.",
		},
		"tags":  tagList,
		"paths": paths,
		"components": js{
			"schemas":         s.defs,
			"securitySchemes": js{"bearer": js{"type": "http", "scheme": "bearer"}, "query": js{"type": "apiKey", "in": "query", "name": "token"}},
		},
		"security": []any{js{"bearer": []string{}}, js{"query": []string{}}},
	}
	return json.MarshalIndent(doc, "", "  ")
}

func (a *API) apiOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(a.openapi)
}

// Response helpers of operations.go.

// jsonResponse is an application/json answer of schema.
func jsonResponse(desc string, schema js) js {
	return js{"description": desc, "content": js{"application/json": js{"schema": schema}}}
}

// emptyResponse is an answer without a body (204).
func emptyResponse(desc string) js { return js{"description": desc} }

// problemResponse is an error answer.
func problemResponse(desc string) js {
	return js{"description": desc, "content": js{"application/problem+json": js{"schema": ref("Problem")}}}
}

// jsonRequest is an application/json request body of schema.
func jsonRequest(desc string, schema js, required bool) js {
	return js{"description": desc, "required": required, "content": js{"application/json": js{"schema": schema}}}
}

// arrayOf is an array schema.
func arrayOf(items js) js { return js{"type": "array", "items": items} }

// str is a string schema with a description.
func str(desc string) js { return js{"type": "string", "description": desc} }

// roleOf is the role an operation needs (root when its entry names none).
func roleOf(op operation) string {
	if op.Role == "" {
		return roleRoot
	}
	return op.Role
}
