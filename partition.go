package natsched

import "hash/fnv"

// Partition returns the partition of schedule id among n (contract): the
// 32-bit FNV-1a hash of the ID's bytes, modulo n. Every instance and every
// version computes the same, so a schedule's partition depends on its ID
// and the partition count only. n below 2 puts everything in partition 0.
func Partition(id string, n int) int {
	if n < 2 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	return int(h.Sum32() % uint32(n))
}
