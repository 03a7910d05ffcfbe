package piecestore

import (
	"time"

	"flotilla/internal/bitfield"
)

// syncer is the goroutine that makes written pieces durable: for each batch
// handed over by the writer it fdatasyncs every file the batch touched,
// then commits the completion record, and only then publishes the pieces
// (Have, ReadBlock, Written). It owns the recorded bitfield and the file
// stamps. Running beside the writer lets the next writes proceed while the
// disk flushes.
type syncer struct {
	s       *Store
	stamps  []stamp
	recHave bitfield.Bitfield
	marks   []bitfield.Bitfield // Verify runs in progress: pieces recorded since they began
	broken  bool                // a sync or record failed: nothing more may be recorded
}

type verifyOp int

const (
	opMark verifyOp = iota
	opApply
	opCancel
)

// verifyCmd coordinates Verify (which hashes on the caller's goroutine)
// with the syncer, which alone changes the record.
type verifyCmd struct {
	op    verifyOp
	mark  bitfield.Bitfield // filled by the syncer with pieces recorded during the run
	good  bitfield.Bitfield // opApply: the pieces that hashed correctly
	reply chan error
}

func (y *syncer) run() {
	s := y.s
	defer close(s.syncerDone)
	defer close(s.written)
	for {
		select {
		case b, ok := <-s.syncCh:
			if !ok {
				return
			}
			y.commit(b)
		case c := <-s.ctlCh:
			c.reply <- y.control(c)
		case <-s.killed:
			return
		}
	}
}

func (y *syncer) fail(err error) {
	y.s.setErr(err)
	y.broken = true
}

// syncFiles fdatasyncs the given files and refreshes their stamps.
func (y *syncer) syncFiles(files []int) bool {
	s := y.s
	start := time.Now()
	err := s.syncData(files)
	s.st.syncTime.since(start)
	if err != nil {
		y.fail(err)
		return false
	}
	for _, fi := range files {
		f := &s.lay.files[fi]
		st, err := s.fds.stat(fi)
		if err != nil {
			y.fail(fileErr("stat", f.path, err))
			return false
		}
		y.stamps[fi] = st
	}
	return true
}

// commit: write (done by the writer), sync, record, publish — in that order.
func (y *syncer) commit(b *syncBatch) {
	if y.broken || !y.syncFiles(b.files) {
		return
	}
	var fresh []int
	for _, p := range b.pieces {
		if !y.recHave.Has(p) {
			y.recHave.Set(p)
			fresh = append(fresh, p)
		}
	}
	if !y.record() {
		for _, p := range fresh {
			y.recHave.Clear(p)
		}
		return
	}
	y.publish(y.recHave)
}

func (y *syncer) record() bool {
	s := y.s
	if err := s.rec.write(s.newRecord(y.stamps, y.recHave)); err != nil {
		y.fail(err)
		return false
	}
	s.st.records.Add(1)
	if s.hooks.recorded != nil {
		s.hooks.recorded(append([]byte(nil), y.recHave...))
	}
	return true
}

// publish makes the shared bitset equal to the recorded bitfield and
// announces new pieces on Written.
func (y *syncer) publish(rec bitfield.Bitfield) {
	s := y.s
	for p := range s.lay.numPieces {
		in, was := rec.Has(p), s.have.has(p)
		switch {
		case in && !was:
			s.have.set(p)
			s.nHave.Add(1)
			for _, m := range y.marks {
				m.Set(p)
			}
			select {
			case s.written <- p:
			default:
				s.st.dropped.Add(1)
			}
		case !in && was:
			s.have.clear(p)
			s.nHave.Add(-1)
		}
	}
	if s.Complete() {
		s.pool.Drain() // a seeding torrent keeps no piece buffers
	}
}

func (y *syncer) control(c verifyCmd) error {
	s := y.s
	switch c.op {
	case opMark:
		y.marks = append(y.marks, c.mark)
		return nil
	case opCancel:
		y.unmark(c.mark)
		return nil
	}
	y.unmark(c.mark)
	if y.broken {
		return s.Err()
	}
	// The hashes were read through the page cache: make them durable
	// before recording them.
	var all []int
	for i := range s.lay.files {
		if s.lay.files[i].stored() {
			all = append(all, i)
		}
	}
	if !y.syncFiles(all) {
		return s.Err()
	}
	old := y.recHave
	next := make(bitfield.Bitfield, len(old))
	for i := range next {
		next[i] = c.good[i] | c.mark[i]
	}
	y.recHave = next
	if !y.record() {
		y.recHave = old
		return s.Err()
	}
	y.publish(y.recHave)
	return nil
}

func (y *syncer) unmark(m bitfield.Bitfield) {
	for i, x := range y.marks {
		if &x[0] == &m[0] {
			y.marks = append(y.marks[:i], y.marks[i+1:]...)
			return
		}
	}
}
