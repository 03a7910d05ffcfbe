package metainfo

import "strings"

// BEP 47 file attributes beyond padding, and the padding files of clients
// that predate BEP 47.

// bitCometPadPrefix starts the name of a padding file written by BitComet
// (and clients copying it) without a BEP 47 "attr": its content is zeros.
const bitCometPadPrefix = "_____padding_file_"

// isBitCometPad reports whether path names a BitComet padding file.
func isBitCometPad(path []string) bool {
	return len(path) > 0 && strings.HasPrefix(path[len(path)-1], bitCometPadPrefix)
}

// IsSymlink reports whether the file is a BEP 47 symbolic link (attr "l");
// SymlinkPath is then its target.
func (f File) IsSymlink() bool { return strings.IndexByte(f.Attr, 'l') >= 0 }

// parseSymlink reads the BEP 47 "symlink path" of a file entry whose attr
// has "l": a non-empty list of components relative to the torrent's root
// directory. ".." is left for the storage to judge (it refuses a link that
// leaves the output directory); empty components and '/', '\\' or NUL
// inside one are refused here.
func parseSymlink(fd map[string]any, attr, ctx string) ([]string, error) {
	if strings.IndexByte(attr, 'l') < 0 {
		return nil, nil
	}
	v, ok := fd["symlink path"]
	if !ok {
		return nil, invalidf("%s: a symlink (attr \"l\") without \"symlink path\"", ctx)
	}
	path, err := getStringList(v, ctx+": symlink path")
	if err != nil {
		return nil, err
	}
	if len(path) == 0 {
		return nil, invalidf("%s: empty symlink path", ctx)
	}
	for j, c := range path {
		if c == "" || strings.ContainsAny(c, "/\\\x00") || len(c) > MaxComponentLen {
			return nil, invalidf("%s: symlink path[%d] %q is not a valid path component", ctx, j, c)
		}
	}
	return path, nil
}
