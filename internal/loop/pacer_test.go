package loop

import (
	"testing"
	"time"
)

func TestPacerIdlesAndWakes(t *testing.T) {
	p := NewPacer(time.Millisecond, time.Hour)
	defer p.Stop()
	<-p.C() // the first tick comes after the busy interval
	p.Ticked(true)
	if !p.Idle() {
		t.Fatal("not idle after Ticked(true)")
	}
	select {
	case <-p.C():
		t.Fatal("ticked within the busy interval while idle")
	case <-time.After(20 * time.Millisecond):
	}
	p.Wake()
	if p.Idle() {
		t.Fatal("idle after Wake")
	}
	<-p.C() // within the busy interval again
	p.Ticked(false)
	<-p.C()
}

func TestPacerIdleNotShorterThanBusy(t *testing.T) {
	p := NewPacer(time.Millisecond, 0)
	defer p.Stop()
	<-p.C()
	p.Ticked(true)
	<-p.C()
}
