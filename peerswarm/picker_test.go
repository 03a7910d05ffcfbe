package peerswarm

import (
	"slices"
	"testing"
)

func testPicker(n int, pieceLen, total int64) *Picker {
	p := newPicker(pickerGeometry{NumPieces: n, PieceLength: pieceLen, TotalLength: total, BlockSize: 16 << 10}, 1)
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	p.Lease(all)
	return p
}

func hasAll(int) bool { return true }

func TestPickerRarestFirst(t *testing.T) {
	p := testPicker(4, 16<<10, 4*16<<10)
	p.avail.Bitfield([]byte{0xF0}) // peer A: all
	p.avail.Bitfield([]byte{0xD0}) // peer B: 0,1,3
	p.avail.Have(0)
	// availability: 0:3 1:2 2:1 3:2 -> rarest is 2
	got := p.Pick(0, hasAll, 1, nil)
	if len(got) != 1 || got[0].Piece != 2 {
		t.Fatalf("picked %v, want piece 2", got)
	}
	// next: tie between 1 and 3 broken at random; both must appear over seeds
	seen := map[int]bool{}
	for seed := uint64(0); seed < 50; seed++ {
		q := testPicker(4, 16<<10, 4*16<<10)
		q.rng = newPicker(pickerGeometry{NumPieces: 1, PieceLength: 1, TotalLength: 1}, seed).rng
		q.avail.Bitfield([]byte{0xF0})
		q.avail.Bitfield([]byte{0xD0})
		q.avail.Have(0)
		q.avail.Have(2)
		q.avail.Have(2)
		seen[q.Pick(0, hasAll, 1, nil)[0].Piece] = true
	}
	if !seen[1] || !seen[3] || seen[0] || seen[2] {
		t.Fatalf("tie-break picks %v, want 1 and 3 only", seen)
	}
}

func TestPickerPartialFirstAndBlocks(t *testing.T) {
	// 3 pieces of 40 KiB: blocks 16,16,8 KiB; last piece 10 KiB.
	p := testPicker(3, 40<<10, 90<<10)
	got := p.Pick(0, func(i int) bool { return i == 0 }, 2, nil)
	if len(got) != 2 || got[0] != (Block{0, 0, 16 << 10}) || got[1] != (Block{0, 16 << 10, 16 << 10}) {
		t.Fatalf("got %v", got)
	}
	// Another peer gets the remaining block of the partial piece 0 first.
	got = p.Pick(1, hasAll, 1, nil)
	if got[0] != (Block{0, 32 << 10, 8 << 10}) {
		t.Fatalf("partial piece not preferred: %v", got)
	}
	got = p.Pick(1, func(i int) bool { return i == 2 }, 5, nil)
	if len(got) != 1 || got[0] != (Block{2, 0, 10 << 10}) {
		t.Fatalf("short last piece: %v", got)
	}
}

func TestPickerReceiveVerify(t *testing.T) {
	p := testPicker(2, 32<<10, 64<<10)
	bl := p.Pick(7, hasAll, 2, nil)
	if bl[0].Piece != bl[1].Piece {
		t.Fatalf("two blocks from different pieces: %v", bl)
	}
	r := p.Received(7, bl[0], nil)
	if !r.Fresh || r.Complete {
		t.Fatalf("first block %+v", r)
	}
	if r := p.Received(7, bl[0], nil); r.Fresh {
		t.Fatal("duplicate counted fresh")
	}
	if r := p.Received(7, Block{bl[0].Piece, 5, 16 << 10}, nil); r.Fresh {
		t.Fatal("misaligned block accepted")
	}
	r = p.Received(8, bl[1], nil) // unsolicited but wanted: accepted
	if !r.Fresh || !r.Complete {
		t.Fatalf("second block %+v", r)
	}
	bad := p.Verified(bl[0].Piece, false, nil)
	slices.Sort(bad)
	if !slices.Equal(bad, []peerKey{7, 8}) {
		t.Fatalf("contributors %v", bad)
	}
	if p.State(bl[0].Piece) != pieceMissing || p.Idle() != 2 {
		t.Fatalf("failed piece state %v idle %d", p.State(bl[0].Piece), p.Idle())
	}
	bl = p.Pick(9, func(i int) bool { return i == bl[0].Piece }, 4, nil)
	for _, b := range bl {
		p.Received(9, b, nil)
	}
	p.Verified(bl[0].Piece, true, nil)
	if !p.Have(bl[0].Piece) || p.Done() != 1 {
		t.Fatal("verified piece not done")
	}
}

func TestPickerEndGameAndCancel(t *testing.T) {
	p := testPicker(1, 32<<10, 32<<10)
	a := p.Pick(1, hasAll, 10, nil)
	if len(a) != 2 {
		t.Fatalf("peer 1 got %v", a)
	}
	if !p.EndGame() {
		t.Fatal("not in end game with every block requested")
	}
	b := p.Pick(2, hasAll, 10, nil)
	if len(b) != 2 {
		t.Fatalf("end game duplicates: %v", b)
	}
	if again := p.Pick(2, hasAll, 10, nil); len(again) != 0 {
		t.Fatalf("same peer asked twice for a block: %v", again)
	}
	r := p.Received(2, b[0], nil)
	if !r.Fresh || len(r.Cancel) != 1 || r.Cancel[0] != 1 {
		t.Fatalf("receipt %+v, want cancel to peer 1", r)
	}
	if r := p.Received(1, b[0], nil); r.Fresh {
		t.Fatal("late duplicate counted")
	}
}

