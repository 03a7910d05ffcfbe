package metainfo

import (
	"bytes"
	"fmt"
	"math"
	"strings"

	bencode "github.com/jackpal/bencode-go"
)

// Limits enforced on the info dictionary.
const (
	MinPieceLength = 1         // bytes
	MaxPieceLength = 256 << 20 // 256 MiB
	// MaxComponentLen is the longest accepted path component or name in
	// bytes (NAME_MAX on Linux and most file systems).
	MaxComponentLen = 255
)

// File is one file of a torrent.
type File struct {
	// Path components, validated: none empty, none "." or "..", no '/',
	// '\\' or NUL inside. For a single-file torrent it is []string{Name}.
	Path []string
	// Length in bytes (>= 0).
	Length int64
	// Offset of the file's first byte in the torrent's concatenated data.
	Offset int64
	// Attr is the BEP 47 attribute string ("p" = padding file, "x", "h",
	// "l"), empty when absent.
	Attr string
	// SymlinkPath is the BEP 47 link target of a symlink entry (attr "l"),
	// relative to the torrent's root directory; nil otherwise.
	SymlinkPath []string
}

// IsPad reports whether the file is a BEP 47 padding file (all zeros; a
// client need not store it).
// BitComet's "_____padding_file_…" entries count as padding too.
func (f File) IsPad() bool { return strings.IndexByte(f.Attr, 'p') >= 0 || isBitCometPad(f.Path) }

// Info is the validated content of a torrent's info dictionary.
type Info struct {
	Name        string
	PieceLength int64
	Pieces      []byte // concatenated 20-byte SHA-1 hashes
	Length      int64  // total bytes
	Files       []File // ALWAYS non-empty; single-file torrent => one File{Path: []string{Name}}
	MultiFile   bool   // true if the info dict had "files" (output goes under Name/)
	Private     bool
}

