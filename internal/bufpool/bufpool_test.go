package bufpool

import "testing"

// A buffer given back is handed out again; one of another capacity, or
// beyond the bound, is not kept; Off empties the pool for good while Get
// still allocates; Drain empties it but keeps pooling.
func TestPool(t *testing.T) {
	p := New(64, 2)
	b := p.Get(10)
	if len(b) != 10 || cap(b) != 64 {
		t.Fatalf("Get(10) from an empty pool: len %d cap %d, want 10 and 64", len(b), cap(b))
	}
	p.Put(b)
	if again := p.Get(64); &again[0] != &b[0] || len(again) != 64 {
		t.Fatal("the pool did not hand the returned buffer out again")
	}
	p.Put(make([]byte, 10)) // not of the pool's capacity
	if p.Len() != 0 {
		t.Fatalf("a buffer of another capacity was pooled (%d)", p.Len())
	}
	for range 3 {
		p.Put(make([]byte, 0, 64))
	}
	if p.Len() != 2 {
		t.Fatalf("%d buffers pooled, want the bound 2", p.Len())
	}
	p.Drain()
	p.Put(make([]byte, 0, 64))
	if p.Len() != 1 {
		t.Fatalf("after Drain: %d buffers pooled, want 1 (Drain does not switch the pool off)", p.Len())
	}
	p.Off()
	if p.Len() != 0 {
		t.Fatalf("after Off: %d buffers pooled, want 0", p.Len())
	}
	p.Put(make([]byte, 0, 64))
	if p.Len() != 0 {
		t.Fatal("a buffer was pooled after Off")
	}
	if b := p.Get(5); len(b) != 5 {
		t.Fatalf("Get after Off: %d bytes, want 5", len(b))
	}
}
