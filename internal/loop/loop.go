// Package loop is what the units owned by one goroutine share (STYLE habits
// 1 and 2): a mailbox of functions any goroutine may post without blocking,
// run in order on the owner's goroutine, and the close protocol (Close
// closes Closing once and waits until the owner's goroutine calls Stopped).
// The sub-chief (swarm.Download) and the local peer swarm (peerswarm.Swarm)
// each keep one in a field, select on Closing and Wake, and call RunPosted
// when woken.
package loop

import "sync"

// Loop is one owner's mailbox and close protocol. Make it with New; the
// zero value is not usable.
type Loop struct {
	closing   chan struct{}
	done      chan struct{}
	closeOnce sync.Once

	mbMu  sync.Mutex
	mb    []func()
	wake  chan struct{} // one token: something was posted
	spare []func()      // the owner's buffer for RunPosted
}

// New returns a Loop ready for its owner.
func New() *Loop {
	return &Loop{closing: make(chan struct{}), done: make(chan struct{}), wake: make(chan struct{}, 1)}
}

// Post queues f to run on the owner's goroutine; it never blocks. What is
// posted after the owner stopped never runs.
func (l *Loop) Post(f func()) {
	l.mbMu.Lock()
	l.mb = append(l.mb, f)
	l.mbMu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Wake receives a token when something was posted: the owner then calls
// RunPosted.
func (l *Loop) Wake() <-chan struct{} { return l.wake }

// RunPosted runs what was posted, in order. Owner's goroutine only.
func (l *Loop) RunPosted() {
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

// Closing is closed when Close is first called: the owner's goroutine
// stops and then calls Stopped.
func (l *Loop) Closing() <-chan struct{} { return l.closing }

// Stopped says that the owner's goroutine has stopped (it defers it).
func (l *Loop) Stopped() { close(l.done) }

// Done is closed once the owner's goroutine has stopped.
func (l *Loop) Done() <-chan struct{} { return l.done }

// CloseAndWait asks the owner's goroutine to stop and waits until it has.
// Any goroutine, any number of times.
func (l *Loop) CloseAndWait() {
	l.closeOnce.Do(func() { close(l.closing) })
	<-l.done
}
