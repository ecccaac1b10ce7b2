package jetstream

import "sync/atomic"

// stats count what this instance did since it started (see Status).
type stats struct {
	fired      atomic.Uint64
	late       atomic.Uint64
	duplicates atomic.Uint64
	failures   atomic.Uint64
	refused    atomic.Uint64
	fenced     atomic.Uint64
}

// faults are hooks for tests that inject crashes and freezes.
type faults struct {
	// afterPublish runs after an occurrence's PubAck and before the state
	// write; returning true abandons the fire there, as a crash would.
	afterPublish func(id string) bool
	// beforePublish runs in each batch after its read and before its
	// first publish, where a process can be frozen.
	beforePublish func()
	// holdWatch, while it returns true, keeps the firing loop from taking
	// watch events, so that the index lags the bucket (poke the loop
	// after releasing it).
	holdWatch func() bool
	// beforeFresh runs in a batch just before it asks the firing loop
	// whether its copies are fresh.
	beforeFresh func()
}
