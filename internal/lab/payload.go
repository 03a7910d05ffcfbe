package lab

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
)

// ErrMismatch reports downloaded data that differs from the payload.
var ErrMismatch = errors.New("lab: data differs from the payload")

// PayloadSpec describes deterministic pseudo-random content: the same spec
// always gives the same bytes.
type PayloadSpec struct {
	// Name is the torrent's name: the file (single-file) or the top
	// directory (multi-file).
	Name string
	// Seed selects the byte stream.
	Seed uint64
	// Size is the length of a single-file payload; ignored when Files is set.
	Size int64
	// Files, if non-empty, makes a multi-file payload; each Path is
	// slash-separated and relative to Name. Zero sizes are allowed.
	Files []FileSpec
}

// FileSpec is one file of a multi-file payload.
type FileSpec struct {
	Path string
	Size int64
}

// Validate checks the spec.
func (s PayloadSpec) Validate() error {
	if s.Name == "" || strings.ContainsAny(s.Name, "/\\\x00") || s.Name == "." || s.Name == ".." {
		return fmt.Errorf("lab: payload name %q is not a plain file name", s.Name)
	}
	if len(s.Files) == 0 && s.Size <= 0 {
		return fmt.Errorf("lab: single-file payload size %d must be positive", s.Size)
	}
	var total int64
	for _, f := range s.Files {
		for _, c := range strings.Split(f.Path, "/") {
			if c == "" || c == "." || c == ".." || strings.ContainsAny(c, "\\\x00") {
				return fmt.Errorf("lab: payload file path %q has a bad component", f.Path)
			}
		}
		if f.Size < 0 {
			return fmt.Errorf("lab: payload file %q has negative size", f.Path)
		}
		total += f.Size
	}
	if len(s.Files) > 0 && total == 0 {
		return errors.New("lab: multi-file payload is empty")
	}
	return nil
}

// Payload is generated content on disk.
type Payload struct {
	Name      string        // torrent name
	Path      string        // Dir/Name: the file or the top directory
	MultiFile bool          // Path is a directory
	Files     []PayloadFile // in torrent order
	Total     int64         // sum of sizes
}

// PayloadFile is one generated file.
type PayloadFile struct {
	Rel    string   // path relative to the download directory, OS separators (Name/... for multi-file)
	Size   int64    // bytes
	SHA256 [32]byte // of the content
}

const chunk = 1 << 20

// WritePayload generates spec's content under dir (dir/Name), in 1 MiB
// chunks from a ChaCha8 stream, computing each file's SHA-256 on the way.
func WritePayload(dir string, spec PayloadSpec) (*Payload, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	p := &Payload{Name: spec.Name, Path: filepath.Join(dir, spec.Name), MultiFile: len(spec.Files) > 0}
	files := spec.Files
	if !p.MultiFile {
		files = []FileSpec{{Size: spec.Size}}
	}
	buf := make([]byte, chunk)
	for i, f := range files {
		rel := spec.Name
		if p.MultiFile {
			rel = filepath.Join(spec.Name, filepath.FromSlash(f.Path))
		}
		var seed [32]byte
		binary.LittleEndian.PutUint64(seed[0:], spec.Seed)
		binary.LittleEndian.PutUint64(seed[8:], uint64(i))
		copy(seed[16:], "flotilla-lab")
		src := rand.NewChaCha8(seed)
		sum, err := writeStream(filepath.Join(dir, rel), f.Size, src, buf)
		if err != nil {
			return nil, err
		}
		p.Files = append(p.Files, PayloadFile{Rel: rel, Size: f.Size, SHA256: sum})
		p.Total += f.Size
	}
	return p, nil
}

func writeStream(path string, size int64, src io.Reader, buf []byte) ([32]byte, error) {
	var sum [32]byte
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return sum, fmt.Errorf("lab: payload: %w", err)
	}
	f, err := os.Create(path)
	if err != nil {
		return sum, fmt.Errorf("lab: payload: %w", err)
	}
	h := sha256.New()
	for left := size; left > 0; {
		b := buf[:min(left, int64(len(buf)))]
		if _, err := io.ReadFull(src, b); err != nil {
			f.Close()
			return sum, fmt.Errorf("lab: payload stream: %w", err)
		}
		h.Write(b)
		if _, err := f.Write(b); err != nil {
			f.Close()
			return sum, fmt.Errorf("lab: payload: %w", err)
		}
		left -= int64(len(b))
	}
	if err := f.Close(); err != nil {
		return sum, fmt.Errorf("lab: payload: %w", err)
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

// Verify checks that downloadDir holds the payload: every file present
// with the right size and SHA-256. A difference wraps ErrMismatch.
func (p *Payload) Verify(downloadDir string) error {
	buf := make([]byte, chunk)
	for _, f := range p.Files {
		path := filepath.Join(downloadDir, f.Rel)
		fh, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrMismatch, err)
		}
		h := sha256.New()
		n, err := io.CopyBuffer(h, fh, buf)
		fh.Close()
		if err != nil {
			return fmt.Errorf("lab: verify %s: %w", path, err)
		}
		if n != f.Size {
			return fmt.Errorf("%w: %s has %d bytes, want %d", ErrMismatch, f.Rel, n, f.Size)
		}
		if got := h.Sum(nil); !bytes.Equal(got, f.SHA256[:]) {
			return fmt.Errorf("%w: %s has SHA-256 %x, want %x", ErrMismatch, f.Rel, got, f.SHA256)
		}
	}
	return nil
}

// Complete reports cheaply whether downloadDir may hold the whole payload:
// every file exists with its full size and (sparse files aside) that many
// bytes allocated. It does not read data; use Verify to be sure.
func (p *Payload) Complete(downloadDir string) bool {
	for _, f := range p.Files {
		fi, err := os.Stat(filepath.Join(downloadDir, f.Rel))
		if err != nil || fi.Size() != f.Size {
			return false
		}
		if blocks, ok := allocatedBytes(fi); ok && blocks < f.Size-4096 {
			return false
		}
	}
	return true
}

// Manifest lists the files and their SHA-256 sums in sha256sum(1) format,
// relative to the download directory.
func (p *Payload) Manifest() string {
	var b strings.Builder
	for _, f := range p.Files {
		fmt.Fprintf(&b, "%s  %s\n", hex.EncodeToString(f.SHA256[:]), filepath.ToSlash(f.Rel))
	}
	return b.String()
}
