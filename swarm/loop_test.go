package swarm

import (
	"slices"
	"testing"
)

// TestLoopRunsPostedInOrder: posts from another goroutine and from a
// posted function itself run on the owner in order, and closeAndWait
// returns once the owner has stopped.
func TestLoopRunsPostedInOrder(t *testing.T) {
	l := newLoop()
	var got []int
	go func() {
		for i := range 100 {
			l.post(func() {
				got = append(got, i)
				if i == 99 {
					l.post(func() { got = append(got, 100) })
				}
			})
		}
	}()
	go func() {
		defer close(l.done)
		for {
			select {
			case <-l.closing:
				return
			case <-l.wake:
				l.runPosted()
				if len(got) == 101 {
					return
				}
			}
		}
	}()
	<-l.done
	l.closeAndWait()
	l.closeAndWait() // twice is fine
	want := make([]int, 101)
	for i := range want {
		want[i] = i
	}
	if !slices.Equal(got, want) {
		t.Fatalf("ran %v", got)
	}
}
