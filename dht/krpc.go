package dht

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"

	"flotilla/internal/bencode"
)

// ErrMalformed is wrapped by every error about a KRPC message that cannot
// be used: malformed bencode, a missing or ill-typed field.
var ErrMalformed = errors.New("dht: malformed KRPC message")

// KRPC error codes (BEP 5).
const (
	errGeneric  = 201
	errServer   = 202
	errProtocol = 203
	errMethod   = 204
)

// maxDatagram is the largest datagram read; larger ones are dropped.
const maxDatagram = 2048

// msg is one decoded KRPC message. Byte slices alias the datagram.
type msg struct {
	T []byte // transaction id
	Y byte   // 'q', 'r' or 'e'
	Q string // method of a query

	// a (query arguments) and r (response values) share these fields.
	ID          ID
	Target      ID // find_node
	InfoHash    ID // get_peers, announce_peer
	Port        int
	ImpliedPort bool
	Token       []byte
	Want4       bool // BEP 32 "want": n4; both false means the sender's family
	Want6       bool
	Nodes       []nodeInfo       // r: "nodes" and "nodes6"
	Values      []netip.AddrPort // r: "values"

	ErrCode int // e
	ErrMsg  string
}

// nodeInfo is a contact: a node id and its UDP address.
type nodeInfo struct {
	ID   ID
	Addr netip.AddrPort
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// decodeMsg decodes one KRPC datagram with the project's strict bencode
// reader. It never panics; anything unusable is an error wrapping
// ErrMalformed. Unknown keys are ignored (BEP 5 lets messages grow).
func decodeMsg(data []byte) (msg, error) {
	var m msg
	if len(data) > maxDatagram {
		return m, malformed("datagram of %d bytes", len(data))
	}
	v, err := bencode.Decode(data, bencode.Options{MaxDepth: 4, Kind: ErrMalformed, Duplicate: bencode.KeepFirst})
	if err != nil {
		return m, err
	}
	if v.Kind != bencode.KindDict {
		return m, malformed("not a dictionary")
	}
	t, ok := str(v.Dict, "t")
	if !ok {
		return m, malformed("no transaction id")
	}
	m.T = t
	y, ok := str(v.Dict, "y")
	if !ok || len(y) != 1 {
		return m, malformed("no message type")
	}
	m.Y = y[0]
	switch m.Y {
	case 'q':
		q, ok := str(v.Dict, "q")
		if !ok {
			return m, malformed("query without a method")
		}
		m.Q = string(q)
		a, ok := v.Dict["a"]
		if !ok || a.Kind != bencode.KindDict {
			return m, malformed("query without arguments")
		}
		return m, m.body(a.Dict, true)
	case 'r':
		r, ok := v.Dict["r"]
		if !ok || r.Kind != bencode.KindDict {
			return m, malformed("response without values")
		}
		return m, m.body(r.Dict, false)
	case 'e':
		e, ok := v.Dict["e"]
		if !ok || e.Kind != bencode.KindList || len(e.List) < 2 ||
			e.List[0].Kind != bencode.KindInt || e.List[1].Kind != bencode.KindString {
			return m, malformed("error without [code, message]")
		}
		m.ErrCode, m.ErrMsg = int(min(max(e.List[0].Int, 0), 1<<20)), string(e.List[1].Str)
		return m, nil
	}
	return m, malformed("message type %q", m.Y)
}

func str(d map[string]bencode.Value, k string) ([]byte, bool) {
	v, ok := d[k]
	if !ok || v.Kind != bencode.KindString {
		return nil, false
	}
	return v.Str, true
}

// id20 reads a 20-byte id under key k; present reports whether k is there.
func id20(d map[string]bencode.Value, k string) (id ID, present bool, err error) {
	v, ok := d[k]
	if !ok {
		return id, false, nil
	}
	if v.Kind != bencode.KindString || len(v.Str) != 20 {
		return id, true, malformed("%q is not a 20-byte string", k)
	}
	copy(id[:], v.Str)
	return id, true, nil
}

// body reads the arguments of a query or the values of a response.
func (m *msg) body(d map[string]bencode.Value, query bool) error {
	var ok bool
	var err error
	if m.ID, ok, err = id20(d, "id"); err != nil || !ok {
		return malformed("no 20-byte sender id")
	}
	if m.Target, _, err = id20(d, "target"); err != nil {
		return err
	}
	if m.InfoHash, _, err = id20(d, "info_hash"); err != nil {
		return err
	}
	if p, ok := d["port"]; ok {
		if p.Kind != bencode.KindInt || p.Int < 0 || p.Int > 65535 {
			return malformed("port out of range")
		}
		m.Port = int(p.Int)
	}
	if ip, ok := d["implied_port"]; ok && ip.Kind == bencode.KindInt && ip.Int != 0 {
		m.ImpliedPort = true
	}
	m.Token, _ = str(d, "token")
	if w, ok := d["want"]; ok && w.Kind == bencode.KindList {
		for _, e := range w.List {
			m.Want4 = m.Want4 || string(e.Str) == "n4"
			m.Want6 = m.Want6 || string(e.Str) == "n6"
		}
	}
	if query {
		return nil
	}
	if err := m.compactNodes(d, "nodes", 4); err != nil {
		return err
	}
	if err := m.compactNodes(d, "nodes6", 16); err != nil {
		return err
	}
	if vs, ok := d["values"]; ok {
		if vs.Kind != bencode.KindList {
			return malformed("values is not a list")
		}
		for _, e := range vs.List {
			if a, ok := compactAddr(e.Str); ok && e.Kind == bencode.KindString {
				m.Values = append(m.Values, a)
			} // a malformed entry is skipped, as other clients do
		}
	}
	return nil
}

// compactNodes appends the compact node infos under key k (26 bytes each
// for IPv4, 38 for IPv6).
func (m *msg) compactNodes(d map[string]bencode.Value, k string, ipLen int) error {
	s, ok := str(d, k)
	if !ok {
		return nil
	}
	size := 20 + ipLen + 2
	if len(s)%size != 0 {
		return malformed("%q of %d bytes", k, len(s))
	}
	for ; len(s) > 0; s = s[size:] {
		var n nodeInfo
		copy(n.ID[:], s)
		a, _ := compactAddr(s[20:size])
		if a.Port() == 0 || !a.Addr().IsValid() {
			continue
		}
		n.Addr = a
		m.Nodes = append(m.Nodes, n)
	}
	return nil
}

// compactAddr reads a 6-byte (IPv4) or 18-byte (IPv6) address and port.
func compactAddr(b []byte) (netip.AddrPort, bool) {
	switch len(b) {
	case 6:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[:4])), binary.BigEndian.Uint16(b[4:])), true
	case 18:
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[:16])), binary.BigEndian.Uint16(b[16:])), true
	}
	return netip.AddrPort{}, false
}

