package watchdog_test

import (
	"fmt"
	"sync"
	"time"

	"flotilla/watchdog"
)

// A tracker pipeline publishes each request as a packet, fulfils it when the
// answer arrives, and keeps its announce schedule visible as IssueAt entries.
// The coordinator reads the alerts. A fake clock makes the example
// deterministic; real code leaves Config.Now nil and never calls Check.
func Example() {
	var mu sync.Mutex
	clock := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	cfg := watchdog.DefaultConfig()
	cfg.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }

	w, err := watchdog.New(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer w.Close()

	fast := w.Issue("announce", "udp://a.example:6969", 15*time.Second)
	slow := w.Issue("announce", "udp://b.example:6969", 15*time.Second)
	next := w.IssueAt("schedule", "udp://a.example:6969", clock.Add(30*time.Minute))
	w.Annotate(next, "next announce")

	advance(120 * time.Millisecond)
	fmt.Println("a answered in", w.Fulfil(fast))

	advance(20 * time.Second)
	w.Check() // only needed with a fake clock
	a := <-w.Alerts()
	fmt.Printf("overdue: %s %s, late by %v\n", a.Packet.Kind, a.Packet.Owner, a.Late)
	w.Cancel(slow)

	for _, p := range w.Pending(func(p watchdog.Packet) bool { return p.Kind == "schedule" }) {
		fmt.Printf("%s %s due %s (%s)\n", p.Kind, p.Owner, p.Deadline.Format("15:04"), p.Note)
	}
	for _, s := range w.Stats() {
		fmt.Printf("%s: count=%d pending=%d overdue=%d max=%v\n", s.Kind, s.Count, s.Pending, s.Overdue, s.Max)
	}
	// Output:
	// a answered in 120ms
	// overdue: announce udp://b.example:6969, late by 5.12s
	// schedule udp://a.example:6969 due 12:30 (next announce)
	// announce: count=1 pending=0 overdue=1 max=120ms
	// schedule: count=0 pending=1 overdue=0 max=0s
}
