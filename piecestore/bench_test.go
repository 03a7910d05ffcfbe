package piecestore

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"flotilla/metainfo"
)

// patternReader yields n bytes: piece-sized copies of base, each stamped
// with its piece index, so a large torrent needs no large buffer.
type patternReader struct {
	base []byte
	off  int64
	n    int64
}

func fillPiece(dst, base []byte, p int) {
	copy(dst, base)
	binary.LittleEndian.PutUint64(dst, uint64(p)+1)
}

func (r *patternReader) Read(b []byte) (int, error) {
	pl := int64(len(r.base))
	p, in := r.off/pl, r.off%pl
	if in == 0 && int64(len(b)) >= pl && r.n-r.off >= pl {
		fillPiece(b, r.base, int(p))
		r.off += pl
		return int(pl), nil
	}
	tmp := make([]byte, pl)
	fillPiece(tmp, r.base, int(p))
	n := copy(b, tmp[in:min(pl, r.n-r.off)])
	r.off += int64(n)
	return n, nil
}

// BenchmarkStoreWrite writes a 256 MiB torrent of 1 MiB pieces submitted in
// random order, with the default Config, through Close (everything synced
// and recorded). MB/s is the sustained rate to disk. PIECESTORE_BENCH_MIB
// changes the size (e.g. 1024).
func BenchmarkStoreWrite(b *testing.B) {
	const pieceLen = 1 << 20
	total := int64(256 << 20)
	if v, err := strconv.Atoi(os.Getenv("PIECESTORE_BENCH_MIB")); err == nil && v > 0 {
		total = int64(v) << 20
	}
	base := make([]byte, pieceLen)
	rand.NewChaCha8([32]byte{1}).Read(base)
	raw, err := metainfo.Build("bench", []metainfo.File{{Length: total}}, pieceLen, nil,
		&patternReader{base: base, n: total})
	if err != nil {
		b.Fatal(err)
	}
	tor, err := metainfo.Parse(raw)
	if err != nil {
		b.Fatal(err)
	}
	root := b.TempDir()
	b.SetBytes(total)
	b.ResetTimer()
	var st Stats
	for i := range b.N {
		b.StopTimer()
		dir := filepath.Join(root, "run", string(rune('a'+i%26)))
		os.RemoveAll(filepath.Dir(dir))
		order := rand.Perm(tor.Info.NumPieces())
		b.StartTimer()
		cfg := DefaultConfig()
		cfg.Dir, cfg.Info, cfg.InfoHash = dir, tor.Info, tor.InfoHash
		s, err := Open(cfg)
		if err != nil {
			b.Fatal(err)
		}
		for _, p := range order {
			buf := s.GetBuffer(p)
			fillPiece(buf, base, p)
			if err := s.Submit(context.Background(), p, buf); err != nil {
				b.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		if !s.Complete() {
			b.Fatal("not complete")
		}
		st = s.Stats()
	}
	b.StopTimer()
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	b.ReportMetric(float64(ru.Maxrss)/1024, "peak-RSS-MiB")
	b.ReportMetric(float64(st.WriteCalls), "pwritev/op")
	b.ReportMetric(float64(st.Syncs), "fdatasync/op")
	b.ReportMetric(float64(st.Records), "records/op")
}

// BenchmarkVerify re-hashes a 256 MiB torrent of 1 MiB pieces (page cache
// warm after the first run).
func BenchmarkVerify(b *testing.B) {
	const pieceLen, total = 1 << 20, 256 << 20
	base := make([]byte, pieceLen)
	rand.NewChaCha8([32]byte{2}).Read(base)
	raw, err := metainfo.Build("vb", []metainfo.File{{Length: total}}, pieceLen, nil,
		&patternReader{base: base, n: total})
	if err != nil {
		b.Fatal(err)
	}
	tor, _ := metainfo.Parse(raw)
	cfg := DefaultConfig()
	cfg.Dir, cfg.Info, cfg.InfoHash = b.TempDir(), tor.Info, tor.InfoHash
	s, err := Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for p := range tor.Info.NumPieces() {
		buf := s.GetBuffer(p)
		fillPiece(buf, base, p)
		s.Submit(context.Background(), p, buf)
	}
	b.SetBytes(total)
	b.ResetTimer()
	for range b.N {
		if err := s.Verify(context.Background(), nil); err != nil {
			b.Fatal(err)
		}
		if !s.Complete() {
			b.Fatal("verify found missing pieces")
		}
	}
}
