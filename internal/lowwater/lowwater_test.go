package lowwater

import (
	"errors"
	"net"
	"testing"
)

func TestSetUnsupported(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if err := Set(a, 100); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("Set on a pipe: %v, want ErrUnsupported", err)
	}
	if err := Set(&forward{Conn: a}, 100); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("Set on a setter over a pipe: %v, want ErrUnsupported", err)
	}
}

// forward passes marks through unchanged.
type forward struct{ net.Conn }

func (f *forward) SetReadLowWater(n int) error { return Set(f.Conn, n) }
