package natsched_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/natsched/natsched"
)

// sjFuzzSeeds are valid and hostile request bodies.
var sjFuzzSeeds = []string{
	// valid
	`{"id":"billing.invoice.42","subject":"billing.reminders","cron":"0 0 9 * * MON-FRI","tz":"Europe/Berlin"}`,
	`{"id":"a","subject":"b","at":"2026-11-27T21:00:00.25Z","text":"hello"}`,
	`{"id":"a","subject":"b","in":"5m","data":"aGVsbG8="}`,
	`{"id":"a_b-c.d","subject":"x.y.z","every":"30s","start":"2026-01-01T00:00:00+01:00","end":"2027-01-01T00:00:00Z","max_runs":10,"misfire":"all","catchup":"1h","jitter":"2s","paused":true,"header":{"X-Trace":["abc","def"]}}`,
	`{"id":"a","subject":"b","cron":"@daily","revision":17,"status":"active","next_run":"2026-11-27T21:00:00Z","runs":3,"created":"2026-01-01T00:00:00Z","updated":"2026-01-01T00:00:00Z","last_error":"","generation":2,"anchor":"2026-01-01T00:00:00Z","triggers":["2026-11-27T21:00:00Z"]}`,
	`{"id":"a","subject":"b","every":"1ms","cron":null,"at":null,"header":null,"data":null}`,
	`{"id":"a","subject":"b","cron":"0 0 29 2 *","type":"email.Send","data":""}`,
	`{"id":"a","subject":"b","at":"2026-03-29T02:30:00+02:00","text":"grüße ✓ \u0000"}`,
	// hostile
	``,
	`[]`,
	`"x"`,
	`42`,
	`null`,
	`{"id":"a"} x`,
	`{"id":"a"}}`,
	`{"cronn":"* * * * *"}`,
	`{"at":5,"max_runs":"3","paused":"yes","header":[],"every":10}`,
	`{"every":"5 minutes"}`,
	`{"every":"-5s","max_runs":-1,"jitter":"-1s"}`,
	`{"max_runs":1.5,"revision":99999999999999999999}`,
	`{"text":"a","data":"YQ=="}`,
	`{"data":"!!!"}`,
	`{"in":"5m","at":"2026-11-27T21:00:00Z"}`,
	`{"id":"a.*","subject":"a.>","cron":"0 0 30 2 *","tz":"Mars/Olympus"}`,
	`{"id":"a","subject":"b","every":"1m","header":{"Nats-Msg-Id":["x"],"X":"a\r\nb"}}`,
	`{"id":"a","subject":"b","at":"9999-12-31T23:59:59-23:59"}`,
	`{"id":"a","subject":"b","every":"1m","start":"2026-01-02T00:00:00Z","end":"2026-01-01T00:00:00Z","misfire":"never"}`,
	`{"header":{"":[""],"X":[null,"v"]},"misfire":"","tz":"","cron":"","at":"0001-01-01T00:00:00Z"}`,
}

// sjStringFields, sjIntFields: what a request's JSON types must be.
var (
	sjStringFields = map[string]bool{"id": true, "subject": true, "type": true, "cron": true, "tz": true,
		"at": true, "in": true, "every": true, "start": true, "end": true, "misfire": true,
		"catchup": true, "jitter": true, "data": true, "text": true}
	sjIntFields = map[string]bool{"max_runs": true, "revision": true}
)

// sjFirstValue decodes the body's first JSON value as an object and returns
// the rest of the body after it, white space trimmed.
func sjFirstValue(body []byte) (map[string]json.RawMessage, []byte, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	var raw map[string]json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return nil, nil, err
	}
	return raw, bytes.TrimLeft(body[dec.InputOffset():], " \t\r\n"), nil
}

// sjTimeInRange reports whether t renders as an RFC 3339 time that parses
// back (UTC year 0000-9999).
func sjTimeInRange(t time.Time) bool {
	y := t.UTC().Year()
	return t.IsZero() || (y >= 0 && y <= 9999)
}

