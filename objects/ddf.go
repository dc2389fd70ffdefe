package objects

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/fotastack/fota/lwm2m"
)

// MaxDDFSize is the largest DDF file LoadDDF reads. The OMA registry's
// biggest object definitions are a few hundred kilobytes, mostly prose.
const MaxDDFSize = 4 << 20

// ErrDDF is wrapped by every error about the content of a DDF file.
var ErrDDF = errors.New("objects: bad DDF")

// The XML shape of an OMA DDF file (the LWM2M.xsd schema the OMA registry
// publishes its object definitions in). Fields are strings so that the
// loader, not encoding/xml, reports what is wrong with which item.
type ddfFile struct {
	XMLName xml.Name    `xml:"LWM2M"`
	Objects []ddfObject `xml:"Object"`
}

type ddfObject struct {
	ObjectType        string    `xml:"ObjectType,attr"`
	Name              string    `xml:"Name"`
	Description1      string    `xml:"Description1"`
	Description2      string    `xml:"Description2"`
	ObjectID          string    `xml:"ObjectID"`
	ObjectURN         string    `xml:"ObjectURN"`
	LWM2MVersion      string    `xml:"LWM2MVersion"`
	ObjectVersion     string    `xml:"ObjectVersion"`
	MultipleInstances string    `xml:"MultipleInstances"`
	Mandatory         string    `xml:"Mandatory"`
	Items             []ddfItem `xml:"Resources>Item"`
}

type ddfItem struct {
	ID                string `xml:"ID,attr"`
	Name              string `xml:"Name"`
	Operations        string `xml:"Operations"`
	MultipleInstances string `xml:"MultipleInstances"`
	Mandatory         string `xml:"Mandatory"`
	Type              string `xml:"Type"`
	RangeEnumeration  string `xml:"RangeEnumeration"`
	Units             string `xml:"Units"`
	Description       string `xml:"Description"`
}

// LoadDDF reads one OMA DDF XML file (<LWM2M><Object
// ObjectType="MODefinition">...) and returns the object models it defines.
// It reads at most MaxDDFSize bytes. Errors wrap ErrDDF and name the object
// and item at fault; nothing in the input makes it panic.
func LoadDDF(r io.Reader) ([]*ObjectModel, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxDDFSize+1))
	if err != nil {
		return nil, fmt.Errorf("read DDF: %w", err)
	}
	if len(data) > MaxDDFSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrDDF, MaxDDFSize)
	}
	return parseDDF(data)
}

func parseDDF(data []byte) ([]*ObjectModel, error) {
	var f ddfFile
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.CharsetReader = func(charset string, input io.Reader) (io.Reader, error) {
		// OMA publishes its definitions in UTF-8; US-ASCII is a subset.
		switch strings.ToLower(charset) {
		case "utf-8", "utf8", "us-ascii", "ascii":
			return input, nil
		}
		return nil, fmt.Errorf("encoding %q is not supported (want UTF-8)", charset)
	}
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%w: XML: %v", ErrDDF, err)
	}
	if len(f.Objects) == 0 {
		return nil, fmt.Errorf("%w: no <Object> in <LWM2M>", ErrDDF)
	}
	out := make([]*ObjectModel, 0, len(f.Objects))
	seen := make(map[string]bool, len(f.Objects))
	for i := range f.Objects {
		m, err := f.Objects[i].model()
		if err != nil {
			return nil, fmt.Errorf("%w: object #%d: %v", ErrDDF, i+1, err)
		}
		key := strconv.Itoa(int(m.ID)) + "@" + m.Version
		if seen[key] {
			return nil, fmt.Errorf("%w: object %d version %s is defined twice", ErrDDF, m.ID, m.Version)
		}
		seen[key] = true
		out = append(out, m)
	}
	return out, nil
}

