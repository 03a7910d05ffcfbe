package peerwire

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

func testHandshake(reserved [8]byte) Handshake {
	h := Handshake{Reserved: reserved}
	for i := range h.InfoHash {
		h.InfoHash[i] = byte(i + 1)
		h.PeerID[i] = byte(0xA0 + i)
	}
	return h
}

func TestHandshakeRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name      string
		reserved  [8]byte
		ext, fast bool
	}{
		{"none", [8]byte{}, false, false},
		{"default", DefaultReserved(), true, true},
		{"ext only", [8]byte{5: 0x10}, true, false},
		{"fast only", [8]byte{7: 0x04}, false, true},
		{"dht and others", [8]byte{0: 0xff, 7: 0x01}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := testHandshake(tc.reserved)
			var buf bytes.Buffer
			if err := WriteHandshake(&buf, h); err != nil {
				t.Fatal(err)
			}
			if buf.Len() != HandshakeLen || buf.Bytes()[0] != 19 || string(buf.Bytes()[1:20]) != Pstr {
				t.Fatalf("bad encoding %q", buf.Bytes())
			}
			got, err := ReadHandshake(iotest.OneByteReader(bytes.NewReader(buf.Bytes())))
			if err != nil {
				t.Fatal(err)
			}
			if got != h {
				t.Fatalf("got %+v, want %+v", got, h)
			}
			if got.SupportsExtensions() != tc.ext || got.SupportsFast() != tc.fast {
				t.Fatalf("ext=%v fast=%v, want %v %v", got.SupportsExtensions(), got.SupportsFast(), tc.ext, tc.fast)
			}
			p, err := ParseHandshake(buf.Bytes())
			if err != nil || p != h {
				t.Fatalf("ParseHandshake = %+v, %v", p, err)
			}
		})
	}
}

func TestDefaultReservedOnlyExtAndFast(t *testing.T) {
	r := DefaultReserved()
	want := [8]byte{5: 0x10, 7: 0x04}
	if r != want {
		t.Fatalf("DefaultReserved = %x, want %x (no DHT bit)", r, want)
	}
}

func TestReadHandshakeDoesNotOverRead(t *testing.T) {
	var buf bytes.Buffer
	WriteHandshake(&buf, testHandshake(DefaultReserved()))
	buf.WriteString("\x00\x00\x00\x01\x02") // interested, must stay unread
	if _, err := ReadHandshake(&buf); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != 5 {
		t.Fatalf("ReadHandshake consumed %d extra bytes", 5-buf.Len())
	}
}

func TestReadHandshakeMalformed(t *testing.T) {
	var good bytes.Buffer
	WriteHandshake(&good, testHandshake(DefaultReserved()))
	g := good.Bytes()
	mut := func(f func(b []byte)) []byte {
		b := bytes.Clone(g)
		f(b)
		return b
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, io.EOF},
		{"pstrlen 18", mut(func(b []byte) { b[0] = 18 }), ErrBadHandshake},
		{"pstrlen 0", mut(func(b []byte) { b[0] = 0 }), ErrBadHandshake},
		{"wrong pstr", mut(func(b []byte) { b[1] = 'b' }), ErrBadHandshake},
		{"http", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), ErrBadHandshake},
		{"short pstr", g[:10], io.ErrUnexpectedEOF},
		{"short after pstr", g[:20], io.ErrUnexpectedEOF},
		{"short peer id", g[:67], io.ErrUnexpectedEOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadHandshake(bytes.NewReader(tc.in))
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if tc.want == ErrBadHandshake && !errors.Is(err, ErrProtocol) {
				t.Fatalf("%v does not match ErrProtocol", err)
			}
			if _, err := ParseHandshake(tc.in); !errors.Is(err, ErrBadHandshake) {
				t.Fatalf("ParseHandshake err = %v", err)
			}
		})
	}
}
