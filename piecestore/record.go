package piecestore

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"path/filepath"

	"golang.org/x/sys/unix"

	"flotilla/internal/bitfield"
)

// Completion record: see doc.go for the format and the rules.

const (
	recordMagic   = "FLOTREC1"
	recordVersion = 1
	recordHeader  = 8 + 4 + 8 + 20 + 8 + 8 + 4 + 4 // magic..numFiles
)

var (
	errRecordCorrupt  = errors.New("corrupt completion record")
	errRecordMismatch = errors.New("completion record is for different torrent geometry")
	crcTable          = crc32.MakeTable(crc32.Castagnoli)
)

// stamp is what the record remembers of a file to detect changes.
type stamp struct {
	size  int64
	mtime int64 // ns since the epoch
}

// record is one decoded slot of the record file.
type record struct {
	seq       uint64
	infoHash  [20]byte
	pieceLen  int64
	total     int64
	numPieces int
	stamps    []stamp
	have      bitfield.Bitfield
}

// slotSize returns the encoded size of a record.
func slotSize(numPieces, numFiles int) int {
	return recordHeader + 16*numFiles + bitfield.Len(numPieces) + 4
}

// appendRecord encodes r.
func appendRecord(b []byte, r *record) []byte {
	start := len(b)
	b = append(b, recordMagic...)
	b = binary.LittleEndian.AppendUint32(b, recordVersion)
	b = binary.LittleEndian.AppendUint64(b, r.seq)
	b = append(b, r.infoHash[:]...)
	b = binary.LittleEndian.AppendUint64(b, uint64(r.pieceLen))
	b = binary.LittleEndian.AppendUint64(b, uint64(r.total))
	b = binary.LittleEndian.AppendUint32(b, uint32(r.numPieces))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(r.stamps)))
	for _, s := range r.stamps {
		b = binary.LittleEndian.AppendUint64(b, uint64(s.size))
		b = binary.LittleEndian.AppendUint64(b, uint64(s.mtime))
	}
	b = append(b, r.have...)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b[start:], crcTable))
}

// appendCRC appends the checksum of b (a record body) to b.
func appendCRC(b []byte) []byte {
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
}

