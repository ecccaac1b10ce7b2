package dueheap

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

type item struct {
	due int64
	id  string
	pos int
}

func (i *item) Due() int64   { return i.due }
func (i *item) Key() string  { return i.id }
func (i *item) SetPos(p int) { i.pos = p }
func (i *item) Pos() int     { return i.pos }

func TestHeapOrdersByDueThenKey(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h Heap[*item]
	var all []*item
	for n := range 500 {
		it := &item{due: rng.Int64N(50), id: strconv.Itoa(n)}
		all = append(all, it)
		h.Push(it)
	}
	// Move some, remove some.
	for _, it := range all[:100] {
		it.due = rng.Int64N(50)
		h.Fix(it)
	}
	for _, it := range all[100:150] {
		h.Remove(it)
		require.Equal(t, -1, it.pos)
	}
	var got []*item
	for h.Len() > 0 {
		first, ok := h.Peek()
		require.True(t, ok)
		require.Same(t, first, h.Pop())
		got = append(got, first)
	}
	require.Len(t, got, 450)
	require.True(t, slices.IsSortedFunc(got, func(a, b *item) int {
		if a.due != b.due {
			return int(a.due - b.due)
		}
		if a.id < b.id {
			return -1
		}
		return 1
	}))
	_, ok := h.Peek()
	require.False(t, ok)
}