func appendCompactAddr(dst []byte, a netip.AddrPort) []byte {
	ip := a.Addr().Unmap()
	dst = append(dst, ip.AsSlice()...)
	return binary.BigEndian.AppendUint16(dst, a.Port())
}

// Encoding is done by hand, as metainfo/encode.go does: KRPC messages are
// a handful of fixed shapes, and appending them with their keys already in
// sorted order needs no reflection and no intermediate maps.

func appendStr(dst []byte, s []byte) []byte {
	dst = strconv.AppendInt(dst, int64(len(s)), 10)
	dst = append(dst, ':')
	return append(dst, s...)
}

func appendKey(dst []byte, k string) []byte {
	dst = strconv.AppendInt(dst, int64(len(k)), 10)
	dst = append(dst, ':')
	return append(dst, k...)
}

func appendInt(dst []byte, n int64) []byte {
	dst = append(dst, 'i')
	dst = strconv.AppendInt(dst, n, 10)
	return append(dst, 'e')
}

// version is the "v" key of our messages: client "FL", version 0.1.
var version = []byte("FL\x00\x01")

// appendQuery encodes a query; args must be the bencoded dictionary of
// its arguments.
func appendQuery(dst []byte, t []byte, method string, args []byte) []byte {
	dst = append(dst, 'd')
	dst = append(appendKey(dst, "a"), args...)
	dst = appendStr(appendKey(dst, "q"), []byte(method))
	dst = appendStr(appendKey(dst, "t"), t)
	dst = appendStr(appendKey(dst, "v"), version)
	dst = appendStr(appendKey(dst, "y"), []byte("q"))
	return append(dst, 'e')
}

// appendResponse encodes a response; r is its bencoded values dictionary.
func appendResponse(dst []byte, t []byte, r []byte) []byte {
	dst = append(dst, 'd')
	dst = append(appendKey(dst, "r"), r...)
	dst = appendStr(appendKey(dst, "t"), t)
	dst = appendStr(appendKey(dst, "v"), version)
	dst = appendStr(appendKey(dst, "y"), []byte("r"))
	return append(dst, 'e')
}

func appendError(dst []byte, t []byte, code int, text string) []byte {
	dst = append(dst, 'd')
	dst = append(appendKey(dst, "e"), 'l')
	dst = appendInt(dst, int64(code))
	dst = append(appendStr(dst, []byte(text)), 'e')
	dst = appendStr(appendKey(dst, "t"), t)
	dst = appendStr(appendKey(dst, "v"), version)
	dst = appendStr(appendKey(dst, "y"), []byte("e"))
	return append(dst, 'e')
}

// dict builds a bencoded dictionary whose keys the caller adds in sorted
// order.
type dict struct{ b []byte }

func newDict() *dict                       { return &dict{b: []byte{'d'}} }
func (d *dict) str(k string, v []byte)     { d.b = appendStr(appendKey(d.b, k), v) }
func (d *dict) int(k string, v int64)      { d.b = appendInt(appendKey(d.b, k), v) }
func (d *dict) id(k string, v ID)          { d.str(k, v[:]) }
func (d *dict) raw(k string, v []byte)     { d.b = append(appendKey(d.b, k), v...) }
func (d *dict) done() []byte               { return append(d.b, 'e') }
func (d *dict) strs(k string, vs []string) { d.raw(k, appendStrList(nil, vs)) }

func appendStrList(dst []byte, vs []string) []byte {
	dst = append(dst, 'l')
	for _, v := range vs {
		dst = appendStr(dst, []byte(v))
	}
	return append(dst, 'e')
}

// compactNodes encodes contacts of one family (ipLen 4 or 16).
func compactNodes(ns []nodeInfo, ipLen int) []byte {
	var b []byte
	for _, n := range ns {
		ip := n.Addr.Addr().Unmap()
		if (ipLen == 4) != ip.Is4() {
			continue
		}
		b = append(b, n.ID[:]...)
		b = appendCompactAddr(b, netip.AddrPortFrom(ip, n.Addr.Port()))
	}
	return b
}

func valuesList(peers []netip.AddrPort) []byte {
	b := []byte{'l'}
	for _, p := range peers {
		b = appendStr(b, appendCompactAddr(nil, p))
	}
	return append(b, 'e')
}
