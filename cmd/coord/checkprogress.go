package main

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// checkProgress returns the piecestore.Config.CheckProgress callback of a
// download: while the store hashes data already under dir (no completion
// record yet), it says so and shows how far it got, at most once a second.
func checkProgress(w io.Writer, dir string) func(done, total int) {
	var mu sync.Mutex
	var last time.Time
	return func(done, total int) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case done == 1:
			fmt.Fprintf(w, "checking the data already under %s (%d pieces)...\n", dir, total)
			last = time.Now()
		case done == total || time.Since(last) >= time.Second:
			fmt.Fprintf(w, "checked %d of %d pieces (%.0f%%)\n", done, total, 100*float64(done)/float64(total))
			last = time.Now()
		}
	}
}