func FuzzParseSchedule(f *testing.F) {
	for _, s := range sjFuzzSeeds {
		f.Add([]byte(s))
	}
	accepted2 := sjAccepted.Add(time.Hour)
	f.Fuzz(func(t *testing.T, body []byte) {
		s, err := natsched.ParseSchedule(body, sjAccepted)
		if err != nil {
			require.Nil(t, s)
			require.ErrorIs(t, err, natsched.ErrInvalid)
			var fe *natsched.FieldError
			require.True(t, errors.As(err, &fe), "%T is not a *FieldError: %v", err, err)
			require.True(t, strings.HasPrefix(err.Error(), fe.Field+": "), "message %q does not start with %q", err.Error(), fe.Field+": ")
			return
		}
		require.NotNil(t, s, "no error and no schedule")

		// What was accepted is one JSON object with the right types.
		raw, rest, derr := sjFirstValue(body)
		require.NoError(t, derr, "accepted a body that is not a JSON object: %q", body)
		if len(rest) > 0 {
			require.Empty(t, rest, "accepted trailing data after the object: %q", body)
		}
		for k, v := range raw {
			if string(v) == "null" {
				continue
			}
			switch {
			case sjStringFields[k]:
				require.Equal(t, byte('"'), v[0], "%s: accepted %s for a string", k, v)
			case sjIntFields[k]:
				require.True(t, v[0] == '-' || (v[0] >= '0' && v[0] <= '9'), "%s: accepted %s for an integer", k, v)
			case k == "paused":
				require.Contains(t, []string{"true", "false"}, string(v))
			case k == "header":
				require.Equal(t, byte('{'), v[0], "header: accepted %s", v)
			}
		}

		// A request never sets state, and in is resolved into at.
		sjRequireNoState(t, s)
		require.Zero(t, s.In)

		verr := s.Validate()
		if verr != nil {
			var fe *natsched.FieldError
			require.True(t, errors.As(verr, &fe), "%T is not a *FieldError: %v", verr, verr)
			require.ErrorIs(t, verr, natsched.ErrInvalid)
			require.True(t, strings.HasPrefix(verr.Error(), fe.Field+": "), verr.Error())
			require.NotEmpty(t, fe.Field)
		}

		for _, tm := range []time.Time{s.At, s.Start, s.End} {
			if y := tm.UTC().Year(); !tm.IsZero() && (y < 1 || y > 9999) {
				t.Fatalf("accepted a time that cannot be written back: %s", tm)
			}
		}

		// Marshal, then read back as a request and as a stored value.
		out, err := s.MarshalJSON()
		require.NoError(t, err)
		require.True(t, json.Valid(out), "MarshalJSON gave invalid JSON %q", out)
		var m map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(out, &m))
		require.NotContains(t, m, "in")
		require.NotContains(t, m, "text")
		require.Contains(t, m, "data")

		s2, err := natsched.ParseSchedule(out, accepted2)
		require.NoError(t, err, "re-parsing %s (from %q)", out, body)
		require.NotNil(t, s2)
		sjRequireSameDefinition(t, s, s2)
		require.Equal(t, s.Revision, s2.Revision)

		s3, err := sjUnmarshal(t, out)
		require.NoError(t, err, "UnmarshalJSON(%s)", out)
		sjRequireSameDefinition(t, s, s3)

		// Validation does not depend on the trip.
		verr2 := s2.Validate()
		if verr == nil {
			require.NoError(t, verr2, "valid before the round trip, not after: %s", out)
		} else {
			require.Error(t, verr2, "invalid before the round trip (%v), valid after: %s", verr, out)
			var a, b *natsched.FieldError
			require.True(t, errors.As(verr, &a))
			require.True(t, errors.As(verr2, &b))
			require.Equal(t, a.Field, b.Field)
		}

		// Rendering is stable.
		out2, err := s2.MarshalJSON()
		require.NoError(t, err)
		require.Equal(t, string(out), string(out2))
	})
}
