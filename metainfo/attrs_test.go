package metainfo

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestBitCometPaddingAndSymlinks: BitComet's "_____padding_file_" entries
// are padding; BEP 47 symlink entries carry their target; a symlink entry
// without a target is refused clearly.
func TestBitCometPaddingAndSymlinks(t *testing.T) {
	files := []File{
		{Path: []string{"a.bin"}, Length: 100},
		{Path: []string{"_____padding_file_0_if you see this file, please update to BitComet 0.85 or above____"}, Length: 28},
		{Path: []string{"b.bin"}, Length: 50},
		{Path: []string{"link"}, Attr: "l", SymlinkPath: []string{"a.bin"}},
	}
	data := make([]byte, 178)
	raw, err := Build("t", files, 64, nil, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tor, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	got := tor.Info.Files
	if got[0].IsPad() || !got[1].IsPad() || got[2].IsPad() {
		t.Fatalf("IsPad: %v %v %v; want only the BitComet entry", got[0].IsPad(), got[1].IsPad(), got[2].IsPad())
	}
	if !got[3].IsSymlink() || !slices.Equal(got[3].SymlinkPath, []string{"a.bin"}) {
		t.Fatalf("symlink entry: %+v", got[3])
	}

	noTarget := strings.Replace(string(raw), "12:symlink path", "12:symlink_xxxx", 1)
	_, err = Parse([]byte(noTarget))
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `without "symlink path"`) {
		t.Fatalf("symlink without a target: %v", err)
	}
}
