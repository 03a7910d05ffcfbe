package lab_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"testing"

	"flotilla/internal/lab"
	"flotilla/metainfo"
	"flotilla/piecestore"
)

// TestReadCompletionRecord checks the lab's independent reader against
// records written by piecestore itself.
func TestReadCompletionRecord(t *testing.T) {
	data := make([]byte, 3000)
	rand.NewChaCha8([32]byte{1}).Read(data)
	raw, err := metainfo.Build("rec", []metainfo.File{{Path: []string{"a"}, Length: 1000}, {Path: []string{"b"}, Length: 2000}},
		64, nil, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tor, err := metainfo.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := piecestore.DefaultConfig()
	cfg.Dir, cfg.Info, cfg.InfoHash = dir, tor.Info, tor.InfoHash
	s, err := piecestore.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n := s.NumPieces()
	for p := 0; p < n; p += 3 {
		b := s.GetBuffer(p)
		off := tor.Info.PieceOffset(p)
		copy(b, data[off:off+tor.Info.PieceLen(p)])
		if err := s.Submit(context.Background(), p, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	want := s.Have()

	path := lab.CompletionRecordPath(dir, tor.InfoHash)
	r, err := lab.ReadCompletionRecord(path)
	if err != nil {
		t.Fatal(err)
	}
	if r.InfoHash != tor.InfoHash || r.NumPieces != n || r.PieceLength != 64 || r.Total != 3000 {
		t.Errorf("record header %+v", r)
	}
	if !bytes.Equal(r.Have, want) || r.Count() != (n+2)/3 {
		t.Errorf("record has %x (%d pieces), the store %x", r.Have, r.Count(), want)
	}
	for p := range n {
		if r.Has(p) != (p%3 == 0) {
			t.Errorf("Has(%d) = %v", p, r.Has(p))
		}
	}

	// Damaging the newest slot falls back to the older one (or to none),
	// damaging the older one changes nothing.
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	slot := len(b) / 2
	changed := 0
	for i := range 2 {
		c := append([]byte(nil), b...)
		c[i*slot+30] ^= 1
		if err := os.WriteFile(path, c, 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := lab.ReadCompletionRecord(path)
		switch {
		case err != nil || got.Seq < r.Seq:
			changed++
		case got.Seq != r.Seq:
			t.Errorf("slot %d damaged: read seq %d, newest was %d", i, got.Seq, r.Seq)
		}
	}
	if changed != 1 {
		t.Errorf("damaging one slot at a time changed the record read %d times, want once (the newest)", changed)
	}
	b[30] ^= 1
	b[slot+30] ^= 1
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := lab.ReadCompletionRecord(path); err == nil {
		t.Error("both slots damaged: no error")
	}
}
