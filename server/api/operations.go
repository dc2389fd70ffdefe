package api

import (
	"github.com/fotastack/fota/server/bootstrap"
	"github.com/fotastack/fota/server/campaign"
	"github.com/fotastack/fota/server/events"
	"github.com/fotastack/fota/server/firmware"
	"github.com/fotastack/fota/server/software"
	"github.com/fotastack/fota/server/store"
)

// The operations of the OpenAPI document, one list per part, beside which
// a new route's documentation goes: a route registered without an entry
// here fails TestOpenAPIDocumentsEveryRoute.

// apiOps: the API's own routes, served whatever the parts.
func apiOps(s *schemas) []operation {
	return []operation{{
		Route: "GET /api/openapi.json", Role: store.RoleViewer, Tag: "api", Summary: "This OpenAPI 3.1 document",
		Responses: js{"200": jsonResponse("The document.", js{"type": "object"})},
	}}
}

// deviceOps: registered clients, operations on them, the security store
// and the event stream.
func deviceOps(s *schemas) []operation {
	client := js{"type": "object", "description": "A registration, in the shape of Leshan's demo API.", "properties": js{
		"endpoint": str(""), "registrationId": str("The {id} of /rd/{id}."), "registrationDate": js{"type": "string", "format": "date-time"},
		"lastUpdate": js{"type": "string", "format": "date-time"}, "lifetime": js{"type": "integer", "description": "seconds"},
		"lwM2mVersion": str("1.0, 1.1 or 1.2"), "bindingMode": str("U, UQ, ..."), "queueMode": js{"type": "boolean"},
		"smsNumber": str(""), "address": str("host:port the device last spoke from"), "transport": str("coap or coaps"),
		"secure": js{"type": "boolean"}, "security": str("none, psk or x509"), "identity": str("PSK identity or certificate CN"),
		"objectLinks": str("The registration's link format payload."), "expires": js{"type": "string", "format": "date-time"},
		"preferredFormat": str("The content format multi-value reads ask for (the best the device announced)."),
		"observations":    arrayOf(js{"type": "object", "properties": js{"paths": arrayOf(str("")), "composite": js{"type": "boolean"}}}),
	}}
	s.defs["Client"] = client
	s.defs["ClientPage"] = js{"type": "object", "description": "One page of GET /api/clients.", "properties": js{
		"clients":    arrayOf(ref("Client")),
		"next":       str("The cursor of the next page (?after=); empty after the last."),
		"registered": js{"type": "integer", "description": "All registered devices, filters aside."},
	}, "required": []string{"clients", "next", "registered"}}
	s.defs["DeviceResponse"] = js{"type": "object", "description": "A device's 2.xx answer. Its 4.xx and 5.xx answers are problems with deviceCode.",
		"properties": js{
			"status":        str("The CoAP code's name as Leshan spells it: CONTENT, CHANGED, CREATED, DELETED."),
			"code":          str("The CoAP code's name as go-coap spells it: Content, Changed, Created, Deleted."),
			"success":       js{"type": "boolean"},
			"path":          str("The LwM2M path asked."),
			"format":        str("The content format of the answer (SENML_JSON, TLV, text/plain, ...)."),
			"contentFormat": js{"type": "integer", "description": "Its CoAP Content-Format number."},
			"content":       js{"description": "The payload as sent, for text, link format and JSON formats."},
			"payload":       js{"type": "string", "contentEncoding": "base64", "description": "The payload of binary formats."},
			"entries": arrayOf(js{"type": "object", "properties": js{
				"path": str(""), "type": str("The value's LwM2M type."), "value": js{"description": "The value with its JSON type."}}}),
			"decodeError": str("Why the payload did not decode in its format."),
			"deviceError": str("Cancel only: the device did not answer or refused; the observation is cancelled on our side anyway."),
		}}
	s.defs["Node"] = js{"type": "object", "description": "A Leshan-style node, typed by \"type\" or the object registry.", "properties": js{
		"id":        js{"type": "integer"},
		"kind":      js{"type": "string", "enum": []string{"instance", "singleResource", "multiResource"}},
		"type":      str("string, integer, float, boolean, opaque, time, objlnk, ... (default: the object registry's)"),
		"value":     js{"description": "singleResource: the value."},
		"values":    js{"type": "object", "description": "multiResource: resource instance ID -> value."},
		"resources": arrayOf(ref("Node")),
	}, "required": []string{"kind"}}
	writeBody := js{"description": "application/json: {\"value\": v} writes one resource as text/plain; a node is encoded in ?format= " +
		"or the device's best format; {\"format\": f, \"payload\": base64} goes as is. Any other body goes as is in the LwM2M format " +
		"its Content-Type names, which the device must have announced (text/plain and application/octet-stream are always taken by " +
		"a single resource); a body without Content-Type, or in a format the device does not take, is refused with 415 before the " +
		"device is asked. An empty body needs no Content-Type.",
		"content": js{
			"application/json": js{"schema": js{"oneOf": []any{
				js{"type": "object", "properties": js{"value": js{"type": []string{"string", "number", "boolean"}}}, "required": []string{"value"}},
				ref("Node"),
				js{"type": "object", "properties": js{"format": str("SENML_JSON, TLV, ... or a number"), "payload": js{"type": "string", "contentEncoding": "base64"}}, "required": []string{"payload"}},
			}}},
			"text/plain": js{"schema": js{"type": "string"}}, "application/octet-stream": js{"schema": js{"type": "string", "format": "binary"}},
			"application/senml+json": js{"schema": js{"type": "array"}}, "application/senml+cbor": js{"schema": js{"type": "string", "format": "binary"}},
			"application/vnd.oma.lwm2m+tlv": js{"schema": js{"type": "string", "format": "binary"}}, "application/cbor": js{"schema": js{"type": "string", "format": "binary"}},
			"application/vnd.oma.lwm2m+json": js{"schema": js{"type": "object"}}, "application/vnd.oma.lwm2m+cbor": js{"schema": js{"type": "string", "format": "binary"}},
		}}
	format := param{Name: "format", Desc: "Content format to ask the device for (Read, Observe) or to encode a JSON node in (Write, Create): " +
		"TEXT, OPAQUE, CBOR, TLV, JSON (LwM2M 1.0), SENML_JSON, SENML_CBOR, LWM2M_CBOR, LINK, or a number."}
	timeout := param{Name: "timeout", Desc: "Seconds to wait for the device (0 < t <= 600; default the server's request timeout).", Schema: js{"type": "number"}}
	paths := param{Name: "paths", Desc: "composite only: the LwM2M paths, comma-separated (/3/0/1,/1/0/1)."}
	deviceErrors := js{
		"400": problemResponse("A bad path, ?format=, ?timeout= or body; or the device answered 4.00."),
		"404": problemResponse("No such registered client; or the device answered 4.04 (deviceCode)."),
		"502": problemResponse("The device answered 5.xx, or the exchange failed."),
		"503": problemResponse("The sleeping device's queue is full, or a DTLS device has no session."),
		"504": problemResponse("The device did not answer in time."),
	}
	with := func(extra js) js {
		out := js{}
		for k, v := range deviceErrors {
			out[k] = v
		}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}
	answer := jsonResponse("The device's 2.xx answer.", ref("DeviceResponse"))
	security := s.named("SecurityInfo", securityJSON{})
	s.named("Event", events.Event{}) // the data of GET /api/event's events
	attrs := []param{format, timeout}
	for _, a := range []string{"pmin", "pmax", "gt", "lt", "st", "epmin", "epmax", "edge", "con", "hqmax"} {
		attrs = append(attrs, param{Name: a, Desc: "attributes only: the notification attribute (LwM2M Core 5.1.2); empty value clears it."})
	}
	return []operation{
		{Route: "GET /api/clients", Role: store.RoleViewer, Tag: "clients", Summary: "Registered clients, all or one page",
			Description: "Without query parameters: every registration, as an array (Leshan's shape). With any of `limit`, `after`, `q`, " +
				"`security`, `queue`: one page, a ClientPage, in the byte order of endpoints, read from the store's endpoint index (a fleet " +
				"of 100,000 is paged without being loaded). Follow `next` with `?after=` until it is empty; a page may hold fewer than " +
				"`limit` clients while more follow.",
			Query: []param{
				{Name: "limit", Desc: "Page size, 1 to 1000 (default 100).", Schema: js{"type": "integer", "minimum": 1, "maximum": 1000}},
				{Name: "after", Desc: "The cursor: the `next` of the page before (an endpoint); the page starts after it."},
				{Name: "q", Desc: "Only endpoints that contain this text (ASCII case ignored)."},
				{Name: "security", Desc: "Only this security mode.", Schema: js{"type": "string", "enum": []string{"none", "psk", "x509"}}},
				{Name: "queue", Desc: "Only devices in queue mode (true) or not (false).", Schema: js{"type": "boolean"}},
			},
			Responses: js{"200": jsonResponse("The registrations (no parameters), or one page.", js{"oneOf": []any{arrayOf(ref("Client")), ref("ClientPage")}}),
				"400": problemResponse("A bad limit, security or queue.")}},
		{Route: "GET /api/clients/{ep}", Role: store.RoleViewer, Tag: "clients", Summary: "One registered client, with its observations",
			Responses: js{"200": jsonResponse("The registration.", ref("Client")), "404": problemResponse("No such registered client.")}},
		{Route: "GET /api/clients/{ep}/{path...}", Role: store.RoleViewer, Tag: "clients", Summary: "Read, Discover or Read-Composite",
			Description: "`{path}` is a Read; `{path}/discover` a Discover (link format); `composite?paths=` a Read-Composite (SenML JSON unless ?format=).",
			Query:       []param{format, timeout, paths},
			Responses:   with(js{"200": answer, "406": problemResponse("The device answered 4.06: it cannot answer in that format.")})},
		{Route: "PUT /api/clients/{ep}/{path...}", Role: store.RoleOperator, Tag: "clients", Summary: "Write, Write-Attributes or Write-Composite",
			Description: "`{path}` is a Write (replace; `?replace=false` a partial update); `{path}/attributes?pmin=..` a Write-Attributes; `composite` a Write-Composite (SenML JSON unless the body says otherwise).",
			Query:       append(attrs, param{Name: "replace", Desc: "false: partial update (CoAP POST) instead of replace (PUT).", Schema: js{"type": "boolean"}}),
			Body:        writeBody,
			Responses: with(js{"200": answer, "405": problemResponse("The device answered 4.05 (a read-only resource, say), or the suffix takes no PUT."),
				"415": problemResponse("No Content-Type, or a format the device does not take (refused before the device is asked); or the device answered 4.15.")})},
		{Route: "POST /api/clients/{ep}/{path...}", Role: store.RoleOperator, Tag: "clients", Summary: "Execute, Create, Observe or Observe-Composite",
			Description: "On a resource (`/o/i/r`): Execute, the body being its arguments as text (`0='now'`). On an object or instance: Create (or, on an instance, a partial-update Write), with a write body. `{path}/observe`: Observe; `composite/observe?paths=`: Observe-Composite. Notifications arrive on GET /api/event.",
			Query:       []param{format, timeout, paths},
			Body:        writeBody,
			Responses: with(js{"200": answer, "405": problemResponse("The device answered 4.05 (executing a readable resource, say)."),
				"415": problemResponse("A Create body without Content-Type or in a format the device does not take.")})},
		{Route: "DELETE /api/clients/{ep}/{path...}", Role: store.RoleOperator, Tag: "clients", Summary: "Delete, or cancel an observation",
			Description: "`{path}`: Delete of an object instance. `{path}/observe` or `composite/observe?paths=`: cancel the observation; the answer is 200 CANCELLED even when the device does not answer, since the server forgets it.",
			Query:       []param{timeout, paths},
			Responses:   with(js{"200": answer, "405": problemResponse("The device answered 4.05 (an instance of a single-instance object, say).")})},
		{Route: "GET /api/event", Role: store.RoleViewer, Tag: "events", Summary: "Server-Sent Events of all devices",
			Description: "Events REGISTRATION, UPDATED, DEREGISTRATION, NOTIFICATION, SEND and CAMPAIGN; `data:` is the Event JSON. A comment line every 25 s keeps the stream open.",
			Query: []param{{Name: "ep", Desc: "Only the events of this endpoint."},
				{Name: "token", Desc: "The bearer token, for EventSource, which cannot set headers."}},
			Responses: js{"200": js{"description": "The event stream; each event's data is an Event (components/schemas/Event).", "content": js{"text/event-stream": js{"schema": js{"type": "string"}}}}}},
		{Route: "GET /api/security/clients", Role: store.RoleAdmin, Tag: "security", Summary: "Devices' credentials (Leshan's security info)",
			Responses: js{"200": jsonResponse("The credentials, PSK keys in hex.", arrayOf(security))}},
		{Route: "PUT /api/security/clients", Role: store.RoleAdmin, Tag: "security", Summary: "Store a device's credentials",
			Body: jsonRequest(`{"endpoint":..,"tls":{"mode":"psk","details":{"identity":..,"key":HEX}}} or mode "x509".`, security, true),
			Responses: js{"200": jsonResponse("Stored.", security), "400": problemResponse("Bad endpoint, mode, identity or key."),
				"409": problemResponse("The PSK identity belongs to another endpoint (or is a bootstrap identity).")}},
		{Route: "DELETE /api/security/clients/{ep}", Role: store.RoleAdmin, Tag: "security", Summary: "Remove a device's credentials",
			Responses: js{"204": emptyResponse("Removed."), "404": problemResponse("The endpoint has no credentials.")}},
	}
}

