package peerswarm

import (
	"flotilla/metainfo"
	"flotilla/swarm"
)

// pieceBuffers holds the buffers of the pieces being downloaded: from
// Storage's pool when it keeps one (swarm.BufferPool), otherwise from a
// small free list of its own. It is passive: the owner goroutine calls it.
type pieceBuffers struct {
	info *metainfo.Info
	pool swarm.BufferPool // nil: Storage keeps no pool
	live map[int][]byte   // buffers of pieces being downloaded
	free [][]byte         // our own free list (without a pool), at most 8
}

func newPieceBuffers(info *metainfo.Info, st swarm.Storage) pieceBuffers {
	bp, _ := st.(swarm.BufferPool)
	return pieceBuffers{info: info, pool: bp, live: map[int][]byte{}}
}

// get returns piece i's buffer, taking one if it has none yet.
func (b *pieceBuffers) get(i int) []byte {
	if buf, ok := b.live[i]; ok {
		return buf
	}
	n := int(b.info.PieceLen(i))
	var buf []byte
	if b.pool != nil {
		buf = b.pool.GetBuffer(i)
	} else {
		for k := len(b.free) - 1; k >= 0; k-- {
			if cap(b.free[k]) >= n {
				buf = b.free[k][:n]
				b.free = append(b.free[:k], b.free[k+1:]...)
				break
			}
		}
	}
	if len(buf) != n {
		buf = make([]byte, n)
	}
	b.live[i] = buf
	return buf
}

// take hands over piece i's buffer (complete: to be verified) and forgets
// it.
func (b *pieceBuffers) take(i int) []byte {
	buf := b.live[i]
	delete(b.live, i)
	return buf
}

// drop gives back piece i's buffer, if it has one (the piece was
// abandoned).
func (b *pieceBuffers) drop(i int) {
	if buf, ok := b.live[i]; ok {
		delete(b.live, i)
		b.release(buf)
	}
}

// release gives back a piece buffer that will not reach Storage.
func (b *pieceBuffers) release(buf []byte) {
	if b.pool != nil {
		b.pool.PutBuffer(buf)
		return
	}
	if len(b.free) < 8 {
		b.free = append(b.free, buf[:cap(buf)])
	}
}
