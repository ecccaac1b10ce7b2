package natsched

import (
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	_ "time/tzdata" // zones work on machines without zoneinfo

	"github.com/hashicorp/cronexpr"
)

// Spec is the shape of a schedule in time. Next returns the first occurrence
// strictly after t, or the zero time when there is none. Cron expressions,
// fixed intervals and one-shot instants are Specs.
type Spec interface {
	Next(after time.Time) time.Time
}

// maxCronLen bounds what the parser reads: no sane expression is longer.
const maxCronLen = 1024

// Cron is a parsed cron expression bound to a time zone. It is safe for
// concurrent use.
//
// Fields: 5 (minute hour day-of-month month day-of-week), 6 (seconds first,
// as NATS server message schedules and Quartz read them) or 7 (seconds ...
// year), or a macro. DST follows Vixie cron: see FixedTime.
type Cron struct {
	text  string
	loc   *time.Location
	fixed bool

	mu   sync.Mutex // cronexpr.Expression.Next writes to the expression
	expr *cronexpr.Expression
}

var cronMacros = map[string]string{
	"@yearly":   "0 0 1 1 *",
	"@annually": "0 0 1 1 *",
	"@monthly":  "0 0 1 * *",
	"@weekly":   "0 0 * * 0",
	"@daily":    "0 0 * * *",
	"@midnight": "0 0 * * *",
	"@hourly":   "0 * * * *",
}

// ParseCron parses a cron expression for zone tz ("" means UTC). Errors are
// *FieldError for field "cron" or "tz". Input is validated before cronexpr
// sees it, and cronexpr only ever gets canonical numeric lists, so malformed
// input cannot reach its undetermined behaviour.
//
// Parsed expressions are remembered (a *Cron is immutable), so that the
// validation at Put, the engine and every fire of a stored schedule parse
// it once.
func ParseCron(expr, tz string) (*Cron, error) {
	key := cronKey{expr, tz}
	if c, ok := parsedCrons.Load(key); ok {
		return c.(*Cron), nil
	}
	c, err := parseCron(expr, tz)
	if err == nil {
		if parsedCount.Add(1) > maxParsedCrons {
			parsedCrons.Clear() // bounded: hostile input cannot grow it for ever
			parsedCount.Store(1)
		}
		parsedCrons.Store(key, c)
	}
	return c, err
}

// maxParsedCrons bounds the expressions ParseCron remembers.
const maxParsedCrons = 4096

type cronKey struct{ expr, tz string }

var (
	parsedCrons sync.Map // cronKey -> *Cron
	parsedCount atomic.Int64
)

func parseCron(expr, tz string) (c *Cron, err error) {
	loc, err := LoadZone(tz)
	if err != nil {
		return nil, err
	}
	canon, fixed, err := canonicalCron(expr)
	if err != nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			c, err = nil, Invalid("cron", "cannot parse %q", expr)
		}
	}()
	ce, err := cronexpr.Parse(canon)
	if err != nil {
		return nil, Invalid("cron", "%v", err)
	}
	return &Cron{text: strings.TrimSpace(expr), loc: loc, fixed: fixed, expr: ce}, nil
}

// String returns the expression as given.
func (c *Cron) String() string { return c.text }

// Location returns the zone the expression is read in.
func (c *Cron) Location() *time.Location { return c.loc }

// FixedTime reports whether neither the minute nor the hour field is a
// wildcard (a field starting with * or ?). Fixed-time expressions fire a
// wall time skipped by a DST gap once, at the first instant after the gap,
// and a wall time repeated by a fall-back once, at its first pass. Other
// expressions fire at each real instant whose wall time matches.
func (c *Cron) FixedTime() bool { return c.fixed }

// Next returns the first occurrence strictly after t, in t's location, or
// the zero time when there is none (cronexpr stops at year 2099).
//
// The search runs zone period by zone period: within a period the offset is
// constant, so wall time and real time differ by a fixed amount and cronexpr
// can work in UTC, where it takes its simple path. Transitions between
// periods are where the DST rule applies.
func (c *Cron) Next(after time.Time) time.Time {
	cur, inclusive := after, false
	for range 512 { // ~2 transitions a year until 2099, with room to spare
		local := cur.In(c.loc)
		_, off := local.Zone()
		offset := time.Duration(off) * time.Second
		start, end := zoneBounds(local, cur)

		from := wall(cur, offset)
		if inclusive {
			from = from.Add(-time.Nanosecond)
		}
		if c.fixed && !start.IsZero() {
			_, prev := start.Add(-time.Nanosecond).In(c.loc).Zone()
			if prev > off {
				// After a fall-back: wall times before the old offset's
				// reading of start already had their first pass.
				if firstPass := wall(start, time.Duration(prev)*time.Second); !from.After(firstPass.Add(-time.Nanosecond)) {
					from = firstPass.Add(-time.Nanosecond)
				}
			}
		}
		w := c.nextWall(from)
		if w.IsZero() {
			return time.Time{}
		}
		real := w.Add(-offset)
		if end.IsZero() || real.Before(end) {
			return real.In(after.Location())
		}
		_, next := end.In(c.loc).Zone()
		if c.fixed && next > off && w.Before(wall(end, time.Duration(next)*time.Second)) {
			// The wall time does not exist: fire once when the gap ends.
			return end.In(after.Location())
		}
		cur, inclusive = end, true
	}
	return time.Time{}
}

