package lab

import "sync"

// Cleanup is a stack of teardown functions, run last-in first-out by Run.
// It is safe for concurrent use. The zero value is ready to use.
type Cleanup struct {
	mu  sync.Mutex
	fns []func()
	ran bool
}

// Add pushes f. If the stack has already run, f runs at once, so a late
// resource is never leaked.
func (c *Cleanup) Add(f func()) {
	c.mu.Lock()
	if c.ran {
		c.mu.Unlock()
		f()
		return
	}
	c.fns = append(c.fns, f)
	c.mu.Unlock()
}

// Run calls every pushed function, newest first. Later calls do nothing
// (but functions added after the first Run run immediately, see Add).
func (c *Cleanup) Run() {
	c.mu.Lock()
	fns := c.fns
	c.fns, c.ran = nil, true
	c.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}