// A piece being verified stays in the lease: reported kept without force,
// not reported with force (the hash result settles it).
func TestPickerRevokeVerifyingPiece(t *testing.T) {
	p := testPicker(1, 32<<10, 32<<10)
	for _, b := range p.Pick(1, hasAll, 2, nil) {
		p.Received(1, b, nil)
	}
	if p.State(0) != pieceVerifying {
		t.Fatalf("state %v, want verifying", p.State(0))
	}
	if out, kept := p.Revoke([]int{0}, false); len(out) != 0 || !slices.Equal(kept, []int{0}) {
		t.Fatalf("revoke without force: out %v kept %v, want none and [0]", out, kept)
	}
	if out, kept := p.Revoke([]int{0}, true); len(out) != 0 || len(kept) != 0 {
		t.Fatalf("forced revoke: out %v kept %v, want neither", out, kept)
	}
}

// End game copies the blocks another peer will send last (the tail of its
// request queue), not those already on their way.
func TestPickerEndGameCopiesTailFirst(t *testing.T) {
	p := testPicker(2, 64<<10, 128<<10)
	a := p.Pick(1, hasAll, 8, nil)
	if len(a) != 8 || !p.EndGame() {
		t.Fatalf("peer 1 got %v, end game %v", a, p.EndGame())
	}
	b := p.Pick(2, hasAll, 3, nil)
	if want := []Block{a[7], a[6], a[5]}; !slices.Equal(b, want) {
		t.Fatalf("end game copies %v; want the last requested first %v", b, want)
	}
}

func TestPickerUnrequestAndPeerLeft(t *testing.T) {
	p := testPicker(1, 64<<10, 64<<10)
	a := p.Pick(1, hasAll, 4, nil)
	p.Unrequest(1, a[2])
	got := p.Pick(2, hasAll, 1, nil)
	if len(got) != 1 || got[0] != a[2] {
		t.Fatalf("re-request after unrequest: %v", got)
	}
	p.PeerLeft(1)
	if p.EndGame() {
		t.Fatal("end game with unrequested blocks")
	}
	got = p.Pick(3, hasAll, 3, nil)
	if len(got) != 3 || slices.Contains(got, a[2]) {
		t.Fatalf("after peer left: %v", got)
	}
}

func TestPickerLeaseRevokeAvailability(t *testing.T) {
	p := newPicker(pickerGeometry{NumPieces: 8, PieceLength: 16 << 10, TotalLength: 8 * 16 << 10}, 1)
	if got := p.Pick(0, hasAll, 4, nil); len(got) != 0 {
		t.Fatalf("picked without lease: %v", got)
	}
	p.Lease([]int{1, 2})
	got := p.Pick(0, hasAll, 1, nil)
	if got[0].Piece != 1 && got[0].Piece != 2 {
		t.Fatalf("picked outside lease: %v", got)
	}
	other := 3 - got[0].Piece
	rv, kept := p.Revoke([]int{1, 2, 5}, false)
	if !slices.Equal(rv, []int{other}) || !slices.Equal(kept, []int{got[0].Piece}) {
		t.Fatalf("revoked %v kept %v, want [%d] and [%d] (active piece kept, 5 not leased)", rv, kept, other, got[0].Piece)
	}
	rv, kept = p.Revoke([]int{got[0].Piece}, true)
	if len(rv) != 1 || len(kept) != 0 || p.ActiveCount() != 0 {
		t.Fatalf("forced revoke %v kept %v active %d", rv, kept, p.ActiveCount())
	}
	bf := []byte{0xFF}
	p.avail.Bitfield(bf)
	p.avail.HaveAll()
	if p.avail.Of(3) != 2 {
		t.Fatalf("availability %d", p.avail.Of(3))
	}
	p.avail.Gone(bf, false)
	p.avail.Gone(nil, true)
	if p.avail.Of(3) != 0 {
		t.Fatalf("availability after leave %d", p.avail.Of(3))
	}
	p.Lease([]int{3})
	p.SetDone(3)
	if p.Idle() != 0 || !p.Have(3) {
		t.Fatal("SetDone")
	}
}

func TestPickerMaxActive(t *testing.T) {
	p := testPicker(10, 16<<10, 10*16<<10)
	p.MaxActive = 2
	got := p.Pick(0, hasAll, 10, nil)
	if len(got) != 2 {
		t.Fatalf("got %d blocks with MaxActive 2", len(got))
	}
	if p.EndGame() {
		t.Fatal("end game while pieces idle")
	}
}

func BenchmarkPickerPickReceive(b *testing.B) {
	const n = 1024
	p := testPicker(n, 1<<20, n<<20)
	var buf []Block
	var cancel []peerKey
	for b.Loop() {
		buf = p.Pick(0, hasAll, 64, buf[:0])
		if len(buf) == 0 {
			p = testPicker(n, 1<<20, n<<20)
			continue
		}
		for _, bl := range buf {
			if r := p.Received(0, bl, cancel); r.Complete {
				p.Verified(bl.Piece, true, nil)
			}
		}
	}
}
