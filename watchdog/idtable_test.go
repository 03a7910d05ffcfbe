package watchdog

import (
	"math/rand/v2"
	"testing"
)

// TestIDTableAgainstMap drives the table with random puts, gets and takes —
// consecutive IDs (as the counter produces) mixed with random ones that
// collide — and compares it with a Go map, including growth.
func TestIDTableAgainstMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	tab := newIDTable()
	model := map[ID]int32{}
	var next ID
	pick := func() ID {
		if len(model) > 0 && rng.IntN(3) > 0 {
			for id := range model { // random-ish existing key
				return id
			}
		}
		return ID(rng.Uint64N(5000) + 1)
	}
	for step := range 300_000 {
		switch op := rng.IntN(10); {
		case op < 4:
			next++
			v := int32(rng.Int32())
			tab.put(next, v)
			model[next] = v
		case op < 5:
			id, v := pick(), int32(rng.Int32())
			tab.put(id, v)
			model[id] = v
		case op < 8:
			id := pick()
			got, ok := tab.take(id)
			want, wok := model[id]
			if ok != wok || got != want {
				t.Fatalf("step %d: take(%d) = %d,%v want %d,%v", step, id, got, ok, want, wok)
			}
			delete(model, id)
		default:
			id := pick()
			got, ok := tab.get(id)
			want, wok := model[id]
			if ok != wok || got != want {
				t.Fatalf("step %d: get(%d) = %d,%v want %d,%v", step, id, got, ok, want, wok)
			}
		}
		if tab.len() != len(model) {
			t.Fatalf("step %d: len %d want %d", step, tab.len(), len(model))
		}
	}
	seen := 0
	tab.each(func(id ID, v int32) {
		if model[id] != v {
			t.Fatalf("each: %d=%d, model %d", id, v, model[id])
		}
		seen++
	})
	if seen != len(model) {
		t.Fatalf("each saw %d of %d", seen, len(model))
	}
	// Every key still reachable after all the backward shifts.
	for id, v := range model {
		if got, ok := tab.get(id); !ok || got != v {
			t.Fatalf("get(%d) = %d,%v want %d", id, got, ok, v)
		}
	}
}

func BenchmarkIDTablePutTake(b *testing.B) {
	tab := newIDTable()
	const window = 10_000
	for i := range window {
		tab.put(ID(i+1), int32(i))
	}
	b.ResetTimer()
	for i := range b.N {
		tab.take(ID(i + 1))
		tab.put(ID(i+1+window), int32(i))
	}
}

func BenchmarkGoMapPutTake(b *testing.B) {
	m := map[ID]int32{}
	const window = 10_000
	for i := range window {
		m[ID(i+1)] = int32(i)
	}
	b.ResetTimer()
	for i := range b.N {
		id := ID(i + 1)
		if _, ok := m[id]; ok {
			delete(m, id)
		}
		m[ID(i+1+window)] = int32(i)
	}
}
