package natsched_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/natsched/natsched"
)

// Top-level names in this package are shared with other test files, hence
// the codec prefix.

type codecInvoice struct {
	ID     string   `json:"id"`
	Amount int64    `json:"amount"`
	Tags   []string `json:"tags"`
}

type codecReminder struct {
	Text string `json:"text"`
}

func codecErrorContains(t *testing.T, err error, subs ...string) {
	t.Helper()
	for _, s := range subs {
		require.ErrorContains(t, err, s)
	}
}

func TestRegistryRegisterErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		register func(*natsched.Registry) error
		want     error // nil: must succeed
		contains []string
	}{
		{"empty name", func(r *natsched.Registry) error { return natsched.Register[codecReminder](r, "") },
			natsched.ErrInvalid, []string{"codecReminder"}},
		{"empty token", func(r *natsched.Registry) error { return natsched.Register[codecReminder](r, "a..b") },
			natsched.ErrInvalid, []string{`"a..b"`, "codecReminder"}},
		{"wildcard", func(r *natsched.Registry) error { return natsched.Register[codecReminder](r, "a.*") },
			natsched.ErrInvalid, []string{`"a.*"`}},
		{"space", func(r *natsched.Registry) error { return natsched.Register[codecReminder](r, "a b") },
			natsched.ErrInvalid, []string{`"a b"`}},
		{"too long", func(r *natsched.Registry) error {
			return natsched.Register[codecReminder](r, strings.Repeat("x", 256))
		}, natsched.ErrInvalid, []string{"codecReminder"}},
		{"longest", func(r *natsched.Registry) error {
			return natsched.Register[codecReminder](r, strings.Repeat("x", 255))
		}, nil, nil},
		{"duplicate name", func(r *natsched.Registry) error { return natsched.Register[codecReminder](r, "billing.invoice") },
			natsched.ErrDuplicate, []string{`"billing.invoice"`, "codecReminder", "codecInvoice"}},
		{"duplicate type", func(r *natsched.Registry) error { return natsched.Register[codecInvoice](r, "billing.other") },
			natsched.ErrDuplicate, []string{`"billing.other"`, `"billing.invoice"`, "codecInvoice"}},
		{"pointer is another type", func(r *natsched.Registry) error { return natsched.Register[*codecInvoice](r, "billing.ptr") },
			nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := natsched.NewRegistry()
			require.NoError(t, natsched.Register[codecInvoice](r, "billing.invoice"))
			err := tt.register(r)
			if tt.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tt.want)
			codecErrorContains(t, err, tt.contains...)
			// A failed registration leaves nothing behind.
			require.Equal(t, []string{"billing.invoice"}, r.Names())
		})
	}
}

func TestRegistryEncodeDecodeRoundTrip(t *testing.T) {
	t.Parallel()
	r := natsched.NewRegistry()
	require.NoError(t, natsched.Register[codecInvoice](r, "billing.invoice"))
	require.NoError(t, natsched.Register[codecReminder](r, "app.reminder"))

	in := codecInvoice{ID: "inv-1", Amount: 4200, Tags: []string{"eu", "late"}}
	name, data, err := natsched.Encode(r, in)
	require.NoError(t, err)
	require.Equal(t, "billing.invoice", name)
	require.JSONEq(t, `{"id":"inv-1","amount":4200,"tags":["eu","late"]}`, string(data)) // JSON by default

	out, err := natsched.Decode[codecInvoice](r, name, data)
	require.NoError(t, err)
	require.Equal(t, in, out)

	require.Equal(t, []string{"app.reminder", "billing.invoice"}, r.Names())
	require.True(t, r.Lookup("app.reminder"))
	require.False(t, r.Lookup("app"))
	require.False(t, r.Lookup("nope"))
}

func TestRegistryNames(t *testing.T) {
	t.Parallel()
	r := natsched.NewRegistry()
	require.Empty(t, r.Names())
	// Enough names that map order is unlikely to come out sorted.
	require.NoError(t, natsched.Register[int](r, "m.int"))
	require.NoError(t, natsched.Register[string](r, "b.string"))
	require.NoError(t, natsched.Register[bool](r, "z.bool"))
	require.NoError(t, natsched.Register[float64](r, "a.float"))
	require.NoError(t, natsched.Register[[]byte](r, "k.bytes"))
	require.NoError(t, natsched.Register[*codecReminder](r, "c.reminder"))
	require.NoError(t, natsched.Register[uint8](r, "A.byte"))
	require.Equal(t, []string{"A.byte", "a.float", "b.string", "c.reminder", "k.bytes", "m.int", "z.bool"}, r.Names())
}

func TestRegistryEncodeUnknownType(t *testing.T) {
	t.Parallel()
	r := natsched.NewRegistry()
	require.NoError(t, natsched.Register[codecInvoice](r, "billing.invoice"))
	name, data, err := natsched.Encode(r, codecReminder{Text: "x"})
	require.ErrorIs(t, err, natsched.ErrUnknownType)
	require.ErrorContains(t, err, "codecReminder")
	require.Empty(t, name)
	require.Nil(t, data)
}

