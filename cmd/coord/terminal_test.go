package main

import (
	"os"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"flotilla/internal/testenv"
)

// openPTY opens a new pseudo-terminal and returns its terminal side, which
// reports a zero size until one is set.
func openPTY(t *testing.T) (tty *os.File) {
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		testenv.Unavailable(t, "no pseudo-terminals: %v", err)
	}
	t.Cleanup(func() { ptmx.Close() })
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tty.Close() })
	return tty
}

// TestZeroSizeTerminal: a terminal that reports 0×0 (docker exec -t from a
// script) gets log lines, since the live display would show nothing there;
// once it reports a size, it gets the display.
func TestZeroSizeTerminal(t *testing.T) {
	tty := openPTY(t)
	if isTerminal(tty) {
		t.Error("a 0x0 terminal counted as one the display can draw on")
	}
	if err := unix.IoctlSetWinsize(int(tty.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: 80}); err != nil {
		t.Fatal(err)
	}
	if !isTerminal(tty) {
		t.Error("an 80x24 terminal not counted as a terminal")
	}
	f, err := os.CreateTemp(t.TempDir(), "notatty")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) {
		t.Error("a regular file counted as a terminal")
	}
}
