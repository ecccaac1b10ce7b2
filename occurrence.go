package natsched

import (
	"encoding/binary"
	"hash/fnv"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Occurrence is one firing of a schedule: the schedule's ID and generation
// and the planned (nominal) time identify it.
type Occurrence struct {
	ID         string
	Generation uint64
	Planned    time.Time
	Run        int64         // 1-based number of the fire, triggers included
	Jitter     time.Duration // delay applied after Planned
	Trigger    bool          // fired by Trigger rather than by the schedule
}

// FireAt is when the occurrence is published: Planned + Jitter.
func (o Occurrence) FireAt() time.Time { return o.Planned.Add(o.Jitter) }

// MsgID is the occurrence ID used as Nats-Msg-Id: derived from the schedule
// ID, the generation and the planned time only, so that every publish of
// the same occurrence (a retry, a crash between publish and state write, two
// leaders during a failover) carries the same ID and JetStream keeps one.
// Triggered occurrences are marked so they never collide with a scheduled
// one planned at the same instant.
func (o Occurrence) MsgID() string { return OccurrenceID(o.ID, o.Generation, o.Planned, o.Trigger) }

// OccurrenceID builds the message ID of an occurrence:
// "<id>/<generation base 36>/<planned unix ns base 36>", with "t" before the
// time for triggered occurrences.
func OccurrenceID(id string, generation uint64, planned time.Time, trigger bool) string {
	var b strings.Builder
	b.Grow(len(id) + 32)
	b.WriteString(id)
	b.WriteByte('/')
	b.WriteString(strconv.FormatUint(generation, 36))
	b.WriteByte('/')
	if trigger {
		b.WriteByte('t')
	}
	b.WriteString(strconv.FormatInt(planned.UnixNano(), 36))
	return b.String()
}

// JitterFor returns the deterministic delay in [0, max] for an occurrence,
// so that a re-fire after failover publishes at the same moment with the
// same ID.
func JitterFor(id string, generation uint64, planned time.Time, max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(id))
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], generation)
	binary.LittleEndian.PutUint64(b[8:], uint64(planned.UnixNano()))
	h.Write(b[:])
	x := h.Sum64()
	// splitmix64 finaliser: FNV's low bits are weak for modulo.
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return time.Duration(x % (uint64(max) + 1))
}

// FiredMessage builds the message published for occurrence o of s: the
// schedule's payload and headers plus the contract's Nats-Msg-Id,
// Natsched-Id, Natsched-Planned, Natsched-Run, Natsched-Type and
// Natsched-Jitter headers.
func FiredMessage(s *Schedule, o Occurrence) *Message {
	h := make(nats.Header, len(s.Header)+6)
	for k, v := range s.Header {
		if !Reserved(k) {
			h[k] = v
		}
	}
	h.Set(HeaderMsgID, o.MsgID())
	h.Set(HeaderID, s.ID)
	h.Set(HeaderPlanned, FormatTime(o.Planned))
	h.Set(HeaderRun, strconv.FormatInt(o.Run, 10))
	if s.Type != "" {
		h.Set(HeaderType, s.Type)
	}
	if s.Jitter > 0 {
		h.Set(HeaderJitter, o.Jitter.String())
	}
	return &Message{Subject: s.Subject, Header: h, Data: s.Data}
}

// MaxHeaderBytes is the most header bytes a JetStream stream stores with a
// message: nats-server keeps the header length in 16 bits, whatever the
// server's configuration, and refuses larger headers ("header size exceeds
// maximum allowed of 64k").
const MaxHeaderBytes = math.MaxUint16

// HeaderBytes is the size of h on the wire: "NATS/1.0\r\n", one
// "Key: value\r\n" line per value and a closing "\r\n".
func HeaderBytes(h nats.Header) int {
	n := len("NATS/1.0\r\n") + 2
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(": ") + len(v) + len("\r\n")
		}
	}
	return n
}

// FiredHeaderBytes bounds the header bytes of every fired message of s:
// its headers and natsched's, with the longest values natsched's can take.
func FiredHeaderBytes(s *Schedule) int {
	worst := Occurrence{ID: s.ID, Generation: math.MaxUint64, Planned: time.Unix(0, math.MaxInt64),
		Run: math.MaxInt64, Jitter: s.Jitter, Trigger: true}
	return HeaderBytes(FiredMessage(s, worst).Header)
}