func TestRegistryDecodeErrors(t *testing.T) {
	t.Parallel()
	r := natsched.NewRegistry()
	require.NoError(t, natsched.Register[codecInvoice](r, "billing.invoice"))
	require.NoError(t, natsched.Register[codecReminder](r, "app.reminder"))

	t.Run("unknown name", func(t *testing.T) {
		t.Parallel()
		_, err := natsched.Decode[codecInvoice](r, "billing.nope", []byte(`{}`))
		require.ErrorIs(t, err, natsched.ErrUnknownType)
		require.ErrorContains(t, err, `"billing.nope"`)
	})
	t.Run("wrong type", func(t *testing.T) {
		t.Parallel()
		// Data valid for the requested T, so only the type check can fail.
		_, err := natsched.Decode[codecInvoice](r, "app.reminder", []byte(`{"id":"x"}`))
		require.ErrorIs(t, err, natsched.ErrTypeMismatch)
		codecErrorContains(t, err, `"app.reminder"`, "codecReminder", "codecInvoice")
		require.NotErrorIs(t, err, natsched.ErrInvalid)
		require.NotErrorIs(t, err, natsched.ErrUnknownType)
	})
	t.Run("bad data", func(t *testing.T) {
		t.Parallel()
		v, err := natsched.Decode[codecInvoice](r, "billing.invoice", []byte(`{"id":"x","amount":"NaN"}`))
		require.ErrorIs(t, err, natsched.ErrDecode)
		var jerr *json.UnmarshalTypeError
		require.ErrorAs(t, err, &jerr, "codec error not wrapped")
		require.Zero(t, v, "partial value returned with an error")
	})
}

// codecPrefixed frames JSON with a marker, so that its output is not valid
// JSON and only a registry that really uses it can round-trip.
type codecPrefixed struct{ marshals, unmarshals atomic.Int64 }

const codecMagic = "PFX:"

func (c *codecPrefixed) Marshal(v any) ([]byte, error) {
	c.marshals.Add(1)
	b, err := json.Marshal(v)
	return append([]byte(codecMagic), b...), err
}

func (c *codecPrefixed) Unmarshal(data []byte, v any) error {
	c.unmarshals.Add(1)
	rest, ok := bytes.CutPrefix(data, []byte(codecMagic))
	if !ok {
		return fmt.Errorf("missing %s", codecMagic)
	}
	return json.Unmarshal(rest, v)
}

func TestRegistryCustomCodec(t *testing.T) {
	t.Parallel()
	c := &codecPrefixed{}
	r := natsched.NewRegistry(natsched.WithCodec(c))
	require.NoError(t, natsched.Register[codecReminder](r, "app.reminder"))

	name, data, err := natsched.Encode(r, codecReminder{Text: "hi"})
	require.NoError(t, err)
	require.Equal(t, codecMagic+`{"text":"hi"}`, string(data))
	require.EqualValues(t, 1, c.marshals.Load())

	v, err := natsched.Decode[codecReminder](r, name, data)
	require.NoError(t, err)
	require.Equal(t, "hi", v.Text)
	require.EqualValues(t, 1, c.unmarshals.Load())

	_, err = natsched.Decode[codecReminder](r, name, []byte(`{"text":"hi"}`))
	require.ErrorIs(t, err, natsched.ErrDecode)
	require.ErrorContains(t, err, "missing "+codecMagic)

	// WithCodec(nil) keeps JSON rather than leaving a nil codec.
	r = natsched.NewRegistry(natsched.WithCodec(nil))
	require.NoError(t, natsched.Register[codecReminder](r, "app.reminder"))
	_, data, err = natsched.Encode(r, codecReminder{Text: "x"})
	require.NoError(t, err)
	require.JSONEq(t, `{"text":"x"}`, string(data))
}

func TestRegistryEncodeCodecError(t *testing.T) {
	t.Parallel()
	r := natsched.NewRegistry()
	require.NoError(t, natsched.Register[chan int](r, "bad.chan"))
	_, _, err := natsched.Encode(r, make(chan int))
	var jerr *json.UnsupportedTypeError
	require.ErrorAs(t, err, &jerr)
	require.ErrorContains(t, err, `"bad.chan"`)
}

// Run with -race: registration, lookup, encode and decode at once.
func TestRegistryConcurrent(t *testing.T) {
	t.Parallel()
	r := natsched.NewRegistry()
	require.NoError(t, natsched.Register[codecInvoice](r, "billing.invoice"))
	var wg sync.WaitGroup
	var registered atomic.Int64
	for g := range 8 {
		wg.Go(func() {
			// Every goroutine races to register the same type; one wins.
			switch err := natsched.Register[codecReminder](r, "app.reminder"); {
			case err == nil:
				registered.Add(1)
			case !errors.Is(err, natsched.ErrDuplicate):
				t.Errorf("Register: %v", err)
			}
			for i := range 200 {
				id := fmt.Sprint(g, i)
				name, data, err := natsched.Encode(r, codecInvoice{ID: id})
				if err != nil {
					t.Error(err)
					return
				}
				v, err := natsched.Decode[codecInvoice](r, name, data)
				if err != nil || v.ID != id {
					t.Errorf("Decode: %+v, %v", v, err)
					return
				}
				r.Lookup("app.reminder")
				r.Names()
			}
		})
	}
	wg.Wait()
	require.EqualValues(t, 1, registered.Load(), "goroutines that registered the same type")
}
