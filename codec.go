package natsched

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
)

// Sentinel errors of the type registry. Test with errors.Is.
var (
	// ErrDuplicate: a type name or a Go type is already registered, or a
	// router already has a handler for that type name or subject pattern.
	ErrDuplicate = errors.New("natsched: duplicate registration")
	// ErrUnknownType: the Go type or the type name is not registered.
	ErrUnknownType = errors.New("natsched: unknown message type")
	// ErrTypeMismatch: the type name is registered, but for another Go type
	// than the one asked for. It deliberately does not wrap ErrInvalid: the
	// data is fine, the caller picked the wrong T.
	ErrTypeMismatch = errors.New("natsched: message type mismatch")
)

// Codec turns registered values into message payloads and back.
// Implementations must be safe for concurrent use.
type Codec interface {
	Marshal(v any) ([]byte, error)
	Unmarshal(data []byte, v any) error
}

// JSONCodec is the default Codec, backed by encoding/json.
type JSONCodec struct{}

// Marshal returns the JSON encoding of v.
func (JSONCodec) Marshal(v any) ([]byte, error) { return json.Marshal(v) }

// Unmarshal decodes the JSON data into v, which must be a pointer.
func (JSONCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// RegistryOption configures NewRegistry.
type RegistryOption func(*Registry)

// WithCodec sets the codec of the registry; nil keeps JSONCodec.
func WithCodec(c Codec) RegistryOption {
	return func(r *Registry) {
		if c != nil {
			r.codec = c
		}
	}
}

// typeKey[T] is a comparable value unique to T. Keying by it instead of by
// reflect.Type lets Encode and Decode identify T with a map lookup or a type
// assertion, so no reflection runs once registration is done.
type typeKey[T any] struct{}

// regEntry is one registration. Entries are never modified or removed, so
// a pointer read under the lock can be used after releasing it.
type regEntry struct {
	name   string
	key    any    // typeKey[T]{}
	goType string // for error messages only
	// decode unmarshals into a fresh T and returns it boxed; the router
	// uses it so that dispatch needs neither the lock nor reflection.
	decode func(data []byte) (any, error)
}

// Registry maps type names, the Natsched-Type header of fired messages, to
// Go types and back. Create it with NewRegistry; it is safe for concurrent
// use. Registrations are permanent.
type Registry struct {
	codec  Codec // set once by NewRegistry
	mu     sync.RWMutex
	byName map[string]*regEntry
	byType map[any]*regEntry // by typeKey[T]{}
}

// NewRegistry returns an empty registry using JSONCodec unless WithCodec
// says otherwise.
func NewRegistry(opts ...RegistryOption) *Registry {
	r := &Registry{
		codec:  JSONCodec{},
		byName: make(map[string]*regEntry),
		byType: make(map[any]*regEntry),
	}
	for _, o := range opts {
		o(r)
	}
	return r
}

// Register binds name to the Go type T. The name follows the schedule ID
// rule (see ValidID), since it travels as Schedule.Type.
//
// Errors: a *FieldError wrapping ErrInvalid for an empty or malformed name;
// ErrDuplicate if name is taken or T already has a name, since the mapping
// must be one-to-one for Encode and Decode to be inverses.
func Register[T any](r *Registry, name string) error {
	goType := reflect.TypeFor[T]().String()
	if name == "" {
		return Invalid("type", "empty type name for %s", goType)
	}
	if !ValidID(name) {
		return Invalid("type", "type name %q for %s: want dotted tokens of [A-Za-z0-9_-], 1-255 characters", name, goType)
	}
	e := &regEntry{
		name:   name,
		key:    typeKey[T]{},
		goType: goType,
		decode: func(data []byte) (any, error) {
			v, err := decodeAs[T](r.codec, name, goType, data)
			return v, err
		},
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.byName[name]; ok {
		return fmt.Errorf("%w: type name %q for %s: already registered for %s", ErrDuplicate, name, goType, old.goType)
	}
	if old, ok := r.byType[e.key]; ok {
		return fmt.Errorf("%w: type name %q for %s: %s is already registered as %q", ErrDuplicate, name, goType, goType, old.name)
	}
	r.byName[name] = e
	r.byType[e.key] = e
	return nil
}

// Encode marshals v with the registry codec and returns it with the name
// registered for T, ready for Schedule.Type and Schedule.Data.
//
// Errors: ErrUnknownType if T is not registered; codec errors are wrapped.
func Encode[T any](r *Registry, v T) (name string, data []byte, err error) {
	e, ok := entryOf[T](r)
	if !ok {
		return "", nil, fmt.Errorf("%w: %s is not registered", ErrUnknownType, reflect.TypeFor[T]())
	}
	data, err = r.codec.Marshal(v)
	if err != nil {
		return "", nil, fmt.Errorf("natsched: encode %s as %q: %w", e.goType, e.name, err)
	}
	return e.name, data, nil
}

// Decode unmarshals data, a payload of type name, into a T.
//
// Errors: ErrUnknownType if name is not registered; ErrTypeMismatch if it
// is registered for another Go type than T; ErrDecode (also wrapping the
// codec's error) if the codec rejects data.
func Decode[T any](r *Registry, name string, data []byte) (T, error) {
	var zero T
	r.mu.RLock()
	e, ok := r.byName[name]
	r.mu.RUnlock()
	if !ok {
		return zero, fmt.Errorf("%w: type name %q is not registered", ErrUnknownType, name)
	}
	if _, ok := e.key.(typeKey[T]); !ok {
		return zero, fmt.Errorf("%w: type name %q is registered for %s, not %s", ErrTypeMismatch, name, e.goType, reflect.TypeFor[T]())
	}
	return decodeAs[T](r.codec, name, e.goType, data)
}

// Names returns the registered type names, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	names := make([]string, 0, len(r.byName))
	for n := range r.byName {
		names = append(names, n)
	}
	r.mu.RUnlock()
	slices.Sort(names)
	return names
}

// Lookup reports whether name is registered.
func (r *Registry) Lookup(name string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.byName[name]
	return ok
}

func entryOf[T any](r *Registry) (*regEntry, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.byType[typeKey[T]{}]
	return e, ok
}

func decodeAs[T any](c Codec, name, goType string, data []byte) (T, error) {
	var v T
	if err := c.Unmarshal(data, &v); err != nil {
		var zero T // the codec may have filled v partially
		return zero, fmt.Errorf("%w: type name %q into %s: %w", ErrDecode, name, goType, err)
	}
	return v, nil
}
