package swarmtest

import (
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
)

// Logger returns a text logger that writes through t.Log at level, or at
// Debug when the environment sets FLOTILLA_DEBUG (seen with go test -v).
func Logger(t testing.TB, level slog.Level) *slog.Logger {
	if os.Getenv("FLOTILLA_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(Writer(t), &slog.HandlerOptions{Level: level}))
}

// Writer returns an io.Writer that passes each write to t.Log, without its
// trailing newline: a child process's stderr, or a handler's output.
func Writer(t testing.TB) io.Writer { return tWriter{t} }

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