// zoneBounds returns the zone period around cur. Past the explicit
// transitions of a zone, Go's ZoneBounds can report a period that ends at
// or before cur (at the end of leap years); then the real next transition
// is found by probing day by day, and a year without one becomes a
// boundary of its own so that the search always moves forward.
func zoneBounds(local, cur time.Time) (start, end time.Time) {
	start, end = local.ZoneBounds()
	if end.IsZero() || end.After(cur) {
		return start, end
	}
	loc := local.Location()
	_, off := local.Zone()
	offsetAt := func(t time.Time) int { _, o := t.In(loc).Zone(); return o }
	lo := cur
	for day := 1; day <= 366; day++ {
		hi := cur.Add(time.Duration(day) * 24 * time.Hour)
		if offsetAt(hi) == off {
			lo = hi
			continue
		}
		for hi.Sub(lo) > time.Second { // transitions fall on whole seconds
			mid := lo.Add(hi.Sub(lo) / 2).Truncate(time.Second)
			if !mid.After(lo) {
				break
			}
			if offsetAt(mid) == off {
				lo = mid
			} else {
				hi = mid
			}
		}
		return start, hi
	}
	return start, cur.Add(366 * 24 * time.Hour)
}

// wall returns t's wall-clock reading at offset, as a UTC time.
func wall(t time.Time, offset time.Duration) time.Time { return t.UTC().Add(offset) }

// nextWall returns the first matching wall time strictly after from (UTC).
func (c *Cron) nextWall(from time.Time) (t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer func() {
		if recover() != nil {
			t = time.Time{}
		}
	}()
	if floor := cronFloor; from.Before(floor) {
		from = floor // cronexpr knows 1970-2099 and answers zero for the zero time
	}
	// Expression.Next keeps its month's days in the expression: step a
	// copy, so that one *Cron is safe to share (ParseCron remembers it).
	e := *c.expr
	return e.Next(from.UTC())
}

var cronFloor = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC).Add(-time.Nanosecond)

// cronField describes one field of the canonical 7-field form.
type cronField struct {
	name     string
	min, max int
	names    map[string]int
}

