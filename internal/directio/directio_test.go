package directio

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func TestAligned(t *testing.T) {
	buf, err := unix.Mmap(-1, 0, 3*4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(buf)
	for _, c := range []struct {
		name  string
		b     []byte
		off   int64
		align int64
		want  bool
	}{
		{"aligned", buf[:8192], 4096, 4096, true},
		{"offset", buf[:4096], 512, 4096, false},
		{"length", buf[:4000], 0, 4096, false},
		{"memory", buf[100 : 100+4096], 0, 4096, false},
		{"empty", buf[:0], 0, 4096, false},
		{"no alignment", buf[:4096], 0, 0, false},
	} {
		if got := Aligned(c.b, c.off, c.align); got != c.want {
			t.Errorf("%s: Aligned = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestOpenWritesTheSameFile: a direct write through Open's descriptor lands
// in the file the original descriptor names.
func TestOpenWritesTheSameFile(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "dio")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dfd, align := Open(int(f.Fd()))
	if dfd < 0 {
		t.Logf("the file system of %s does no direct I/O", os.TempDir())
		return
	}
	defer unix.Close(dfd)
	buf, err := unix.Mmap(-1, 0, int(align), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(buf)
	for i := range buf {
		buf[i] = byte(i)
	}
	if !Aligned(buf, align, align) {
		t.Fatalf("an mmap'd page is not aligned to %d", align)
	}
	if n, err := unix.Pwrite(dfd, buf, align); err != nil || n != len(buf) {
		t.Fatalf("direct write: %d, %v", n, err)
	}
	got := make([]byte, len(buf))
	if _, err := f.ReadAt(got, align); err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if got[i] != byte(i) {
			t.Fatalf("byte %d reads back %d", i, got[i])
		}
	}
}
