package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/natsched/natsched"
)

// healthTimeout bounds the requests a health check makes.
const healthTimeout = 2 * time.Second

// HTTPHandler serves the contract's HTTP endpoints for s: GET /healthz
// (200 {"status":"ok"} while s is Healthy, else 503
// {"status":"unavailable","error":"…"}) and, when g is not nil, GET /metrics
// in the Prometheus text format from g (the registry the scheduler was
// given with WithRegisterer, typically with the Go runtime and process
// collectors added).
func HTTPHandler(s *Scheduler, g prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
		defer cancel()
		body, code := map[string]string{"status": "ok"}, http.StatusOK
		if err := s.Healthy(ctx); err != nil {
			status := "unavailable"
			if errors.Is(err, natsched.ErrClosed) {
				status = "closed"
			}
			body = map[string]string{"status": status, "error": strings.TrimPrefix(err.Error(), natsched.ErrUnavailable.Error()+": ")}
			code = http.StatusServiceUnavailable
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(body)
	})
	if g != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	}
	return mux
}