var (
	monthNames = map[string]int{"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
		"jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12}
	dowNames = map[string]int{"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}

	fSecond = cronField{"second", 0, 59, nil}
	fMinute = cronField{"minute", 0, 59, nil}
	fHour   = cronField{"hour", 0, 23, nil}
	fDom    = cronField{"day-of-month", 1, 31, nil}
	fMonth  = cronField{"month", 1, 12, monthNames}
	fDow    = cronField{"day-of-week", 0, 7, dowNames}
	fYear   = cronField{"year", 1970, 2099, nil}
)

// canonicalCron validates expr and rewrites it into the 7-field form
// cronexpr reads (seconds ... year), every field either "*" or a list of
// plain numbers, plus the L, W and # forms. It also reports whether the
// expression is fixed-time.
func canonicalCron(expr string) (string, bool, error) {
	if len(expr) > maxCronLen {
		return "", false, Invalid("cron", "longer than %d characters", maxCronLen)
	}
	for _, r := range expr {
		if r > 0x7e || (r < 0x20 && r != '\t') {
			return "", false, Invalid("cron", "unexpected character %q", r)
		}
	}
	fields := strings.Fields(expr)
	if len(fields) == 1 && strings.HasPrefix(fields[0], "@") {
		m, ok := cronMacros[strings.ToLower(fields[0])]
		if !ok {
			if strings.EqualFold(fields[0], "@every") || strings.EqualFold(fields[0], "@at") {
				return "", false, Invalid("cron", "%s is not a cron macro; use \"every\" or \"at\"", fields[0])
			}
			return "", false, Invalid("cron", "unknown macro %q (want @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly)", fields[0])
		}
		fields = strings.Fields(m)
	}
	var sec, year string
	switch len(fields) {
	case 5:
		sec, year = "0", "*"
	case 6:
		sec, fields, year = fields[0], fields[1:], "*"
	case 7:
		sec, year, fields = fields[0], fields[6], fields[1:6]
	default:
		if len(fields) > 0 && strings.HasPrefix(fields[0], "@") {
			return "", false, Invalid("cron", "a macro stands alone, got %d fields", len(fields))
		}
		return "", false, Invalid("cron", "expected 5, 6 or 7 fields, got %d", len(fields))
	}
	min, hour, dom, month, dow := fields[0], fields[1], fields[2], fields[3], fields[4]
	fixed := !isWildcard(min) && !isWildcard(hour)

	out := make([]string, 0, 7)
	for _, f := range []struct {
		text string
		desc cronField
	}{{sec, fSecond}, {min, fMinute}, {hour, fHour}, {dom, fDom}, {month, fMonth}, {dow, fDow}, {year, fYear}} {
		c, err := canonicalField(f.text, f.desc)
		if err != nil {
			return "", false, err
		}
		out = append(out, c)
	}
	return strings.Join(out, " "), fixed, nil
}

func isWildcard(field string) bool {
	return strings.HasPrefix(field, "*") || strings.HasPrefix(field, "?")
}

func canonicalField(text string, f cronField) (string, error) {
	if text == "*" || text == "?" {
		return "*", nil
	}
	set := make([]bool, f.max+1)
	var special []string
	for _, entry := range strings.Split(strings.ToLower(text), ",") {
		if entry == "" {
			return "", Invalid("cron", "%s field %q has an empty list entry", f.name, text)
		}
		if s, ok, err := specialEntry(entry, f); err != nil {
			return "", err
		} else if ok {
			special = append(special, s)
			continue
		}
		lo, hi, step, err := parseRange(entry, f)
		if err != nil {
			return "", err
		}
		for v := lo; v <= hi; v += step {
			set[v] = true
		}
	}
	if f.name == fDow.name && set[7] { // 7 is Sunday too
		set[0], set[7] = true, false
	}
	if !slices.Contains(set, true) && len(special) == 0 {
		return "", Invalid("cron", "%s field %q matches nothing", f.name, text)
	}
	var b strings.Builder
	for v, ok := range set {
		if ok {
			if b.Len() > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Itoa(v))
		}
	}
	for _, s := range special {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s)
	}
	return b.String(), nil
}

// specialEntry handles L, LW and nW (day of month) and nL and n#k (day of
// week).
func specialEntry(e string, f cronField) (string, bool, error) {
	switch f.name {
	case fDom.name:
		switch {
		case e == "l" || e == "lw":
			return e, true, nil
		case strings.HasSuffix(e, "w"):
			d, err := value(strings.TrimSuffix(e, "w"), f)
			if err != nil {
				return "", false, err
			}
			return strconv.Itoa(d) + "w", true, nil
		case strings.Contains(e, "l"):
			return "", false, Invalid("cron", "day-of-month entry %q: L stands alone or as LW", e)
		}
	case fDow.name:
		switch {
		case strings.HasSuffix(e, "l"):
			d, err := value(strings.TrimSuffix(e, "l"), f)
			if err != nil {
				return "", false, err
			}
			return strconv.Itoa(d%7) + "l", true, nil
		case strings.Contains(e, "#"):
			day, nth, _ := strings.Cut(e, "#")
			d, err := value(day, f)
			if err != nil {
				return "", false, err
			}
			n, err := strconv.Atoi(nth)
			if err != nil || n < 1 || n > 5 || len(nth) > 1 {
				return "", false, Invalid("cron", "day-of-week entry %q: the week after # must be 1 to 5", e)
			}
			return fmt.Sprintf("%d#%d", d%7, n), true, nil
		}
	}
	return "", false, nil
}

