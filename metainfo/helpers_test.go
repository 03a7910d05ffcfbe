package metainfo

import (
	"crypto/sha1"
	"fmt"
	"sort"
	"strings"
	"testing"
)

// enc is a test-only bencoder for literals: string, int, int64, []string,
// []any and map[string]any (keys sorted).
func enc(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("%d:%s", len(v), v)
	case int:
		return fmt.Sprintf("i%de", v)
	case int64:
		return fmt.Sprintf("i%de", v)
	case []string:
		var b strings.Builder
		b.WriteByte('l')
		for _, s := range v {
			b.WriteString(enc(s))
		}
		b.WriteByte('e')
		return b.String()
	case []any:
		var b strings.Builder
		b.WriteByte('l')
		for _, e := range v {
			b.WriteString(enc(e))
		}
		b.WriteByte('e')
		return b.String()
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b strings.Builder
		b.WriteByte('d')
		for _, k := range keys {
			b.WriteString(enc(k))
			b.WriteString(enc(v[k]))
		}
		b.WriteByte('e')
		return b.String()
	}
	panic(fmt.Sprintf("enc: unsupported %T", v))
}

// fakePieces returns n distinct 20-byte hashes.
func fakePieces(n int) string {
	var b strings.Builder
	for i := range n {
		h := sha1.Sum([]byte{byte(i), byte(i >> 8), byte(i >> 16)})
		b.Write(h[:])
	}
	return b.String()
}

// singleInfo is a valid single-file info dict: 100 bytes in 32-byte pieces.
func singleInfo() map[string]any {
	return map[string]any{
		"name":         "file.bin",
		"length":       100,
		"piece length": 32,
		"pieces":       fakePieces(4),
	}
}

func fileEntry(length int, path ...string) map[string]any {
	return map[string]any{"length": length, "path": path}
}

// multiInfo is a valid multi-file info dict: 10+0+25+5 = 40 bytes in 16-byte pieces.
func multiInfo() map[string]any {
	return map[string]any{
		"name":         "dir",
		"piece length": 16,
		"pieces":       fakePieces(3),
		"files": []any{
			fileEntry(10, "a"),
			fileEntry(0, "empty"),
			fileEntry(25, "sub", "b"),
			fileEntry(5, "sub", "deeper", "c"),
		},
	}
}

func torrentWith(info map[string]any) []byte {
	return []byte(enc(map[string]any{"announce": "http://127.0.0.1:1/announce", "info": info}))
}

func mustParseInfo(t *testing.T, d map[string]any) *Info {
	t.Helper()
	info, err := ParseInfo([]byte(enc(d)))
	if err != nil {
		t.Fatalf("ParseInfo: %v", err)
	}
	return info
}