// decodeRecord decodes one slot. b must be exactly one slot (trailing bytes
// are an error). It never panics on any input.
func decodeRecord(b []byte) (*record, error) {
	if len(b) < recordHeader+4 {
		return nil, fmt.Errorf("%w: %d bytes", errRecordCorrupt, len(b))
	}
	if string(b[:8]) != recordMagic {
		return nil, fmt.Errorf("%w: bad magic", errRecordCorrupt)
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, crcTable) != sum {
		return nil, fmt.Errorf("%w: checksum mismatch", errRecordCorrupt)
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != recordVersion {
		return nil, fmt.Errorf("%w: version %d", errRecordCorrupt, v)
	}
	r := &record{seq: binary.LittleEndian.Uint64(b[12:])}
	copy(r.infoHash[:], b[20:40])
	r.pieceLen = int64(binary.LittleEndian.Uint64(b[40:]))
	r.total = int64(binary.LittleEndian.Uint64(b[48:]))
	np := binary.LittleEndian.Uint32(b[56:])
	nf := binary.LittleEndian.Uint32(b[60:])
	if r.pieceLen <= 0 || r.total < 0 || uint64(np) > uint64(r.total) {
		return nil, fmt.Errorf("%w: geometry", errRecordCorrupt)
	}
	want := uint64(recordHeader) + 16*uint64(nf) + (uint64(np)+7)/8 + 4
	if want != uint64(len(b)) {
		return nil, fmt.Errorf("%w: %d bytes for %d pieces and %d files", errRecordCorrupt, len(b), np, nf)
	}
	r.numPieces = int(np)
	p := b[recordHeader:]
	r.stamps = make([]stamp, nf)
	for i := range r.stamps {
		r.stamps[i] = stamp{size: int64(binary.LittleEndian.Uint64(p)), mtime: int64(binary.LittleEndian.Uint64(p[8:]))}
		p = p[16:]
	}
	r.have = bitfield.Bitfield(p[:bitfield.Len(int(np))]).Clone()
	if err := bitfield.Validate(r.have, int(np)); err != nil {
		return nil, fmt.Errorf("%w: %v", errRecordCorrupt, err)
	}
	return r, nil
}

// recorder owns the record file: two fixed-size slots, written alternately
// in place (pwrite + fdatasync), so that a torn write never destroys the
// previous record and no disk space is needed after creation.
type recorder struct {
	fd   int
	path string
	slot int
	seq  uint64
	buf  []byte
	sync func(fd int) error
}

func recordName(infoHash [20]byte) string { return hex.EncodeToString(infoHash[:]) + ".resume" }

// openRecorder opens or creates the record file beneath rootfd and returns
// the newest valid record in it (nil if none). warn is non-nil when a file
// existed but held no usable record; the caller logs it.
func openRecorder(rootfd int, root string, infoHash [20]byte, l *layout, sync func(int) error, made *[]string) (rc *recorder, best *record, warn error, err error) {
	name := recordName(infoHash)
	path := filepath.Join(root, recordDirName, name)
	fd, created, parent, err := openFileAt(rootfd, []string{recordDirName, name}, path, openOpts{create: true, keepParent: true, made: made})
	if err != nil {
		return nil, nil, nil, err
	}
	defer unix.Close(parent)
	rc = &recorder{fd: fd, path: path, slot: slotSize(l.numPieces, len(l.files)), sync: sync}
	ok := false
	defer func() {
		if !ok {
			unix.Close(fd)
		}
	}()
	// One store per torrent and directory: a second one (another process)
	// would interleave records. The kernel drops the lock when we die.
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, nil, nil, fmt.Errorf("%w: %s", ErrInUse, path)
		}
		return nil, nil, nil, fileErr("lock", path, err)
	}
	size := int64(2 * rc.slot)
	var st stamp
	if !created {
		if st, err = fstamp(fd); err != nil {
			return nil, nil, nil, fileErr("stat", path, err)
		}
	}
	if !created && st.size == size {
		data := make([]byte, size)
		if err := preadFull(fd, data, 0); err != nil {
			return nil, nil, nil, fileErr("read", path, err)
		}
		best, warn = pickRecord(data, rc.slot, infoHash, l)
		if best != nil {
			rc.seq = best.seq
		}
		ok = true
		return rc, best, warn, nil
	}
	if !created {
		warn = fmt.Errorf("%w: %s has %d bytes, want %d", errRecordCorrupt, path, st.size, size)
	}
	// Fresh file: real zeros (not a hole), so later in-place writes need no
	// new blocks; then make the file and its directory entries durable.
	if err := unix.Ftruncate(fd, 0); err != nil {
		return nil, nil, nil, fileErr("truncate", path, err)
	}
	if err := pwriteFull(fd, make([]byte, size), 0); err != nil {
		return nil, nil, nil, fileErr("write", path, err)
	}
	if err := unix.Fsync(fd); err != nil {
		return nil, nil, nil, fileErr("sync", path, err)
	}
	if err := unix.Fsync(parent); err != nil {
		return nil, nil, nil, fileErr("sync", filepath.Dir(path), err)
	}
	if err := unix.Fsync(rootfd); err != nil {
		return nil, nil, nil, fileErr("sync", root, err)
	}
	ok = true
	return rc, nil, warn, nil
}

// pickRecord returns the valid slot with the highest sequence number that
// matches the torrent.
func pickRecord(data []byte, slot int, infoHash [20]byte, l *layout) (best *record, warn error) {
	var errs []error
	allZero := true
	for i := range 2 {
		b := data[i*slot : (i+1)*slot]
		if isZero(b) {
			continue
		}
		allZero = false
		r, err := decodeRecord(b)
		if err == nil && (r.infoHash != infoHash || r.pieceLen != l.pieceLen || r.total != l.total ||
			r.numPieces != l.numPieces || len(r.stamps) != len(l.files)) {
			err = errRecordMismatch
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("slot %d: %w", i, err))
			continue
		}
		if best == nil || r.seq > best.seq {
			best = r
		}
	}
	if best == nil && !allZero {
		warn = errors.Join(errs...)
	}
	return best, warn
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// write commits r durably into the older slot.
func (rc *recorder) write(r *record) error {
	r.seq = rc.seq + 1
	rc.buf = appendRecord(rc.buf[:0], r)
	if len(rc.buf) != rc.slot {
		return fmt.Errorf("piecestore: internal error: record of %d bytes, slot %d", len(rc.buf), rc.slot)
	}
	if err := pwriteFull(rc.fd, rc.buf, int64(r.seq%2)*int64(rc.slot)); err != nil {
		return fileErr("write", rc.path, err)
	}
	if err := rc.sync(rc.fd); err != nil {
		return fileErr("sync", rc.path, err)
	}
	rc.seq = r.seq
	return nil
}

func (rc *recorder) close() {
	if rc != nil && rc.fd >= 0 {
		unix.Close(rc.fd)
		rc.fd = -1
	}
}

func pwriteFull(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pwrite(fd, b, off)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

func preadFull(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pread(fd, b, off)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrUnexpectedEOF
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}
