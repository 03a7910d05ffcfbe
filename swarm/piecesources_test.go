package swarm

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"flotilla/swarm/swarmtest"
)

// TestPieceSourcesTable: pieces on disk at the start are "disk"'s, a
// worker keeps its index when it delivers again, and workers beyond the
// table's bound share "other".
func TestPieceSourcesTable(t *testing.T) {
	p := newPieceSources(300, func(i int) bool { return i == 0 })
	p.set(1, "local")
	p.set(2, "node1")
	p.set(3, "local")
	for i := 4; i < 300; i++ {
		p.set(i, fmt.Sprintf("node-%d", i))
	}
	s := p.snapshot()
	if s.Names[0] != SourceDisk || s.Pieces[0] != 0 || s.Names[s.Pieces[1]] != "local" || s.Pieces[3] != s.Pieces[1] ||
		s.Names[s.Pieces[2]] != "node1" {
		t.Fatalf("names %v, pieces %v", s.Names[:4], s.Pieces[:4])
	}
	if len(s.Names) != maxSourceNames || s.Names[s.Pieces[299]] != sourceOther || s.Pieces[298] != s.Pieces[299] {
		t.Errorf("%d names, the last %q; piece 299 from %q", len(s.Names), s.Names[len(s.Names)-1], s.Names[s.Pieces[299]])
	}
	if slices.Contains(s.Pieces, SourceNone) {
		t.Error("a delivered piece has no source")
	}
}

// TestPieceSourcesOfADownload: the sub-chief records the worker that
// delivered each piece it accepted.
func TestPieceSourcesOfADownload(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 64*16<<10, 16<<10)
	cfg, _ := subChiefConfig(t, tt)
	cfg.Seed = true
	d := newTestDownload(t, cfg)
	other := newFakeWorker("node1", tt)
	d.AddWorker(other.start())
	waitComplete(t, d, 10*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ps, err := d.PieceSources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps.Pieces) != 64 || ps.Names[0] != SourceDisk {
		t.Fatalf("sources %+v", ps)
	}
	count := map[string]int{}
	for _, k := range ps.Pieces {
		if k == SourceNone {
			t.Fatal("a stored piece has no source")
		}
		count[ps.Names[k]]++
	}
	if count["local"]+count["node1"] != 64 || count["node1"] == 0 {
		t.Errorf("pieces by source %v, want local's and node1's", count)
	}
}