// parseRange reads *, */s, v, v-w, v/s and v-w/s.
func parseRange(e string, f cronField) (lo, hi, step int, err error) {
	step = 1
	if r, s, ok := strings.Cut(e, "/"); ok {
		n, err := strconv.Atoi(s)
		limit := f.max - f.min + 1
		if f.name == fDow.name {
			limit = 7
		}
		if err != nil || len(s) > 4 || n < 1 || n > limit {
			return 0, 0, 0, Invalid("cron", "%s entry %q: step must be 1 to %d", f.name, e, limit)
		}
		step, e = n, r
		if e != "*" && !strings.Contains(e, "-") {
			// v/s means v through the end of the field.
			lo, err := value(e, f)
			if err != nil {
				return 0, 0, 0, err
			}
			hi := f.max
			if f.name == fDow.name {
				lo, hi = lo%7, 6 // 7/2 starts on Sunday
			}
			return lo, hi, step, nil
		}
	}
	if e == "*" || e == "?" {
		hi := f.max
		if f.name == fDow.name {
			hi = 6
		}
		return f.min, hi, step, nil
	}
	if a, b, ok := strings.Cut(e, "-"); ok {
		if lo, err = value(a, f); err != nil {
			return 0, 0, 0, err
		}
		if hi, err = value(b, f); err != nil {
			return 0, 0, 0, err
		}
		if f.name == fDow.name && hi == 0 && lo > 0 {
			hi = 7 // sat-sun, 5-0: a range may end on Sunday
		}
		if lo > hi {
			return 0, 0, 0, Invalid("cron", "%s range %q runs backwards", f.name, e)
		}
		return lo, hi, step, nil
	}
	lo, err = value(e, f)
	return lo, lo, step, err
}

func value(s string, f cronField) (int, error) {
	if v, ok := f.names[s]; ok {
		return v, nil
	}
	if long := longName(s, f); long >= 0 {
		return long, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || len(s) > 4 || s[0] == '+' || s[0] == '-' {
		return 0, Invalid("cron", "%s field: %q is not a number or name", f.name, s)
	}
	if n < f.min || n > f.max {
		return 0, Invalid("cron", "%s field: %d is out of range %d-%d", f.name, n, f.min, f.max)
	}
	return n, nil
}

// longName accepts full month and weekday names ("monday", "january").
func longName(s string, f cronField) int {
	if f.names == nil || len(s) <= 3 {
		return -1
	}
	full := map[string]string{"sunday": "sun", "monday": "mon", "tuesday": "tue", "wednesday": "wed",
		"thursday": "thu", "friday": "fri", "saturday": "sat", "january": "jan", "february": "feb",
		"march": "mar", "april": "apr", "june": "jun", "july": "jul", "august": "aug",
		"september": "sep", "october": "oct", "november": "nov", "december": "dec"}
	if short, ok := full[s]; ok {
		if v, ok := f.names[short]; ok {
			return v
		}
	}
	return -1
}

var zones sync.Map // name -> *time.Location

// LoadZone loads an IANA zone ("" is UTC); errors are *FieldError "tz".
// "Local" is refused: a schedule must mean the same on every machine.
func LoadZone(name string) (*time.Location, error) {
	if name == "" || name == "UTC" {
		return time.UTC, nil
	}
	if l, ok := zones.Load(name); ok {
		return l.(*time.Location), nil
	}
	if name == "Local" || len(name) > 64 || strings.ContainsAny(name, " \\\x00") || strings.Contains(name, "..") {
		return nil, Invalid("tz", "unknown time zone %q", Truncate(name))
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, Invalid("tz", "unknown time zone %q", Truncate(name))
	}
	zones.Store(name, loc)
	return loc, nil
}

// Every is a fixed interval: occurrences are Anchor + k*Interval, k >= 0.
type Every struct {
	Anchor   time.Time
	Interval time.Duration
}

// Next returns the first occurrence strictly after t: t plus what is left
// of the interval after (t - Anchor) mod Interval. The remainder is taken in
// 128 bits, so anchors and instants centuries apart work too.
func (e Every) Next(after time.Time) time.Time {
	if e.Interval <= 0 {
		return time.Time{}
	}
	if after.Before(e.Anchor) {
		return e.Anchor
	}
	iv := uint64(e.Interval)
	var rem uint64
	if d := after.Sub(e.Anchor); d < 1<<62 {
		rem = uint64(d) % iv
	} else {
		// after - anchor in ns as a 128-bit (hi, lo) pair; it is >= 0.
		secs := after.Unix() - e.Anchor.Unix()
		nanos := int64(after.Nanosecond()) - int64(e.Anchor.Nanosecond())
		hi, lo := bits.Mul64(uint64(secs), 1e9)
		var c uint64
		if nanos >= 0 {
			lo, c = bits.Add64(lo, uint64(nanos), 0)
			hi += c
		} else {
			lo, c = bits.Sub64(lo, uint64(-nanos), 0)
			hi -= c
		}
		_, rem = bits.Div64(hi%iv, lo, iv)
	}
	return after.Add(time.Duration(iv - rem))
}

// At is a one-shot instant.
type At time.Time

// Next returns the instant if it is after t.
func (a At) Next(after time.Time) time.Time {
	if t := time.Time(a); t.After(after) {
		return t
	}
	return time.Time{}
}