// firmwareOps: the firmware repository.
func firmwareOps(s *schemas) []operation {
	image := s.named("Image", firmware.Image{})
	pkg := s.named("Package", firmware.Package{})
	if def, ok := s.defs["Package"].(js); ok {
		props := def["properties"].(js)
		props["path"] = str("Where devices download it (coap(s)://server/fw/...).")
		props["etag"] = str("Its CoAP ETag, hex.")
	}
	profile := s.named("DeviceProfile", firmware.DeviceProfile{})
	notFound := problemResponse("No such image.")
	return []operation{
		{Route: "POST /api/firmware", Role: store.RoleOperator, Tag: "firmware", Summary: "Upload an image",
			Description: "The image is the raw body, or the part named \"file\" of a multipart/form-data body whose other fields may carry the parameters.",
			Query: []param{{Name: "deviceType", Desc: "The device type it is for.", Required: true}, {Name: "version", Desc: "Its version.", Required: true},
				{Name: "opaque", Desc: "true: another vendor's package, served as is.", Schema: js{"type": "boolean"}},
				{Name: "eraseBlock", Desc: "Sets the device type's erase block, bytes.", Schema: js{"type": "integer"}},
				{Name: "ram", Desc: "Sets the device type's decoder RAM, bytes.", Schema: js{"type": "integer"}}},
			Body: js{"required": true, "content": js{
				"application/octet-stream": js{"schema": js{"type": "string", "format": "binary"}},
				"multipart/form-data": js{"schema": js{"type": "object", "properties": js{"file": js{"type": "string", "format": "binary"},
					"deviceType": str(""), "version": str("")}, "required": []string{"file"}}}}},
			Responses: js{"201": jsonResponse("Stored.", image), "400": problemResponse("Missing or bad parameters or image."),
				"409": problemResponse("An image of that device type and version exists.")}},
		{Route: "GET /api/firmware", Role: store.RoleViewer, Tag: "firmware", Summary: "The images",
			Responses: js{"200": jsonResponse("The images.", arrayOf(image))}},
		{Route: "GET /api/firmware/key", Role: store.RoleViewer, Tag: "firmware", Summary: "The packages' signing public key",
			Responses: js{"200": jsonResponse("Ed25519, hex (what devices trust: fota client --trust).", js{"type": "object", "properties": js{
				"algorithm": str("Ed25519"), "publicKey": str("hex")}})}},
		{Route: "GET /api/firmware/packages", Role: store.RoleViewer, Tag: "firmware", Summary: "The packages made so far",
			Responses: js{"200": jsonResponse("The packages.", arrayOf(pkg))}},
		{Route: "POST /api/firmware/packages", Role: store.RoleOperator, Tag: "firmware", Summary: "Make (or find) a package",
			Query: []param{{Name: "image", Desc: "The target image's ID.", Required: true}, {Name: "from", Desc: "The version devices run: a delta from it."},
				{Name: "full", Desc: "true: a full package even where a delta is possible.", Schema: js{"type": "boolean"}}},
			Responses: js{"200": jsonResponse("The package.", pkg), "400": problemResponse("No package can be made."), "404": notFound}},
		{Route: "PUT /api/firmware/types/{type}", Role: store.RoleOperator, Claims: true, Tag: "firmware", Summary: "Set what packages for a device type must fit",
			Body:      jsonRequest(`{"eraseBlock":4096,"ram":16384}`, profile, true),
			Responses: js{"200": jsonResponse("The profile.", profile), "400": problemResponse("A bad profile.")}},
		{Route: "GET /api/firmware/types/{type}", Role: store.RoleViewer, Tag: "firmware", Summary: "What packages for a device type must fit",
			Responses: js{"200": jsonResponse("The profile (defaults if never set).", profile)}},
		{Route: "GET /api/firmware/{id}", Role: store.RoleViewer, Tag: "firmware", Summary: "One image",
			Responses: js{"200": jsonResponse("The image.", image), "404": notFound}},
		{Route: "DELETE /api/firmware/{id}", Role: store.RoleOperator, Tag: "firmware", Summary: "Remove an image and its packages",
			Responses: js{"204": emptyResponse("Removed."), "404": notFound}},
	}
}

