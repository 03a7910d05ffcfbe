package piecestore

import (
	"context"

	"golang.org/x/sys/unix"

	"flotilla/internal/bitfield"
)

// prepare opens every file, reconciles the record with the disk and leaves
// a record that matches the files. It returns the files' current stamps.
func (s *Store) prepare() ([]stamp, error) {
	l := s.lay
	// The record first: its lock keeps a second store off the files.
	rc, rec, warn, err := openRecorder(s.rootfd, s.root, s.cfg.InfoHash, l, s.hooks.fdatasync, &s.made)
	if err != nil {
		return nil, err
	}
	s.rec = rc
	if warn != nil {
		s.log.Warn("piecestore: ignoring unusable completion record; existing files will be checked",
			"record", rc.path, "err", warn)
	}
	pre, existed, dirty, err := s.openFiles()
	if err != nil {
		return nil, err
	}
	have := bitfield.New(l.numPieces)
	needRecord := rec == nil
	if rec != nil {
		copy(have, rec.have)
		rechecked, err := s.recheckChanged(rec, pre, have, dirty)
		if err != nil {
			return nil, err
		}
		needRecord = rechecked > 0
	} else if err := s.checkExisting(existed, pre, have); err != nil {
		return nil, err
	}
	stamps, err := s.syncAndRecord(rec, dirty, have, needRecord)
	if err != nil {
		return nil, err
	}
	for p := range l.numPieces {
		if have.Has(p) {
			s.have.set(p)
			s.nHave.Add(1)
		}
	}
	return stamps, nil
}

// openFiles opens (creating) and sizes every file and makes the symlinks.
// It reports each file's stamp before Open touched it, whether it existed
// and whether it needs a sync before the record is written.
func (s *Store) openFiles() (pre []stamp, existed, dirty []bool, err error) {
	l := s.lay
	pre = make([]stamp, len(l.files))
	existed = make([]bool, len(l.files)) // was there before Open
	dirty = make([]bool, len(l.files))   // needs a sync before the record
	for i := range l.files {
		f := &l.files[i]
		if f.pad || f.link != "" {
			continue
		}
		fd, _, created, err := s.fds.acquire(i, s.cfg.DirectIO && f.stored(), openOpts{create: true, made: &s.made})
		if err != nil {
			return nil, nil, nil, err
		}
		existed[i] = !created
		pre[i], dirty[i], err = s.prepareFile(f, fd)
		s.fds.release(i)
		if f.length == 0 {
			s.fds.drop(i)
		}
		if err != nil {
			return nil, nil, nil, err
		}
	}
	for i := range l.files {
		if f := &l.files[i]; f.link != "" {
			if err := makeSymlinkAt(s.rootfd, f.comps, f.path, f.link, &s.made); err != nil {
				return nil, nil, nil, err
			}
		}
	}
	return pre, existed, dirty, nil
}

// recheckChanged re-verifies the recorded pieces (have) that lie in a file
// whose size or mtime (pre) differs from the record, clears those no longer
// valid and, when it re-verified any, marks the changed files dirty. It
// returns how many pieces it re-verified.
func (s *Store) recheckChanged(rec *record, pre []stamp, have bitfield.Bitfield, dirty []bool) (int, error) {
	l := s.lay
	changed := make([]bool, len(l.files)) // size or mtime differs from the record
	for i := range l.files {
		changed[i] = l.files[i].stored() && pre[i] != rec.stamps[i]
	}
	var recheck, files []int
	for p := range l.numPieces {
		if !have.Has(p) {
			continue
		}
		files = l.appendPieceFiles(files[:0], p)
		for _, fi := range files {
			if changed[fi] {
				recheck = append(recheck, p)
				break
			}
		}
	}
	if len(recheck) == 0 {
		return 0, nil
	}
	s.log.Warn("piecestore: files changed since the completion record; re-verifying their pieces",
		"pieces", len(recheck))
	bad := 0
	want := make(bitfield.Bitfield, len(have))
	for _, p := range recheck {
		want.Set(p)
	}
	s.st.checked.Add(int64(len(recheck)))
	err := s.hashPieces(context.Background(), func(p int) bool { return want.Has(p) }, s.cfg.CheckProgress, func(p int, ok bool) {
		if !ok {
			have.Clear(p)
			bad++
		}
	})
	if err != nil {
		return 0, err
	}
	for i := range changed {
		dirty[i] = dirty[i] || changed[i]
	}
	if bad > 0 {
		s.log.Warn("piecestore: pieces no longer valid on disk", "pieces", bad)
	}
	return len(recheck), nil
}

