package natsched

// Partition returns the partition of schedule id among n (contract): the
// 32-bit FNV-1a hash of the ID's bytes, modulo n. Every instance and every
// version computes the same, so a schedule's partition depends on its ID
// and the partition count only. n below 2 puts everything in partition 0.
func Partition(id string, n int) int {
	if n < 2 {
		return 0
	}
	// FNV-1a, 32 bits (hash/fnv's New32a), without its allocations.
	h := uint32(2166136261)
	for i := 0; i < len(id); i++ {
		h ^= uint32(id[i])
		h *= 16777619
	}
	return int(h % uint32(n))
}