// appOps: the application repository and the applications of a device
// (Software Management, /9).
func appOps(s *schemas) []operation {
	app := s.named("App", software.App{})
	inst := s.named("AppInstance", software.Instance{})
	job := s.named("AppJob", software.Job{})
	notFound := problemResponse("No such application version.")
	deviceErrors := func(extra js) js {
		out := js{"404": problemResponse("No such registered client."), "504": problemResponse("The device did not answer in time."),
			"503": problemResponse("The device has no session or its queue is full."), "500": problemResponse("The device's answer was not understood.")}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}
	return []operation{
		{Route: "POST /api/apps", Tag: "apps", Summary: "Upload an application version",
			Description: "The application is the raw body, or the part named \"file\" of a multipart/form-data body. Devices get it in a signed package (the firmware signing key) naming it and its version.",
			Query: []param{{Name: "name", Desc: "Its name, as the device reports it in /9/x/0.", Required: true},
				{Name: "version", Desc: "Its version (/9/x/1).", Required: true}},
			Body: js{"required": true, "content": js{
				"application/octet-stream": js{"schema": js{"type": "string", "format": "binary"}},
				"multipart/form-data": js{"schema": js{"type": "object", "properties": js{"file": js{"type": "string", "format": "binary"},
					"name": str(""), "version": str("")}, "required": []string{"file"}}}}},
			Responses: js{"201": jsonResponse("Stored.", app), "400": problemResponse("Missing name or version, or an empty or too large body."),
				"409": problemResponse("That name and version exist.")}},
		{Route: "GET /api/apps", Tag: "apps", Summary: "The application repository",
			Responses: js{"200": jsonResponse("The application versions, by name.", arrayOf(app))}},
		{Route: "GET /api/apps/{id}", Tag: "apps", Summary: "One application version",
			Responses: js{"200": jsonResponse("The application version.", app), "404": notFound}},
		{Route: "DELETE /api/apps/{id}", Tag: "apps", Summary: "Remove an application version (devices keep what they installed)",
			Responses: js{"204": emptyResponse("Removed."), "404": notFound}},
		{Route: "GET /api/clients/{ep}/apps", Tag: "apps", Summary: "The device's applications, read from its /9",
			Responses: deviceErrors(js{"200": jsonResponse("Its /9 instances.", arrayOf(inst))})},
		{Route: "POST /api/clients/{ep}/apps/{name}/{op}", Tag: "apps", Summary: "Install, uninstall, activate or deactivate an application on the device",
			Description: "Starts a job and answers at once; GET .../job follows it. install creates a /9 instance (or prepares the installed one for " +
				"an update with Uninstall \"1\"), delivers the package (the device pulls its Package URI, or with push=true it is written to /9/x/2 " +
				"by Block1), waits for DELIVERED, executes Install and waits for INSTALLED. uninstall executes Uninstall, waits for INITIAL and deletes " +
				"the instance. activate and deactivate execute /9/x/10 or /9/x/11 and wait for the Activation State.",
			Query: []param{{Name: "version", Desc: "install: the version to install."},
				{Name: "push", Desc: "install: true to push the package instead of the device pulling it.", Schema: js{"type": "boolean"}},
				{Name: "timeout", Desc: "Seconds the job may take (default 600).", Schema: js{"type": "number"}}},
			Responses: deviceErrors(js{"202": jsonResponse("The job, started.", job), "400": problemResponse("A bad operation or timeout, or install without a version."),
				"409": problemResponse("An operation on this application of this device is running.")})},
		{Route: "GET /api/clients/{ep}/apps/{name}/job", Tag: "apps", Summary: "The last operation on the device's application",
			Responses: js{"200": jsonResponse("The job: phase, the device's Update State and Result, done, error.", job),
				"404": problemResponse("No operation on it since the server started.")}},
	}
}

