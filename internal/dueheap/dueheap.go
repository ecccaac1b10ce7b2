// Package dueheap is the min-heap of due work both schedulers keep: items
// ordered by due time, then by ID, each knowing its own position so that
// it can be moved or removed in O(log n).
package dueheap

// Item is what the heap holds: a pointer to a value with a due time, an
// ID for a stable order among equal due times, and a slot for its
// position (-1 when out).
type Item interface {
	Due() int64
	Key() string
	SetPos(int)
	Pos() int
}

// Heap is a min-heap of T by (Due, Key).
type Heap[T Item] struct{ items []T }

// Len returns how many items are in the heap.
func (h *Heap[T]) Len() int { return len(h.items) }

// Peek returns the first item; ok is false when empty.
func (h *Heap[T]) Peek() (t T, ok bool) {
	if len(h.items) == 0 {
		return t, false
	}
	return h.items[0], true
}

// Push adds t.
func (h *Heap[T]) Push(t T) {
	t.SetPos(len(h.items))
	h.items = append(h.items, t)
	h.up(len(h.items) - 1)
}

// Pop removes and returns the first item.
func (h *Heap[T]) Pop() T { return h.Remove(h.items[0]) }

// Remove takes t out of the heap and returns it.
func (h *Heap[T]) Remove(t T) T {
	i, n := t.Pos(), len(h.items)-1
	if i != n {
		h.swap(i, n)
		if !h.down(i, n) {
			h.up(i)
		}
	}
	var zero T
	h.items[n] = zero
	h.items = h.items[:n]
	t.SetPos(-1)
	return t
}

// Fix restores the order after t's due time changed.
func (h *Heap[T]) Fix(t T) {
	if i := t.Pos(); !h.down(i, len(h.items)) {
		h.up(i)
	}
}

func (h *Heap[T]) less(i, j int) bool {
	a, b := h.items[i], h.items[j]
	if a.Due() != b.Due() {
		return a.Due() < b.Due()
	}
	return a.Key() < b.Key()
}

func (h *Heap[T]) swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.items[i].SetPos(i)
	h.items[j].SetPos(j)
}

func (h *Heap[T]) up(j int) {
	for j > 0 {
		i := (j - 1) / 2
		if !h.less(j, i) {
			return
		}
		h.swap(i, j)
		j = i
	}
}

func (h *Heap[T]) down(i0, n int) bool {
	i := i0
	for {
		j := 2*i + 1
		if j >= n || j < 0 {
			break
		}
		if r := j + 1; r < n && h.less(r, j) {
			j = r
		}
		if !h.less(j, i) {
			break
		}
		h.swap(i, j)
		i = j
	}
	return i > i0
}
