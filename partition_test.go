package natsched_test

import (
	"hash/fnv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/natsched/natsched"
)

// The partition of an ID is part of the contract: these values must never
// change, or instances of two versions would fire the same partition
// differently.
func TestPartitionIsPinned(t *testing.T) {
	for _, c := range []struct {
		id   string
		n    int
		want int
	}{
		{"a", 1, 0},
		{"a", 0, 0},
		{"", 6, 1},                   // the FNV-1a offset basis, 2166136261, % 6
		{"a", 6, 4},                  // 3826002220 % 6
		{"billing.invoice-42", 6, 0}, // 3663943386 % 6
		{"reminder.7", 3, 0},         // 1348412172 % 3
	} {
		got := natsched.Partition(c.id, c.n)
		require.Equal(t, c.want, got, "Partition(%q, %d)", c.id, c.n)
	}
}

// The hand-written hash is hash/fnv's FNV-1a.
func FuzzPartitionIsFNV1a(f *testing.F) {
	f.Add("billing.invoice-42", 6)
	f.Add("", 1)
	f.Fuzz(func(t *testing.T, id string, n int) {
		n = 1 + int(uint(n)%natschedMaxPartitions)
		h := fnv.New32a()
		_, _ = h.Write([]byte(id))
		want := int(h.Sum32() % uint32(n))
		if n == 1 {
			want = 0
		}
		require.Equal(t, want, natsched.Partition(id, n))
	})
}

const natschedMaxPartitions = 256
