package swarm

import "sync"

// loop is what the sub-chief (Download) and the local swarm (LocalSwarm)
// share as owners of one goroutine each (STYLE habits 1 and 2): a mailbox
// of functions any goroutine may post without blocking, run in order on
// the owner's goroutine, and the close protocol (Close closes closing once
// and waits for done, which the owner's goroutine closes when it stops).
// The owner embeds it, selects on closing and on wake, and calls runPosted
// when woken.
type loop struct {
	closing   chan struct{}
	done      chan struct{}
	closeOnce sync.Once

	mbMu  sync.Mutex
	mb    []func()
	wake  chan struct{} // one token: something was posted
	spare []func()      // the owner's buffer for runPosted
}

func newLoop() loop {
	return loop{closing: make(chan struct{}), done: make(chan struct{}), wake: make(chan struct{}, 1)}
}

// post queues f to run on the owner's goroutine; it never blocks.
func (l *loop) post(f func()) {
	l.mbMu.Lock()
	l.mb = append(l.mb, f)
	l.mbMu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// runPosted runs what was posted, in order. Owner's goroutine only.
func (l *loop) runPosted() {
	l.mbMu.Lock()
	mb := l.mb
	l.mb = l.spare[:0]
	l.mbMu.Unlock()
	for _, f := range mb {
		f()
	}
	clear(mb)
	l.spare = mb
}

// closeAndWait asks the owner's goroutine to stop and waits until it has.
func (l *loop) closeAndWait() {
	l.closeOnce.Do(func() { close(l.closing) })
	<-l.done
}
