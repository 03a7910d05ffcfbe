package delegate

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"reflect"
	"testing"
	"time"
)

// sampleMessages has one filled body per message type.
func sampleMessages() map[MsgType]any {
	return map[MsgType]any{
		MsgHello:       &helloMsg{Version: 1, MinVersion: 1, Role: RoleNode, Name: "node1", Caps: []string{"x"}, Binding: []byte{1, 2, 3}},
		MsgJob:         &jobMsg{Job: 7, InfoHash: bytes.Repeat([]byte{9}, 20), Info: []byte("d4:name1:xe"), Trackers: [][]string{{"http://a/announce", "udp://b:1"}, {"http://c"}}, CoordinatorPeer: "127.0.0.1:6881"},
		MsgJobAccepted: &jobAcceptedMsg{Job: 7, PeerID: []byte("-FL0001-abcdefghijkl"), PeerAddr: "127.0.0.2:6881"},
		MsgJobRejected: &jobRejectedMsg{Job: 7, Reason: "busy", Code: "jobs"},
		MsgAssign:      &piecesMsg{Job: 7, Pieces: []uint32{0, 1, 200, 70000, 1 << 31}},
		MsgRevoke:      &revokeMsg{Job: 7, Pieces: []uint32{3}, Force: true},
		MsgHave:        &piecesMsg{Job: 7, Pieces: []uint32{5}},
		MsgAddPeers:    &addPeersMsg{Job: 7, Addrs: []string{"10.0.0.1:1", "[::1]:2"}},
		MsgPeers:       &addPeersMsg{Job: 7, Addrs: []string{"10.0.0.3:6881", "[2001:db8::1]:51413"}},
		MsgCancel:      &cancelMsg{Job: 7},
		MsgStop:        &stopMsg{Reason: "done"},
		MsgStatus:      &statusMsg{Job: 7, Peers: 3, Seeds: 1, DownRate: 1.5e6, UpRate: 2, Downloaded: 1 << 40, Uploaded: 5, Wasted: 6, Leased: 7, Active: 8, Delivered: 9, HashFails: 10, Banned: 11, Outstanding: 12, TimedOut: 13, Snubbed: 14},
		MsgRevoked:     &piecesMsg{Job: 7, Pieces: []uint32{}},
		MsgFailed:      &failedMsg{Job: 7, Err: "disk on fire"},
		MsgPiece:       &pieceHeader{Job: 7, Index: 42, Length: 1 << 20},
		MsgLeaving:     &leavingMsg{Job: 7},
		MsgLeft:        &leftMsg{Job: 7, Pieces: 12},
	}
}

func TestFrameRoundTrip(t *testing.T) {
	for typ, v := range sampleMessages() {
		f, err := encodeFrame(typ, v)
		if err != nil {
			t.Fatal(err)
		}
		gt, body, err := readFrame(bytes.NewReader(f), anyCap)
		if err != nil || gt != typ {
			t.Fatalf("%v: read %v, %v", typ, gt, err)
		}
		got, err := decodeMessage(gt, body)
		if err != nil {
			t.Fatalf("%v: %v", typ, err)
		}
		if !reflect.DeepEqual(got, v) {
			t.Errorf("%v: got %+v, want %+v", typ, got, v)
		}
		if typ.String() == "" || MsgType(200).String() != "MsgType(200)" {
			t.Fatal("String")
		}
	}
}

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// anyCap is the cap of a frame of type t wherever it may appear.
func anyCap(t MsgType) int {
	switch t {
	case MsgHello:
		return maxHelloFrame
	case MsgPiece:
		return maxPieceHeaderFrame
	}
	return max(controlCap(t, fromCoordinator), controlCap(t, fromNode))
}

