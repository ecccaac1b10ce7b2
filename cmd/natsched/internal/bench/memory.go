package bench

import (
	"math"
	"runtime"
	"strings"
)

// heapAlloc returns the live heap after two garbage collections.
func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// serverPkg is the package path prefix of the embedded nats-server.
const serverPkg = "github.com/nats-io/nats-server/"

// heapBySide estimates the live heap from the runtime's heap profile,
// split by who allocated it: the embedded nats-server (some frame of the
// allocation's stack is in its packages) or everything else (the scheduler
// and the nats.go client). The profile samples one allocation per
// runtime.MemProfileRate bytes on average and is scaled as pprof scales it,
// so the figures are estimates (a few per cent at hundreds of MB). It
// reflects the heap as of the last completed GC: call after heapAlloc.
func heapBySide() (server, other float64) {
	var recs []runtime.MemProfileRecord
	n, _ := runtime.MemProfile(nil, false)
	for {
		recs = make([]runtime.MemProfileRecord, n+64)
		var ok bool
		n, ok = runtime.MemProfile(recs, false)
		if ok {
			recs = recs[:n]
			break
		}
	}
	rate := float64(runtime.MemProfileRate)
	for i := range recs {
		r := &recs[i]
		objs, bytes := r.InUseObjects(), r.InUseBytes()
		if objs <= 0 || bytes <= 0 {
			continue
		}
		scaled := float64(bytes)
		if rate > 1 {
			avg := float64(bytes) / float64(objs)
			scaled /= 1 - math.Exp(-avg/rate)
		}
		if allocatedByServer(r.Stack()) {
			server += scaled
		} else {
			other += scaled
		}
	}
	return server, other
}

func allocatedByServer(stack []uintptr) bool {
	frames := runtime.CallersFrames(stack)
	for {
		f, more := frames.Next()
		if strings.HasPrefix(f.Function, serverPkg) {
			return true
		}
		if !more {
			return false
		}
	}
}

// setMemProfileRate sets runtime.MemProfileRate and returns the previous
// rate. Samples taken before the change are scaled by the new rate when
// read, so only differences between two profiles taken at the same rate
// (of objects allocated after the change) are meaningful.
func setMemProfileRate(rate int) int {
	old := runtime.MemProfileRate
	runtime.MemProfileRate = rate
	return old
}
