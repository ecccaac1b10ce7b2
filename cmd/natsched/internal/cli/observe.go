package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"

	natschedjs "github.com/natsched/natsched/jetstream"
)

// newLogger builds the daemon's logger from --log-level and --log-format.
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("--log-level: want debug, info, warn or error, got %q", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usagef("--log-format: want text or json, got %q", format)
}

// httpServer serves the scheduler's /healthz and /metrics on --http.
type httpServer struct {
	srv  *http.Server
	ln   net.Listener
	done chan error
}

// listenHTTP binds --http before anything starts, so that a taken port
// is an error at once. The registry collects the scheduler's metrics and
// the Go runtime and process collectors.
func listenHTTP(addr string) (net.Listener, *prometheus.Registry, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("--http %s: %w", addr, err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return ln, reg, nil
}

// serveHTTP serves the endpoints of sched on ln until stop.
func serveHTTP(ln net.Listener, sched *natschedjs.Scheduler, reg *prometheus.Registry) *httpServer {
	h := &httpServer{ln: ln, done: make(chan error, 1),
		srv: &http.Server{Handler: natschedjs.HTTPHandler(sched, reg), ReadHeaderTimeout: 5 * time.Second}}
	go func() { h.done <- h.srv.Serve(ln) }()
	return h
}

// stop shuts the server down and waits for it.
func (h *httpServer) stop(ctx context.Context) error {
	err := h.srv.Shutdown(ctx)
	if serveErr := <-h.done; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	return err
}

// startTracing installs an OTLP/HTTP trace exporter as the global tracer
// provider when the standard OTEL_EXPORTER_OTLP_ENDPOINT (or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set, so that the daemon's fire
// spans reach the collector; the exporter reads the other OTEL_*
// variables itself. It returns a function that flushes and stops it.
func startTracing(ctx context.Context, getenv func(string) string, instance string) (func(context.Context) error, error) {
	if getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		return func(context.Context) error { return nil }, nil
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		semconv.ServiceName("natsched"), semconv.ServiceInstanceID(instance)))
	if err != nil {
		res = resource.Default()
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	return tp.Shutdown, nil
}