// campaignOps: update campaigns.
func campaignOps(s *schemas) []operation {
	c := s.named("Campaign", campaign.Campaign{})
	st := s.named("CampaignStatus", campaign.Status{})
	notFound := problemResponse("No such campaign.")
	return []operation{
		{Route: "POST /api/campaigns", Role: store.RoleOperator, Tag: "campaigns", Summary: "Create and start a campaign",
			Body: jsonRequest("The campaign: \"image\", or \"deviceType\" and \"version\", or \"app\" and \"appVersion\" (an application version from /api/apps); targets, waves, thresholds, window. "+
				"id, state, wave, planned, joined, created and updated are the server's.", c, true),
			Responses: js{"201": jsonResponse("The campaign, started.", st), "400": problemResponse("A bad campaign (unknown fields, no such image or version too).")}},
		{Route: "GET /api/campaigns", Role: store.RoleViewer, Tag: "campaigns", Summary: "All campaigns with their summaries",
			Responses: js{"200": jsonResponse("The campaigns.", arrayOf(st))}},
		{Route: "GET /api/campaigns/{id}", Role: store.RoleViewer, Tag: "campaigns", Summary: "One campaign with its summary and devices",
			Responses: js{"200": jsonResponse("The campaign.", st), "404": notFound}},
		{Route: "POST /api/campaigns/{id}/{action}", Role: store.RoleOperator, Tag: "campaigns", Summary: "Pause, resume or abort a campaign",
			Body: jsonRequest("Optional reason (pause, abort).", js{"type": "object", "properties": js{"reason": str("")}}, false),
			Responses: js{"200": jsonResponse("The campaign.", st), "404": problemResponse("No such campaign or action."),
				"409": problemResponse("The campaign has ended.")}},
		{Route: "GET /api/campaigns/{id}/events", Role: store.RoleViewer, Tag: "campaigns", Summary: "Server-Sent Events of one campaign",
			Description: "A \"status\" event (CampaignStatus without devices) at once, on every change and at least every second; a \"device\" event (CampaignDevice) on every device change. The stream ends when the campaign completes or aborts.",
			Responses:   js{"200": js{"description": "The event stream.", "content": js{"text/event-stream": js{"schema": js{"type": "string"}}}}, "404": notFound}},
	}
}

