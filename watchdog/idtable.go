package watchdog

// idTable maps packet IDs to slab slots: an open-addressing hash table with
// linear probing, Fibonacci hashing and backward-shift deletion. It exists
// because the owner does a lookup-and-delete per Fulfil and an insert per
// Issue; for these uint64 keys (mostly consecutive) it is several times
// cheaper than a Go map, and take does lookup and delete in one probe.
// ID 0 marks an empty cell (IDs start at 1). Not safe for concurrent use.
type idTable struct {
	keys  []ID
	vals  []int32
	shift uint // 64 - log2(len(keys))
	n     int
}

const idTableMin = 64

func newIDTable() idTable {
	return idTable{keys: make([]ID, idTableMin), vals: make([]int32, idTableMin), shift: 64 - 6}
}

func (t *idTable) len() int { return t.n }

func (t *idTable) home(id ID) int {
	return int((uint64(id) * 0x9E3779B97F4A7C15) >> t.shift)
}

// get returns the value stored for id.
func (t *idTable) get(id ID) (int32, bool) {
	mask := len(t.keys) - 1
	for i := t.home(id); ; i = (i + 1) & mask {
		switch t.keys[i] {
		case id:
			return t.vals[i], true
		case 0:
			return 0, false
		}
	}
}

// put stores v for id (which must not be 0), replacing any previous value.
func (t *idTable) put(id ID, v int32) {
	if 2*(t.n+1) > len(t.keys) {
		t.resize(2 * len(t.keys))
	}
	mask := len(t.keys) - 1
	for i := t.home(id); ; i = (i + 1) & mask {
		switch t.keys[i] {
		case id:
			t.vals[i] = v
			return
		case 0:
			t.keys[i], t.vals[i] = id, v
			t.n++
			return
		}
	}
}

// take removes id and returns its value.
func (t *idTable) take(id ID) (int32, bool) {
	mask := len(t.keys) - 1
	i := t.home(id)
	for ; ; i = (i + 1) & mask {
		k := t.keys[i]
		if k == id {
			break
		}
		if k == 0 {
			return 0, false
		}
	}
	v := t.vals[i]
	t.n--
	// Backward-shift deletion: pull later entries of the cluster into the
	// hole unless that would move them before their home cell.
	for j := i; ; {
		j = (j + 1) & mask
		k := t.keys[j]
		if k == 0 {
			break
		}
		h := t.home(k)
		// Entry at j may fill hole i only if its home is not in (i, j]
		// (cyclically).
		if i <= j {
			if i < h && h <= j {
				continue
			}
		} else if i < h || h <= j {
			continue
		}
		t.keys[i], t.vals[i] = k, t.vals[j]
		i = j
	}
	t.keys[i], t.vals[i] = 0, 0
	return v, true
}

func (t *idTable) resize(size int) {
	if size < idTableMin {
		size = idTableMin
	}
	keys, vals := t.keys, t.vals
	t.keys, t.vals = make([]ID, size), make([]int32, size)
	t.shift = 64
	for s := size; s > 1; s >>= 1 {
		t.shift--
	}
	t.n = 0
	for i, k := range keys {
		if k != 0 {
			t.put(k, vals[i])
		}
	}
}

// each calls f for every entry, in no particular order.
func (t *idTable) each(f func(id ID, v int32)) {
	for i, k := range t.keys {
		if k != 0 {
			f(k, t.vals[i])
		}
	}
}
