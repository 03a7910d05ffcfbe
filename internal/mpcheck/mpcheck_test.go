package mpcheck

import (
	"errors"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

func TestCheck(t *testing.T) {
	good := []any{nil, 1, -1, 1 << 40, "x", []byte("abc"), []any{1, "a", []any{}}, map[string]any{"a": 1, "b": []any{"c"}}, 1.5}
	for _, v := range good {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := Check(b, 8, len(b)); err != nil {
			t.Errorf("Check(%v = %x) = %v", v, b, err)
		}
	}
	bad := map[string][]byte{
		"empty":           {},
		"reserved":        {0xc1},
		"trailing":        {0x01, 0x02},
		"str32 past end":  {0xdb, 0xff, 0xff, 0xff, 0xff, 'a'},
		"bin32 past end":  {0xc6, 0x00, 0x10, 0x00, 0x00},
		"map32 past end":  {0xdf, 0x95, 0x46, 0xd1, 0xec, 0x01, 0x01},
		"array16 past":    {0xdc, 0x00, 0x05, 0x01},
		"ext past end":    {0xc9, 0x00, 0x00, 0x01, 0x00, 0x01},
		"truncated int":   {0xcf, 0x00},
		"truncated len":   {0xdb, 0x00},
		"too deep":        {0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x01},
		"unfinished list": {0x92, 0x01},
	}
	for name, b := range bad {
		if err := Check(b, 8, len(b)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Check(%x) = %v", name, b, err)
		}
	}
	if err := Check([]byte{0x93, 0x01, 0x01, 0x01}, 8, 2); !errors.Is(err, ErrMalformed) {
		t.Errorf("over budget: %v", err)
	}
}