// bootstrapOps: the bootstrap server's configurations and credentials.
func bootstrapOps(s *schemas) []operation {
	cfg := s.named("BootstrapConfig", bootstrap.Config{})
	entry := js{"type": "object", "properties": js{"endpoint": str(""), "config": cfg, "status": s.named("BootstrapStatus", bootstrap.Status{})}}
	security := s.named("SecurityInfo", securityJSON{})
	notFound := problemResponse("No configuration for the endpoint.")
	return []operation{
		{Route: "GET /api/bootstrap", Role: store.RoleAdmin, Tag: "bootstrap", Summary: "All bootstrap configurations",
			Responses: js{"200": jsonResponse("Endpoint -> configuration.", js{"type": "object", "additionalProperties": cfg})}},
		{Route: "GET /api/bootstrap/{ep}", Role: store.RoleAdmin, Tag: "bootstrap", Summary: "One configuration and the last bootstrap's outcome",
			Responses: js{"200": jsonResponse("The configuration (and status once the device bootstrapped).", entry), "404": notFound}},
		{Route: "PUT /api/bootstrap/{ep}", Role: store.RoleAdmin, Claims: true, Tag: "bootstrap", Summary: "Store a configuration",
			Description: "The body is the configuration itself (the \"config\" member of the GET answer). DM server URIs left empty are this server's; \"generatePsk\": true makes a PSK and enters it in the DM security store.",
			Body:        jsonRequest("The configuration.", cfg, true),
			Responses: js{"200": jsonResponse("Stored, as resolved.", entry), "400": problemResponse("A bad configuration (unknown fields too)."),
				"409": problemResponse("A generated or given identity belongs to another endpoint.")}},
		{Route: "DELETE /api/bootstrap/{ep}", Role: store.RoleAdmin, Tag: "bootstrap", Summary: "Remove a configuration",
			Responses: js{"204": emptyResponse("Removed."), "404": notFound}},
		{Route: "GET /api/bootstrap/security/clients", Role: store.RoleAdmin, Tag: "bootstrap", Summary: "Bootstrap credentials (keys left out)",
			Responses: js{"200": jsonResponse("The credentials.", arrayOf(security))}},
		{Route: "PUT /api/bootstrap/security/clients", Role: store.RoleAdmin, Tag: "bootstrap", Summary: "Store a device's bootstrap credentials (PSK only)",
			Body: jsonRequest("Leshan's security info, mode psk.", security, true),
			Responses: js{"204": emptyResponse("Stored."), "400": problemResponse("Bad endpoint, mode, identity or key."),
				"409": problemResponse("The identity belongs to another endpoint or is a DM identity.")}},
		{Route: "DELETE /api/bootstrap/security/clients/{ep}", Role: store.RoleAdmin, Tag: "bootstrap", Summary: "Remove a device's bootstrap credentials",
			Responses: js{"204": emptyResponse("Removed."), "404": problemResponse("The endpoint has no bootstrap credentials.")}},
	}
}

