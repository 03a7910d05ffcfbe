package loop

import (
	"slices"
	"testing"
)

// TestLoopRunsPostedInOrder: posts from another goroutine and from a
// posted function itself run on the owner in order, and CloseAndWait
// returns once the owner has stopped.
func TestLoopRunsPostedInOrder(t *testing.T) {
	l := New()
	var got []int
	go func() {
		for i := range 100 {
			l.Post(func() {
				got = append(got, i)
				if i == 99 {
					l.Post(func() { got = append(got, 100) })
				}
			})
		}
	}()
	go func() {
		defer l.Stopped()
		for {
			select {
			case <-l.Closing():
				return
			case <-l.Wake():
				l.RunPosted()
				if len(got) == 101 {
					return
				}
			}
		}
	}()
	<-l.Done()
	l.CloseAndWait()
	l.CloseAndWait() // twice is fine
	want := make([]int, 101)
	for i := range want {
		want[i] = i
	}
	if !slices.Equal(got, want) {
		t.Fatalf("ran %v", got)
	}
}
