package peerwire

import (
	"slices"
	"strconv"

	"flotilla/internal/bencode"
)

// ExtHandshake is the BEP 10 extension handshake (extended message ID 0).
// Zero-valued fields are omitted when encoding. Keys other than these are
// skipped when parsing (after checking they are well-formed bencode).
type ExtHandshake struct {
	M            map[string]int // "m": extension name -> local message ID (1..255; 0 = disabled)
	V            string         // "v": client name and version
	P            int            // "p": local TCP listen port
	Reqq         int            // "reqq": number of outstanding requests the client accepts
	MetadataSize int            // "metadata_size" (BEP 9)
	YourIP       []byte         // "yourip": the receiver's IP as seen by the sender (4 or 16 bytes)
	UploadOnly   bool           // "upload_only" (BEP 21): the sender is a seed / partial seed
}

// Limits applied while parsing an extension handshake.
const (
	maxBencodeDepth = 32
	maxExtString    = 64 * 1024
)

// Encode returns the canonical bencoding of h (keys sorted, zero fields
// omitted). Entries of M with IDs outside 0..255 or empty names are dropped.
func (h ExtHandshake) Encode() []byte {
	return h.AppendTo(nil)
}

// AppendTo appends the bencoding of h to dst.
func (h ExtHandshake) AppendTo(dst []byte) []byte {
	dst = append(dst, 'd')
	if len(h.M) > 0 {
		names := make([]string, 0, len(h.M))
		for k, v := range h.M {
			if k != "" && v >= 0 && v <= 255 {
				names = append(names, k)
			}
		}
		slices.Sort(names)
		dst = appendString(dst, "m")
		dst = append(dst, 'd')
		for _, k := range names {
			dst = appendString(dst, k)
			dst = appendInt(dst, int64(h.M[k]))
		}
		dst = append(dst, 'e')
	}
	if h.MetadataSize != 0 {
		dst = appendString(dst, "metadata_size")
		dst = appendInt(dst, int64(h.MetadataSize))
	}
	if h.P != 0 {
		dst = appendString(dst, "p")
		dst = appendInt(dst, int64(h.P))
	}
	if h.Reqq != 0 {
		dst = appendString(dst, "reqq")
		dst = appendInt(dst, int64(h.Reqq))
	}
	if h.UploadOnly {
		dst = appendString(dst, "upload_only")
		dst = appendInt(dst, 1)
	}
	if h.V != "" {
		dst = appendString(dst, "v")
		dst = appendString(dst, h.V)
	}
	if len(h.YourIP) > 0 {
		dst = appendString(dst, "yourip")
		dst = appendString(dst, string(h.YourIP))
	}
	return append(dst, 'e')
}

func appendString(dst []byte, s string) []byte {
	dst = strconv.AppendInt(dst, int64(len(s)), 10)
	dst = append(dst, ':')
	return append(dst, s...)
}

func appendInt(dst []byte, v int64) []byte {
	dst = append(dst, 'i')
	dst = strconv.AppendInt(dst, v, 10)
	return append(dst, 'e')
}

// ParseExtHandshake decodes a BEP 10 handshake payload (the bytes after the
// extended ID) with the module's strict bencode reader. The payload must be
// exactly one bencoded dictionary; any bencode error (bad syntax, trailing
// bytes, non-canonical integers, nesting over 32 levels, a string over
// 64 KiB) gives ErrBadExtHandshake. Keys may come in any order (some
// clients do not sort); of a repeated key the first value counts. Known
// keys with an unexpected type or out-of-range value are ignored, as other
// clients do, and so are "m" entries whose ID is not in 0..255.
func ParseExtHandshake(b []byte) (ExtHandshake, error) {
	var h ExtHandshake
	d := bencode.NewDecoder(b, bencode.Options{
		MaxDepth:     maxBencodeDepth,
		MaxStringLen: maxExtString,
		Kind:         ErrBadExtHandshake,
		Duplicate:    bencode.KeepFirst,
	})
	// A value the visitor leaves unread (an unknown key, a known key of
	// the wrong type) is validated and skipped by the decoder.
	err := d.Dict(func(key []byte) error {
		switch string(key) {
		case "m":
			if d.Peek() == bencode.KindDict {
				return d.Dict(func(name []byte) error {
					return optInt(d, func(v int64) {
						if len(name) > 0 && v >= 0 && v <= 255 {
							if h.M == nil {
								h.M = make(map[string]int)
							}
							h.M[string(name)] = int(v)
						}
					})
				})
			}
		case "v":
			return optString(d, func(s []byte) { h.V = string(s) })
		case "yourip":
			return optString(d, func(s []byte) {
				if len(s) == 4 || len(s) == 16 {
					h.YourIP = append([]byte(nil), s...)
				}
			})
		case "p":
			return optInt(d, func(v int64) {
				if v > 0 && v <= 65535 {
					h.P = int(v)
				}
			})
		case "reqq":
			return optInt(d, func(v int64) {
				if v > 0 && v <= 1<<20 {
					h.Reqq = int(v)
				}
			})
		case "metadata_size":
			return optInt(d, func(v int64) {
				if v > 0 && v <= 1<<30 {
					h.MetadataSize = int(v)
				}
			})
		case "upload_only":
			return optInt(d, func(v int64) { h.UploadOnly = v != 0 })
		}
		return nil
	})
	if err == nil {
		err = d.Finish()
	}
	if err != nil {
		return ExtHandshake{}, err
	}
	return h, nil
}

// optString passes the next value to f if it is a string; any other value
// is left for the decoder to skip.
func optString(d *bencode.Decoder, f func([]byte)) error {
	if d.Peek() != bencode.KindString {
		return nil
	}
	s, err := d.Bytes()
	if err == nil {
		f(s)
	}
	return err
}

// optInt passes the next value to f if it is an integer; any other value
// is left for the decoder to skip.
func optInt(d *bencode.Decoder, f func(int64)) error {
	if d.Peek() != bencode.KindInt {
		return nil
	}
	v, err := d.Int()
	if err == nil {
		f(v)
	}
	return err
}