func (o *ddfObject) model() (*ObjectModel, error) {
	if t := strings.TrimSpace(o.ObjectType); t != "" && t != "MODefinition" {
		return nil, fmt.Errorf("ObjectType %q: want MODefinition", t)
	}
	id, err := parseID(o.ObjectID)
	if err != nil {
		return nil, fmt.Errorf("ObjectID: %v", err)
	}
	m := &ObjectModel{
		ID:           id,
		Name:         strings.TrimSpace(o.Name),
		Description:  strings.TrimSpace(o.Description1),
		URN:          strings.TrimSpace(o.ObjectURN),
		Version:      strings.TrimSpace(o.ObjectVersion),
		LwM2MVersion: strings.TrimSpace(o.LWM2MVersion),
		Resources:    make(map[uint16]*ResourceModel, len(o.Items)),
	}
	where := fmt.Sprintf("object %d (%q)", id, m.Name)
	if m.Name == "" {
		return nil, fmt.Errorf("object %d: <Name> is empty", id)
	}
	// The schema makes both versions optional with "1.0" as the default.
	if m.Version == "" {
		m.Version = "1.0"
	}
	if m.LwM2MVersion == "" {
		m.LwM2MVersion = "1.0"
	}
	if _, _, err := parseVersion(m.Version); err != nil {
		return nil, fmt.Errorf("%s: ObjectVersion: %v", where, err)
	}
	if _, _, err := parseVersion(m.LwM2MVersion); err != nil {
		return nil, fmt.Errorf("%s: LWM2MVersion: %v", where, err)
	}
	if m.Multiple, err = parseMultiple(o.MultipleInstances); err != nil {
		return nil, fmt.Errorf("%s: MultipleInstances: %v", where, err)
	}
	if m.Mandatory, err = parseMandatory(o.Mandatory); err != nil {
		return nil, fmt.Errorf("%s: Mandatory: %v", where, err)
	}
	for i := range o.Items {
		res, err := o.Items[i].model()
		if err != nil {
			return nil, fmt.Errorf("%s: item #%d: %v", where, i+1, err)
		}
		if _, dup := m.Resources[res.ID]; dup {
			return nil, fmt.Errorf("%s: item %d is defined twice", where, res.ID)
		}
		m.Resources[res.ID] = res
	}
	return m, nil
}

func (it *ddfItem) model() (*ResourceModel, error) {
	id, err := parseID(it.ID)
	if err != nil {
		return nil, fmt.Errorf("ID: %v", err)
	}
	r := &ResourceModel{
		ID:          id,
		Name:        strings.TrimSpace(it.Name),
		Range:       strings.TrimSpace(it.RangeEnumeration),
		Units:       strings.TrimSpace(it.Units),
		Description: strings.TrimSpace(it.Description),
	}
	where := fmt.Sprintf("item %d (%q)", id, r.Name)
	if r.Name == "" {
		return nil, fmt.Errorf("item %d: <Name> is empty", id)
	}
	if r.Operations, err = ParseOperations(it.Operations); err != nil {
		return nil, fmt.Errorf("%s: %v", where, err)
	}
	if r.Type, err = lwm2m.ParseType(it.Type); err != nil {
		return nil, fmt.Errorf("%s: type: %v", where, err)
	}
	// Executable resources carry no value (the DDF schema leaves their
	// Type empty); every other resource needs a type to be decoded.
	if r.Type == lwm2m.TypeNone && !r.Operations.Executable() {
		return nil, fmt.Errorf("%s: <Type> is empty but the resource is not executable", where)
	}
	if r.Multiple, err = parseMultiple(it.MultipleInstances); err != nil {
		return nil, fmt.Errorf("%s: MultipleInstances: %v", where, err)
	}
	if r.Mandatory, err = parseMandatory(it.Mandatory); err != nil {
		return nil, fmt.Errorf("%s: Mandatory: %v", where, err)
	}
	if err := r.parseRange(); err != nil {
		return nil, fmt.Errorf("%s: %v", where, err)
	}
	return r, nil
}

func parseID(s string) (uint16, error) {
	s = strings.TrimSpace(s)
	v, err := strconv.ParseUint(s, 10, 16)
	if err != nil || v > lwm2m.MaxID {
		return 0, fmt.Errorf("%q is not an ID 0..%d", truncate(s), lwm2m.MaxID)
	}
	return uint16(v), nil
}

func parseMultiple(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "multiple":
		return true, nil
	case "single":
		return false, nil
	}
	return false, fmt.Errorf("%q: want Multiple or Single", truncate(s))
}

func parseMandatory(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "mandatory":
		return true, nil
	case "optional":
		return false, nil
	}
	return false, fmt.Errorf("%q: want Mandatory or Optional", truncate(s))
}