// Each type has its own cap, checked from the header: a reader takes only
// the length and type of an oversized frame. Lists and other control
// messages are capped at 256 KiB (it was 1 MiB, four times what the
// largest legitimate list needs).
func TestOversizedFrame(t *testing.T) {
	f := make([]byte, 4+MaxJobFrame+1)
	binary.BigEndian.PutUint32(f, MaxControlFrame+1)
	for _, c := range []struct {
		typ  MsgType
		from sender
	}{{MsgAssign, fromCoordinator}, {MsgAddPeers, fromCoordinator}, {MsgStop, fromCoordinator},
		{MsgStatus, fromNode}, {MsgRevoked, fromNode}, {MsgFailed, fromNode}} {
		f[4] = byte(c.typ)
		cr := &countingReader{r: bytes.NewReader(f)}
		_, _, err := readControlFrame(cr, c.from)
		if !errors.Is(err, ErrFrameTooLarge) || !errors.Is(err, ErrProtocol) {
			t.Fatalf("%v: %v, want ErrFrameTooLarge", c.typ, err)
		}
		if cr.n > 5 {
			t.Fatalf("%v: read %d bytes of an oversized frame, want only its length and type", c.typ, cr.n)
		}
	}
	// 300 KiB of addresses: under the old 1 MiB cap, over the new one.
	binary.BigEndian.PutUint32(f, 300<<10)
	f[4] = byte(MsgAddPeers)
	if _, _, err := readControlFrame(bytes.NewReader(f), fromCoordinator); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("300 KiB AddPeers: %v", err)
	}
	// Only a Job may exceed MaxControlFrame.
	binary.BigEndian.PutUint32(f, MaxControlFrame+1)
	f[4] = byte(MsgJob)
	if typ, body, err := readControlFrame(bytes.NewReader(f), fromCoordinator); err != nil || typ != MsgJob || len(body) != MaxControlFrame {
		t.Fatalf("big Job: %v %v %d", typ, err, len(body))
	}
	binary.BigEndian.PutUint32(f, MaxJobFrame+1)
	cr := &countingReader{r: bytes.NewReader(f)}
	if _, _, err := readControlFrame(cr, fromCoordinator); !errors.Is(err, ErrFrameTooLarge) || cr.n != 4 {
		t.Fatalf("huge Job: %v after %d bytes", err, cr.n)
	}
	binary.BigEndian.PutUint32(f, 0xffffffff)
	if _, _, err := readFrame(bytes.NewReader(f[:4]), anyCap); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("4 GiB frame: %v", err)
	}
	if _, _, err := readFrame(bytes.NewReader([]byte{0, 0, 0, 0}), anyCap); !errors.Is(err, ErrProtocol) {
		t.Fatalf("empty frame: %v", err)
	}
	if _, _, err := readFrame(bytes.NewReader([]byte{0, 0, 0, 9, 1}), anyCap); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated frame: %v", err)
	}
	if _, _, err := readFrame(bytes.NewReader(nil), anyCap); err != io.EOF {
		t.Fatalf("no frame: %v", err)
	}
	// Hello and Piece headers have their own small caps.
	binary.BigEndian.PutUint32(f, maxHelloFrame+1)
	f[4] = byte(MsgHello)
	if _, _, err := readHelloFrame(bytes.NewReader(f)); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("big hello: %v", err)
	}
	binary.BigEndian.PutUint32(f, maxPieceHeaderFrame+1)
	f[4] = byte(MsgPiece)
	if _, _, err := readPieceHeader(bytes.NewReader(f)); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("big piece header: %v", err)
	}
	// The encoder refuses to build one.
	big := &addPeersMsg{Addrs: make([]string, MaxControlFrame)}
	if _, err := encodeFrame(MsgAddPeers, big); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("encode oversized: %v", err)
	}
	// The largest lists a sender builds fit.
	idx := make([]uint32, maxListChunk)
	for i := range idx {
		idx[i] = math.MaxUint32 - uint32(i)
	}
	if _, err := encodeFrame(MsgRevoke, &revokeMsg{Job: math.MaxUint64, Pieces: idx, Force: true}); err != nil {
		t.Fatalf("largest index list: %v", err)
	}
	addrs := make([]string, maxPeersChunk)
	for i := range addrs {
		addrs[i] = "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"
	}
	if _, err := encodeFrame(MsgAddPeers, &addPeersMsg{Job: math.MaxUint64, Addrs: addrs}); err != nil {
		t.Fatalf("largest address list: %v", err)
	}
}

