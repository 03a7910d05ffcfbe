package lab

import (
	"slices"
	"testing"
)

func TestCleanupOrder(t *testing.T) {
	var c Cleanup
	var got []int
	c.Add(func() { got = append(got, 1) })
	c.Add(func() { got = append(got, 2) })
	c.Run()
	c.Run()
	c.Add(func() { got = append(got, 3) }) // after Run: runs at once
	if !slices.Equal(got, []int{2, 1, 3}) {
		t.Fatalf("got %v", got)
	}
}