// syncAndRecord syncs the dirty files and writes a record of have with the
// files' stamps when needRecord, when it synced anything or when a stamp
// differs from rec's (nil: no usable record). It returns the stamps.
func (s *Store) syncAndRecord(rec *record, dirty []bool, have bitfield.Bitfield, needRecord bool) ([]stamp, error) {
	l := s.lay
	stamps := make([]stamp, len(l.files))
	var toSync []int
	for i := range l.files {
		if l.files[i].stored() && dirty[i] {
			toSync = append(toSync, i)
		}
	}
	if len(toSync) > 0 {
		needRecord = true
		if err := s.syncData(toSync); err != nil {
			return nil, err
		}
	}
	for i := range l.files {
		f := &l.files[i]
		if !f.stored() {
			continue
		}
		st, err := s.fds.stat(i)
		if err != nil {
			return nil, fileErr("stat", f.path, err)
		}
		stamps[i] = st
		needRecord = needRecord || (rec != nil && st != rec.stamps[i])
	}
	if needRecord {
		if err := s.rec.write(s.newRecord(stamps, have)); err != nil {
			return nil, err
		}
	}
	return stamps, nil
}

// checkExisting looks for data already on disk when there is no usable
// completion record (a first download into a folder that already holds
// the data, or a lost record): the pieces lying wholly in files that
// existed before Open with the torrent's size are hashed, and those that
// match are set in have. Files of another size are not trusted (they were
// resized, so their pieces are downloaded again).
func (s *Store) checkExisting(existed []bool, pre []stamp, have bitfield.Bitfield) error {
	l := s.lay
	trusted := make([]bool, len(l.files))
	anyData := false
	for i := range l.files {
		f := &l.files[i]
		trusted[i] = f.stored() && existed[i] && pre[i].size == f.length
		anyData = anyData || trusted[i]
	}
	if !anyData {
		return nil
	}
	want := make(bitfield.Bitfield, len(have))
	n := 0
	var files []int
	for p := range l.numPieces {
		files = l.appendPieceFiles(files[:0], p)
		ok := len(files) > 0
		for _, fi := range files {
			ok = ok && trusted[fi]
		}
		if ok {
			want.Set(p)
			n++
		}
	}
	if n == 0 {
		return nil
	}
	s.log.Info("piecestore: no completion record; checking the files already there", "pieces", n)
	s.st.checked.Add(int64(n))
	found := 0
	err := s.hashPieces(context.Background(), func(p int) bool { return want.Has(p) }, s.cfg.CheckProgress, func(p int, ok bool) {
		if ok {
			have.Set(p)
			found++
		}
	})
	if err != nil {
		return err
	}
	s.log.Info("piecestore: existing data checked", "checked", n, "valid", found)
	return nil
}

// prepareFile gives a file just opened at Open its torrent length (an empty
// file is truncated, a stored one sized sparse or preallocated). It returns
// the file's stamp from before and whether it was changed (needs a sync).
func (s *Store) prepareFile(f *fileEntry, fd int) (pre stamp, dirty bool, err error) {
	if pre, err = fstamp(fd); err != nil {
		return pre, false, fileErr("stat", f.path, err)
	}
	if pre.size == f.length {
		return pre, false, nil
	}
	if f.length == 0 {
		if err := unix.Ftruncate(fd, 0); err != nil {
			return pre, false, fileErr("truncate", f.path, err)
		}
		return pre, false, nil
	}
	if pre.size > f.length {
		s.log.Warn("piecestore: file larger than in the torrent; truncating", "file", f.path,
			"size", pre.size, "want", f.length)
	}
	if err := sizeFile(fd, pre.size, f.length, s.cfg.Preallocate); err != nil {
		return pre, false, fileErr("allocate", f.path, err)
	}
	return pre, true, nil
}
