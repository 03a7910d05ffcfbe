package lab

import (
	"errors"
	"fmt"
	"strconv"
)

// A minimal bencode reader, enough to find a torrent's info dictionary and
// to read a tracker's scrape reply. (The product's own decoder lives in
// metainfo/; the lab stays independent of the code under test.)

var errBencode = errors.New("lab: malformed bencode")

// bdecode decodes one value at b[i:], returning it and the index after it.
// Values are int64, string, []any and map[string]any. For the top-level
// dictionary, spans records the [start,end) of each key's value.
func bdecode(b []byte, i int, depth int, spans map[string][2]int) (any, int, error) {
	if depth > 64 {
		return nil, 0, fmt.Errorf("%w: nested too deep", errBencode)
	}
	if i >= len(b) {
		return nil, 0, fmt.Errorf("%w: truncated", errBencode)
	}
	switch c := b[i]; {
	case c == 'i':
		end := i + 1
		for end < len(b) && b[end] != 'e' {
			end++
		}
		if end >= len(b) {
			return nil, 0, fmt.Errorf("%w: unterminated integer", errBencode)
		}
		n, err := strconv.ParseInt(string(b[i+1:end]), 10, 64)
		if err != nil {
			return nil, 0, fmt.Errorf("%w: integer: %v", errBencode, err)
		}
		return n, end + 1, nil
	case c >= '0' && c <= '9':
		colon := i
		for colon < len(b) && b[colon] != ':' {
			colon++
		}
		if colon >= len(b) {
			return nil, 0, fmt.Errorf("%w: string length", errBencode)
		}
		n, err := strconv.Atoi(string(b[i:colon]))
		if err != nil || n < 0 || n > len(b)-colon-1 {
			return nil, 0, fmt.Errorf("%w: string length %q", errBencode, b[i:colon])
		}
		return string(b[colon+1 : colon+1+n]), colon + 1 + n, nil
	case c == 'l':
		var l []any
		i++
		for i < len(b) && b[i] != 'e' {
			v, next, err := bdecode(b, i, depth+1, nil)
			if err != nil {
				return nil, 0, err
			}
			l = append(l, v)
			i = next
		}
		if i >= len(b) {
			return nil, 0, fmt.Errorf("%w: unterminated list", errBencode)
		}
		return l, i + 1, nil
	case c == 'd':
		m := map[string]any{}
		i++
		for i < len(b) && b[i] != 'e' {
			k, next, err := bdecode(b, i, depth+1, nil)
			if err != nil {
				return nil, 0, err
			}
			key, ok := k.(string)
			if !ok {
				return nil, 0, fmt.Errorf("%w: dictionary key is not a string", errBencode)
			}
			v, end, err := bdecode(b, next, depth+1, nil)
			if err != nil {
				return nil, 0, err
			}
			if spans != nil {
				spans[key] = [2]int{next, end}
			}
			m[key] = v
			i = end
		}
		if i >= len(b) {
			return nil, 0, fmt.Errorf("%w: unterminated dictionary", errBencode)
		}
		return m, i + 1, nil
	default:
		return nil, 0, fmt.Errorf("%w: unexpected byte %q at %d", errBencode, c, i)
	}
}

// bdecodeDict decodes b as one dictionary and the spans of its values.
func bdecodeDict(b []byte) (map[string]any, map[string][2]int, error) {
	spans := map[string][2]int{}
	v, end, err := bdecode(b, 0, 0, spans)
	if err != nil {
		return nil, nil, err
	}
	m, ok := v.(map[string]any)
	if !ok || end != len(b) {
		return nil, nil, fmt.Errorf("%w: not a single dictionary", errBencode)
	}
	return m, spans, nil
}