// auditOps: the audit trail, and with device management each device's
// history (both kept in the store).
func auditOps(s *schemas) []operation {
	limit := param{Name: "limit", Desc: "How many of the newest entries (default 100 for the audit trail, 200 for a history).", Schema: js{"type": "integer"}}
	entry := js{"type": "object", "properties": js{"time": js{"type": "string", "format": "date-time"}, "actor": str("The credential's name."),
		"action": str("METHOD /path"), "status": js{"type": "integer"}, "remote": str("host:port")}}
	hist := js{"type": "object", "properties": js{"time": js{"type": "string", "format": "date-time"}, "endpoint": str(""),
		"kind": str("registered, deregistered, expired, campaign or firmware"), "detail": str("For a person."), "campaign": str(""),
		"state": str(""), "result": js{"type": "integer"}, "version": str("")}}
	return []operation{
		{Route: "GET /api/audit", Role: store.RoleAdmin, Tag: "audit", Summary: "The API calls that changed something, oldest first",
			Query:     []param{limit, {Name: "since", Desc: "Only entries from this RFC 3339 time on."}},
			Responses: js{"200": jsonResponse("The entries.", arrayOf(entry)), "400": problemResponse("A bad limit or since.")}},
		{Route: "GET /api/clients/{ep}/history", Role: store.RoleViewer, Tag: "clients", Summary: "A device's history, oldest first (the device need not be registered now)",
			Query: []param{limit}, Responses: js{"200": jsonResponse("The entries.", arrayOf(hist)), "400": problemResponse("A bad limit.")}},
	}
}