// A Job may be large (its info dictionary) but not declare many elements.
func TestJobElementBudget(t *testing.T) {
	tiers := make([][]string, maxJobElements)
	if _, err := encodeFrame(MsgJob, &jobMsg{Job: 1, Trackers: tiers}); err == nil {
		t.Fatal("encoder built a Job with too many trackers")
	}
	body := bombJob(1 << 20)[5:]
	if _, err := decodeMessage(MsgJob, body); !errors.Is(err, ErrProtocol) {
		t.Fatalf("Job declaring %d tiers: %v", len(body), err)
	}
	ok := &jobMsg{Job: 1, Trackers: [][]string{{"http://a/announce", "udp://b:1"}, {"http://c"}}, Info: make([]byte, 20<<20)}
	f, err := encodeFrame(MsgJob, ok)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decodeMessage(MsgJob, f[5:]); err != nil {
		t.Fatal(err)
	}
}

// A declared array length far beyond the body must not be allocated.
func TestHostileLengths(t *testing.T) {
	bodies := map[string][]byte{
		"array32":   {0x81, 0xa6, 'p', 'i', 'e', 'c', 'e', 's', 0xdd, 0xff, 0xff, 0xff, 0xff},
		"array16":   {0x81, 0xa6, 'p', 'i', 'e', 'c', 'e', 's', 0xdc, 0xff, 0xff, 0x01},
		"map32":     {0xdf, 0x7f, 0xff, 0xff, 0xff},
		"str32":     {0x81, 0xa3, 'j', 'o', 'b', 0xdb, 0x7f, 0xff, 0xff, 0xff},
		"deep":      bytes.Repeat([]byte{0x91}, 100),
		"reserved":  {0xc1},
		"trailing":  {0x80, 0x00},
		"truncated": {0xcf, 1, 2},
	}
	for name, b := range bodies {
		start := time.Now()
		_, err := decodeMessage(MsgAssign, b)
		if !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: %v, want ErrProtocol", name, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s: took %v", name, d)
		}
	}
	// Exactly as many elements as bytes is still fine.
	ok := []byte{0x81, 0xa6, 'p', 'i', 'e', 'c', 'e', 's', 0x93, 1, 2, 3}
	m, err := decodeMessage(MsgAssign, ok)
	if err != nil || !reflect.DeepEqual(m.(*piecesMsg).Pieces, []uint32{1, 2, 3}) {
		t.Fatalf("%v %v", m, err)
	}
	if _, err := decodeMessage(MsgType(99), []byte{0x80}); !errors.Is(err, ErrProtocol) {
		t.Fatalf("unknown type: %v", err)
	}
}

func FuzzReadFrame(f *testing.F) {
	for typ, v := range sampleMessages() {
		fr, err := encodeFrame(typ, v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(fr)
	}
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1})
	f.Add([]byte{0, 0, 0, 6, 5, 0x81, 0xa1, 'p', 0xdd, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		// Every real reader refuses from the five header bytes.
		readers := map[string]func(io.Reader) (MsgType, []byte, error){
			"control from coordinator": func(r io.Reader) (MsgType, []byte, error) { return readControlFrame(r, fromCoordinator) },
			"control from node":        func(r io.Reader) (MsgType, []byte, error) { return readControlFrame(r, fromNode) },
			"hello":                    readHelloFrame,
			"piece header":             readPieceHeader,
		}
		for name, read := range readers {
			cr := &countingReader{r: bytes.NewReader(data)}
			if _, _, err := read(cr); errors.Is(err, ErrProtocol) && cr.n > 5 {
				t.Fatalf("%s: refused after reading %d bytes: %v", name, cr.n, err)
			}
		}
		typ, body, err := readFrame(bytes.NewReader(data), anyCap)
		if err != nil {
			return
		}
		if n := 5 + len(body); !bytes.Equal(rawFrame(typ, body), data[:n]) {
			t.Fatalf("frame does not round-trip")
		}
		v, err := decodeMessage(typ, body)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("decode error not ErrProtocol: %v", err)
			}
			return
		}
		again, err := encodeFrame(typ, v)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		typ2, body2, err := readFrame(bytes.NewReader(again), anyCap)
		if err != nil || typ2 != typ {
			t.Fatalf("re-read: %v", err)
		}
		v2, err := decodeMessage(typ2, body2)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		// Compare encodings, not values: a NaN rate is not equal to itself.
		if again2, err := encodeFrame(typ2, v2); err != nil || !bytes.Equal(again, again2) {
			t.Fatalf("decoded value does not round-trip: %+v vs %+v (%v)", v, v2, err)
		}
	})
}
