package natsched

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
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
	// TraceParent is the fired message's W3C traceparent when a tracer
	// recorded a span for the fire; empty, FiredMessage derives one (see
	// OccurrenceTraceParent).
	TraceParent string
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
	tp := o.TraceParent
	if tp == "" {
		tp = OccurrenceTraceParent(s, o)
	}
	h.Set(HeaderTraceParent, tp)
	if s.TraceState != "" {
		h.Set(HeaderTraceState, s.TraceState)
	}
	return &Message{Subject: s.Subject, Header: h, Data: s.Data}
}

// W3C trace context headers: on a put request or intake message they are
// the creator's trace context, stored with the schedule; on a fired
// message, the occurrence's span.
const (
	HeaderTraceParent = "traceparent"
	HeaderTraceState  = "tracestate"
)

// ParseTraceParent splits a W3C traceparent ("00-<trace id>-<span
// id>-<flags>", lower-case hex) into its trace ID, span ID and flags; ok
// is false if it is not one (or its IDs are all zero).
func ParseTraceParent(tp string) (traceID, spanID, flags string, ok bool) {
	parts := strings.Split(strings.TrimSpace(tp), "-")
	if len(parts) != 4 || parts[0] != "00" || !lowerHex(parts[1], 32) || !lowerHex(parts[2], 16) || !lowerHex(parts[3], 2) ||
		strings.Trim(parts[1], "0") == "" || strings.Trim(parts[2], "0") == "" {
		return "", "", "", false
	}
	return parts[1], parts[2], parts[3], true
}

func lowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < n; i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// OccurrenceTraceParent is the traceparent of occurrence o of s when no
// tracer records a span for its fire: the trace ID of s's stored trace
// context (one derived from the occurrence when it has none) and a span
// ID derived from the occurrence ID. So every fire is a distinct span of
// the creator's trace, and a republish of one occurrence (after a
// failover) carries the same header.
func OccurrenceTraceParent(s *Schedule, o Occurrence) string {
	sum := sha256.Sum256([]byte(o.MsgID()))
	traceID, _, flags, ok := ParseTraceParent(s.TraceParent)
	if !ok {
		traceID, flags = hex.EncodeToString(sum[:16]), "01"
	}
	span := [8]byte(sum[16:24])
	if span == [8]byte{} {
		span[7] = 1 // all zero is not a span ID
	}
	return "00-" + traceID + "-" + hex.EncodeToString(span[:]) + "-" + flags
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