// domainOps: domains (the operator's token only) and a domain's tokens
// (its administrator).
func domainOps(s *schemas) []operation {
	domain := js{"type": "object", "properties": js{"name": str(""), "created": js{"type": "string", "format": "date-time"}}}
	token := js{"type": "object", "properties": js{"id": str(""), "domain": str(""), "role": str("viewer, operator or administrator"),
		"name": str(""), "created": js{"type": "string", "format": "date-time"}, "expires": js{"type": "string", "format": "date-time"},
		"revoked": js{"type": "string", "format": "date-time"}}}
	created := js{"type": "object", "properties": js{"id": str(""), "token": str("The secret, shown this once (the server keeps its SHA-256)."),
		"role": str(""), "domain": str(""), "expires": js{"type": "string", "format": "date-time"}}}
	return []operation{
		{Route: "POST /api/domains", Role: roleRoot, Tag: "domains", Summary: "Create a domain and its administrator's token",
			Body: jsonRequest(`{"name":"water"}`, js{"type": "object", "properties": js{"name": str("a-z, 0-9, '-'")}, "required": []string{"name"}}, true),
			Responses: js{"201": jsonResponse("The domain and adminToken (shown this once).", js{"type": "object", "properties": js{
				"name": str(""), "adminToken": str(""), "adminTokenId": str("")}}),
				"400": problemResponse("A bad name."), "409": problemResponse("The domain exists.")}},
		{Route: "GET /api/domains", Role: roleRoot, Tag: "domains", Summary: "The domains",
			Responses: js{"200": jsonResponse("The domains, default first.", arrayOf(domain))}},
		{Route: "POST /api/tokens", Role: store.RoleAdmin, Tag: "domains", Summary: "Make a token of the caller's domain",
			Body: jsonRequest(`{"role":"viewer","expires":"720h","name":"night shift"}`, js{"type": "object", "properties": js{
				"role": str("viewer, operator or administrator"), "expires": str("A duration (720h) or an RFC 3339 time; empty: never."), "name": str("")},
				"required": []string{"role"}}, true),
			Responses: js{"201": jsonResponse("The token; its secret is shown this once.", created), "400": problemResponse("A bad role or expiry.")}},
		{Route: "GET /api/tokens", Role: store.RoleAdmin, Tag: "domains", Summary: "The caller's domain's tokens (never their secrets)",
			Responses: js{"200": jsonResponse("The tokens.", arrayOf(token))}},
		{Route: "DELETE /api/tokens/{id}", Role: store.RoleAdmin, Tag: "domains", Summary: "Revoke a token of the caller's domain",
			Responses: js{"204": emptyResponse("Revoked (or was)."), "404": problemResponse("No such token in the domain.")}},
	}
}