// ParseInfo parses and validates raw, the exact bencoded bytes of an info
// dictionary (as in a .torrent file or received with BEP 9).
func ParseInfo(raw []byte) (*Info, error) {
	if _, err := scanDocument(raw, false); err != nil {
		return nil, err
	}
	v, err := bencode.Decode(bytes.NewReader(raw))
	if err != nil { // cannot happen after a successful scan; keep it safe
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	d, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: info is not a dictionary", ErrInvalid)
	}
	return infoFromDict(d)
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// typeName names a decoded bencode value's type for error messages.
func typeName(v any) string {
	switch v.(type) {
	case int64:
		return "an integer"
	case string:
		return "a string"
	case []any:
		return "a list"
	case map[string]any:
		return "a dictionary"
	}
	return fmt.Sprintf("%T", v)
}

func getInt(d map[string]any, key, ctx string, required bool) (int64, bool, error) {
	v, ok := d[key]
	if !ok {
		if required {
			return 0, false, invalidf("%s: missing %q", ctx, key)
		}
		return 0, false, nil
	}
	n, ok := v.(int64)
	if !ok {
		return 0, false, invalidf("%s: %q is %s, want integer", ctx, key, typeName(v))
	}
	return n, true, nil
}

func getString(d map[string]any, key, ctx string, required bool) (string, bool, error) {
	v, ok := d[key]
	if !ok {
		if required {
			return "", false, invalidf("%s: missing %q", ctx, key)
		}
		return "", false, nil
	}
	s, ok := v.(string)
	if !ok {
		return "", false, invalidf("%s: %q is %s, want string", ctx, key, typeName(v))
	}
	return s, true, nil
}

// getStringList reads a list of strings.
func getStringList(v any, ctx string) ([]string, error) {
	l, ok := v.([]any)
	if !ok {
		return nil, invalidf("%s is %s, want list", ctx, typeName(v))
	}
	out := make([]string, len(l))
	for i, e := range l {
		s, ok := e.(string)
		if !ok {
			return nil, invalidf("%s[%d] is %s, want string", ctx, i, typeName(e))
		}
		out[i] = s
	}
	return out, nil
}

// validComponent checks one path component (or the torrent name).
func validComponent(c string) error {
	switch {
	case c == "":
		return fmt.Errorf("empty")
	case c == "." || c == "..":
		return fmt.Errorf("%q is not allowed", c)
	case strings.ContainsAny(c, "/\\\x00"):
		return fmt.Errorf("%q contains '/', '\\' or NUL", c)
	case len(c) > MaxComponentLen:
		return fmt.Errorf("%d bytes long, limit %d", len(c), MaxComponentLen)
	}
	return nil
}

// infoFromDict validates a decoded info dictionary: its name, its piece
// hashes, its file layout, and that the two agree.
func infoFromDict(d map[string]any) (*Info, error) {
	if isV2Only(d) {
		return nil, ErrV2Only
	}
	info := &Info{}
	var err error
	if info.Name, err = infoName(d); err != nil {
		return nil, err
	}
	if info.PieceLength, info.Pieces, err = infoPieces(d); err != nil {
		return nil, err
	}
	if info.Private, err = infoPrivate(d); err != nil {
		return nil, err
	}
	if info.Files, info.Length, info.MultiFile, err = infoLayout(d, info.Name); err != nil {
		return nil, err
	}
	if err := checkPieceCount(info); err != nil {
		return nil, err
	}
	return info, nil
}

// infoName reads "name" ("name.utf-8" takes precedence) and checks that it
// is a safe path component.
func infoName(d map[string]any) (string, error) {
	const ctx = "info"
	name, _, err := getString(d, "name", ctx, true)
	if err != nil {
		return "", err
	}
	if u, ok, err := getString(d, "name.utf-8", ctx, false); err != nil {
		return "", err
	} else if ok {
		name = u
	}
	if err := validComponent(name); err != nil {
		return "", invalidf("info: name: %v", err)
	}
	return name, nil
}

// infoPieces reads "piece length" (within the limits) and "pieces" (a
// positive multiple of 20 bytes).
func infoPieces(d map[string]any) (int64, []byte, error) {
	const ctx = "info"
	pl, _, err := getInt(d, "piece length", ctx, true)
	if err != nil {
		return 0, nil, err
	}
	if pl < MinPieceLength || pl > MaxPieceLength {
		return 0, nil, invalidf("info: piece length %d outside [%d, %d]", pl, MinPieceLength, MaxPieceLength)
	}
	pieces, hasPieces, err := getString(d, "pieces", ctx, false)
	if err != nil {
		return 0, nil, err
	}
	if !hasPieces {
		return 0, nil, invalidf("%s: missing %q", ctx, "pieces")
	}
	if len(pieces) == 0 || len(pieces)%20 != 0 {
		return 0, nil, invalidf("info: pieces length %d is not a positive multiple of 20", len(pieces))
	}
	return pl, []byte(pieces), nil
}

// infoPrivate reads the optional "private" flag (0 or 1).
func infoPrivate(d map[string]any) (bool, error) {
	p, ok, err := getInt(d, "private", "info", false)
	if err != nil || !ok {
		return false, err
	}
	if p != 0 && p != 1 {
		return false, invalidf("info: private is %d, want 0 or 1", p)
	}
	return p == 1, nil
}

// infoLayout reads the files: one of "length" (a single file called name)
// or "files" (multi-file), and returns them with the total length.
func infoLayout(d map[string]any, name string) (files []File, total int64, multi bool, err error) {
	filesV, hasFiles := d["files"]
	length, hasLength, err := getInt(d, "length", "info", false)
	if err != nil {
		return nil, 0, false, err
	}
	switch {
	case hasFiles && hasLength:
		return nil, 0, false, invalidf("info: has both \"length\" and \"files\"")
	case !hasFiles && !hasLength:
		return nil, 0, false, invalidf("info: missing \"length\" or \"files\"")
	case hasLength:
		if length < 0 {
			return nil, 0, false, invalidf("info: negative length %d", length)
		}
		return []File{{Path: []string{name}, Length: length}}, length, false, nil
	}
	files, total, err = parseFiles(filesV)
	return files, total, true, err
}

// checkPieceCount checks that there is exactly one piece hash per piece of
// a non-empty torrent.
func checkPieceCount(info *Info) error {
	if info.Length == 0 {
		return invalidf("info: total length is zero")
	}
	pl := info.PieceLength
	want := info.Length / pl
	if info.Length%pl != 0 {
		want++
	}
	if got := int64(len(info.Pieces) / 20); got != want {
		return invalidf("info: %d piece hashes for %d bytes in %d-byte pieces (want %d)", got, info.Length, pl, want)
	}
	return nil
}

// isV2Only reports an info dictionary with BEP 52 v2 content ("meta
// version" 2 or a "file tree") and no v1 "pieces". Hybrid torrents have
// both and are read as v1.
func isV2Only(d map[string]any) bool {
	if _, ok := d["pieces"]; ok {
		return false
	}
	_, tree := d["file tree"]
	mv, _ := d["meta version"].(int64)
	return tree || mv >= 2
}

func parseFiles(v any) ([]File, int64, error) {
	l, ok := v.([]any)
	if !ok {
		return nil, 0, invalidf("info: \"files\" is %s, want list", typeName(v))
	}
	if len(l) == 0 {
		return nil, 0, invalidf("info: \"files\" is empty")
	}
	files := make([]File, len(l))
	var total int64
	for i, e := range l {
		ctx := fmt.Sprintf("info: files[%d]", i)
		fd, ok := e.(map[string]any)
		if !ok {
			return nil, 0, invalidf("%s is %s, want dictionary", ctx, typeName(e))
		}
		n, _, err := getInt(fd, "length", ctx, true)
		if err != nil {
			return nil, 0, err
		}
		if n < 0 {
			return nil, 0, invalidf("%s: negative length %d", ctx, n)
		}
		if total > math.MaxInt64-n {
			return nil, 0, invalidf("%s: total length overflows", ctx)
		}
		pv, ok := fd["path.utf-8"]
		key := "path.utf-8"
		if !ok {
			pv, ok = fd["path"]
			key = "path"
		}
		if !ok {
			return nil, 0, invalidf("%s: missing \"path\"", ctx)
		}
		path, err := getStringList(pv, ctx+": "+key)
		if err != nil {
			return nil, 0, err
		}
		if len(path) == 0 {
			return nil, 0, invalidf("%s: empty path", ctx)
		}
		for j, c := range path {
			if err := validComponent(c); err != nil {
				return nil, 0, invalidf("%s: %s[%d]: %v", ctx, key, j, err)
			}
		}
		attr, _, err := getString(fd, "attr", ctx, false)
		if err != nil {
			return nil, 0, err
		}
		link, err := parseSymlink(fd, attr, ctx)
		if err != nil {
			return nil, 0, err
		}
		files[i] = File{Path: path, Length: n, Offset: total, Attr: attr, SymlinkPath: link}
		total += n
	}
	if err := checkCollisions(files); err != nil {
		return nil, 0, err
	}
	return files, total, nil
}

// pathNode is a directory (file < 0) or a file in the tree of a torrent's
// paths.
type pathNode struct {
	children map[string]*pathNode
	file     int // index of the file, or -1 for a directory
	first    int // for a directory: the first file under it
}

// checkCollisions rejects two files with the same path and a file whose path
// is a directory of another file. It walks a tree of components, so it is
// linear in the total path length even for hostile, very deep paths.
// Padding files (BEP 47) of equal length may share a path: hybrid torrents
// reuse ".pad/N" names and their content is all zeros either way.
func checkCollisions(files []File) error {
	root := &pathNode{file: -1}
	for i, f := range files {
		n := root
		for k, c := range f.Path {
			last := k == len(f.Path)-1
			child := n.children[c]
			if child == nil {
				child = &pathNode{file: -1, first: i}
				if last {
					child.file = i
				}
				if n.children == nil {
					n.children = make(map[string]*pathNode)
				}
				n.children[c] = child
				n = child
				continue
			}
			switch {
			case child.file >= 0 && last:
				g := files[child.file]
				if f.IsPad() && g.IsPad() && f.Length == g.Length {
					break
				}
				return invalidf("info: files[%d] and files[%d] have the same path %q", child.file, i, strings.Join(f.Path, "/"))
			case child.file >= 0:
				return invalidf("info: files[%d] path %q is a directory of files[%d]", child.file, strings.Join(f.Path[:k+1], "/"), i)
			case last:
				return invalidf("info: files[%d] path %q is a directory of files[%d]", i, strings.Join(f.Path, "/"), child.first)
			}
			n = child
		}
	}
	return nil
}
