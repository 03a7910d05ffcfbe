// Package piecestore stores a torrent's pieces in its files: the mapping of
// pieces onto files, the ordered write plan (DESIGN point 8), the durable
// completion record used to resume, full re-verification and disk-full
// handling. It does not decide what to download.
//
// # Files
//
// Every file of the torrent is created beneath Config.Dir at
// Info.FilePath(i) when the store is opened, including zero-length files,
// sparse (ftruncate) or, with Config.Preallocate, with fallocate. A file
// that exists with another size is resized. Paths are checked twice: the
// joined, cleaned path must stay inside Dir, and files are opened one
// component at a time with openat(O_NOFOLLOW) relative to a descriptor of
// Dir, so no symlink below Dir is ever followed (a symlink anywhere in a
// torrent path is refused with ErrUnsafePath, whether or not it escapes) and
// only regular files are used. BEP 47 padding files (and BitComet's
// "_____padding_file_" entries) are not stored: writes to them are skipped
// and they read as zeros. A BEP 47 symlink entry becomes a relative
// symlink when its target stays inside Dir (outside .flotilla/); otherwise
// Open refuses the torrent with ErrUnsafeLink.
//
// Before creating anything, Open compares the space the files still need
// with the free space (CheckSpace): with Config.Preallocate a shortfall is
// refused with a *SpaceError (ErrNoSpace) saying how much is needed and
// how much is free; with sparse files it is a warning. If Open fails after
// creating files, directories or the record, it removes them again
// (never anything that was there before).
//
// # Goroutines and the write plan
//
// Two goroutines run per Store (plus a reader goroutine while Verify or
// Open re-hashes, so that reads overlap hashing). The writer goroutine owns
// the queue of verified pieces. Submit hands it a piece after acquiring
// Config.WriteBudget bytes (back-pressure: Submit blocks, honouring its
// context, while the queue is over budget; the budget is returned when the
// piece's data is written).
// Whenever it wakes, the writer takes everything queued, sorts it by
// offset, coalesces adjacent pieces into runs (up to 64 MiB) and writes
// each run's part in each file with a single pwritev straight from the
// piece buffers (no copy). With Config.DirectIO the aligned middle of each
// such part is written through a second, O_DIRECT descriptor of the file
// (reopened through /proc/self/fd, so the same inode) and only the
// unaligned head and tail through the page cache; a part whose buffers are
// not aligned in memory (a file boundary inside a piece shifts them) is
// written through the page cache whole. Written buffers go back to a small pool
// (GetBuffer/PutBuffer), so memory stays bounded by the budget plus the
// pool. The syncer goroutine receives batches of written pieces (every
// Config.SyncBytes, Config.SyncInterval after the first unsynced write,
// when the last missing piece is written, and at Close) and, strictly in
// this order, fdatasyncs every file the batch touched, commits the
// completion record, and only then publishes the pieces: Have, HasPiece,
// Complete, ReadBlock and the Written channel. Syncing beside the writer
// lets new writes proceed while the disk flushes.
//
// # Completion record
//
// The record lives at Dir/.flotilla/<info-hash hex>.resume. The file holds
// two fixed-size slots of identical layout, written alternately in place
// (pwrite of the older slot, then fdatasync); readers take the valid slot
// with the highest sequence number. A torn write therefore never loses the
// previous record, and because the file is created full of real zeros (then
// fsynced with its directories) committing a record needs no free disk
// space — it still works on a full disk. A slot is, little-endian:
//
//	magic     [8]byte  "FLOTREC1"
//	version   uint32   1
//	seq       uint64   increases by one per commit
//	infohash  [20]byte
//	pieceLen  uint64
//	total     uint64   torrent length in bytes
//	numPieces uint32
//	numFiles  uint32
//	files     numFiles × {size int64, mtime int64 (ns)}
//	have      (numPieces+7)/8 bytes, BEP 3 bit order, spare bits zero
//	crc32c    uint32   Castagnoli CRC of all the above
//
// A record is trusted piece by piece at Open: if a file's size and mtime
// equal the record's stamp, the recorded pieces in it are trusted;
// recorded pieces touching a file whose stamp differs are re-hashed and
// kept only if they match. A record that is corrupt (checksum, size,
// version, spare bits) or for different geometry is ignored with a warning.
// Without a usable record, Open checks the data already on disk (a folder
// that already holds the torrent, or a lost record): pieces lying wholly in
// files that existed with the torrent's size are hashed in parallel
// (Config.CheckProgress, Stats.CheckedAtOpen) and kept if they match;
// files of another size are not trusted. Open then syncs and records the
// reconciled state. Verify re-hashes everything (for --verify and seeding).
// The stamps are a cheap change detector, not a proof: a file modified with
// its mtime restored is only caught by Verify.
//
// The record file is locked with flock while the store is open: a second
// store for the same torrent and directory fails with ErrInUse (the kernel
// releases the lock if the process dies).
//
// # Open files
//
// Descriptors of the torrent's files are kept in a bounded LRU cache
// (fdcache.go, Config.MaxOpenFiles, by default a quarter of RLIMIT_NOFILE
// between 8 and 4096; an O_DIRECT descriptor counts too): a file nobody is
// using is closed when another must be opened, and reopened (without
// creating it) when needed again. A torrent of any number of files thus
// works under a small limit. A sync batch touching more than 16 files is
// made durable with one syncfs instead of an fdatasync per file. Running
// out of descriptors anyway (EMFILE, ENFILE) closes the idle files, retries
// once and shrinks the budget; if that fails too the error matches
// ErrNoDescriptors and says to raise the limit.
//
// # Errors
//
// A write, sync or record failure is sticky (Err): it names the file
// (*FileError), matches ErrDiskFull for ENOSPC/EDQUOT (and syscall.ENOSPC)
// or ErrIO for EIO, and the store then refuses new pieces. Pieces written
// before the failure are still synced and recorded; pieces not written are
// never recorded, so a later Open resumes where the disk stopped. After a
// failed fdatasync nothing more is recorded (the kernel may have dropped
// the data).
//
// # Reads
//
// ReadBlock and ReadPiece serve only pieces recorded complete; a piece
// still queued, or written but not yet recorded, gets ErrNotComplete (the
// swarm announces a piece only after it arrives on Written).
package piecestore
