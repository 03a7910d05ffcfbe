package lab

import (
	"errors"

	"flotilla/internal/bencode"
)

// The lab reads a torrent's info dictionary and a tracker's replies with
// the module's strict bencode reader, apart from metainfo's parsing: the
// info-hash it finds checks the one metainfo computes.

var errBencode = errors.New("lab: malformed bencode")

// bdecodeDict decodes b as one dictionary and returns its values (int64,
// string, []any and map[string]any) and the [start,end) span of each.
func bdecodeDict(b []byte) (map[string]any, map[string][2]int, error) {
	d := bencode.NewDecoder(b, bencode.Options{Kind: errBencode})
	m := map[string]any{}
	spans := map[string][2]int{}
	err := d.Dict(func(key []byte) error {
		start := d.Pos()
		v, err := d.Value()
		if err != nil {
			return err
		}
		m[string(key)] = toAny(v)
		spans[string(key)] = [2]int{start, d.Pos()}
		return nil
	})
	if err == nil {
		err = d.Finish()
	}
	if err != nil {
		return nil, nil, err
	}
	return m, spans, nil
}

// toAny turns a decoded value into plain Go values.
func toAny(v bencode.Value) any {
	switch v.Kind {
	case bencode.KindInt:
		return v.Int
	case bencode.KindString:
		return string(v.Str)
	case bencode.KindList:
		l := make([]any, len(v.List))
		for i, e := range v.List {
			l[i] = toAny(e)
		}
		return l
	}
	m := make(map[string]any, len(v.Dict))
	for k, e := range v.Dict {
		m[k] = toAny(e)
	}
	return m
}
