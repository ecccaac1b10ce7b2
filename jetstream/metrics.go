package jetstream

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/natsched/natsched"
)

// WithRegisterer registers the scheduler's Prometheus metrics (names are
// contract; see the package documentation) into reg. Without it the
// scheduler registers nothing. Two schedulers in one process need two
// registries (or prometheus.WrapRegistererWith labels).
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(o *options) error {
		if reg == nil {
			return invalidOption("nil prometheus registerer")
		}
		o.registerer = reg
		return nil
	}
}

// Fire lateness buckets: 0.5ms to 60s.
var latenessBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// metrics are the scheduler's Prometheus metrics. They always exist, so
// that the code records unconditionally; they are only exposed when
// registered.
type metrics struct {
	fires        *prometheus.CounterVec   // result: ok, duplicate, error
	lateness     prometheus.Histogram     // PubAck time - fire time (planned + jitter)
	missed       *prometheus.CounterVec   // policy
	leaseChanges prometheus.Counter       //
	apiRequests  *prometheus.CounterVec   // verb, code
	apiDuration  *prometheus.HistogramVec // verb
	intake       *prometheus.CounterVec   // result: accepted, cancelled, rejected
	handler      *prometheus.CounterVec   // group, result: ok, retry, dead
	// partitionFires counts recorded fires by partition; partitionFired
	// holds its counter of each partition.
	partitionFires *prometheus.CounterVec
	partitionFired []prometheus.Counter
}

// gauges reads what the gauges report when scraped.
type gauges struct {
	schedules   func() map[natsched.Status]int
	leader      func() bool
	held        func() []int // the partitions this instance fires
	clockOffset func() time.Duration
}

// newMetrics makes the metrics of an instance of n partitions.
func newMetrics(n int) *metrics {
	m := &metrics{
		fires: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "natsched_fires_total", Help: "Occurrences published, by result: ok, duplicate (the PubAck said duplicate), error.",
		}, []string{"result"}),
		lateness: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "natsched_fire_lateness_seconds", Help: "PubAck time of a fired occurrence minus its planned time, jitter excluded.",
			Buckets: latenessBuckets,
		}),
		missed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "natsched_missed_total", Help: "Occurrences a misfire policy skipped or collapsed, by policy.",
		}, []string{"policy"}),
		leaseChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "natsched_lease_changes_total", Help: "Terms this instance began or ended as leader.",
		}),
		apiRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "natsched_api_requests_total", Help: "Requests to the micro API, by verb and reply code.",
		}, []string{"verb", "code"}),
		apiDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "natsched_api_request_duration_seconds", Help: "Time to answer a request to the micro API, by verb.",
			Buckets: prometheus.ExponentialBuckets(.0001, 4, 10),
		}, []string{"verb"}),
		intake: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "natsched_intake_messages_total", Help: "Durable intake messages, by result: accepted, cancelled, rejected.",
		}, []string{"result"}),
		handler: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "natsched_handler_messages_total", Help: "Fired messages handed to handler groups, by group and result: ok, retry, dead.",
		}, []string{"group", "result"}),
		partitionFires: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "natsched_partition_fires_total", Help: "Occurrences this instance fired and recorded, by partition.",
		}, []string{"partition"}),
	}
	for p := range max(n, 1) {
		m.partitionFired = append(m.partitionFired, m.partitionFires.WithLabelValues(strconv.Itoa(p)))
	}
	return m
}

// register registers m and the gauges g reads into reg.
func (m *metrics) register(reg prometheus.Registerer, g gauges) error {
	schedules := prometheus.NewDesc("natsched_schedules", "Schedules in the bucket by status, as this instance's index sees them.", []string{"status"}, nil)
	partitionLeader := prometheus.NewDesc("natsched_partition_leader", "1 for each partition whose lease this instance holds, else 0.", []string{"partition"}, nil)
	cs := []prometheus.Collector{
		m.fires, m.lateness, m.missed, m.leaseChanges, m.apiRequests, m.apiDuration, m.intake, m.handler, m.partitionFires,
		collectorFunc{desc: partitionLeader, collect: func(ch chan<- prometheus.Metric) {
			held := make([]float64, len(m.partitionFired))
			for _, p := range g.held() {
				held[p] = 1
			}
			for p, v := range held {
				ch <- prometheus.MustNewConstMetric(partitionLeader, prometheus.GaugeValue, v, strconv.Itoa(p))
			}
		}},
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "natsched_leader", Help: "1 on the instance that holds a lease (with partitions: at least one), else 0."},
			func() float64 {
				if g.leader() {
					return 1
				}
				return 0
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "natsched_clock_offset_seconds", Help: "The estimated JetStream server clock minus this host's."},
			func() float64 { return g.clockOffset().Seconds() }),
		collectorFunc{desc: schedules, collect: func(ch chan<- prometheus.Metric) {
			for st, n := range g.schedules() {
				ch <- prometheus.MustNewConstMetric(schedules, prometheus.GaugeValue, float64(n), string(st))
			}
		}},
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return invalidOption("register metrics: %v", err)
		}
	}
	return nil
}

// collectorFunc is a collector of one description.
type collectorFunc struct {
	desc    *prometheus.Desc
	collect func(chan<- prometheus.Metric)
}

func (c collectorFunc) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }
func (c collectorFunc) Collect(ch chan<- prometheus.Metric) { c.collect(ch) }

// apiRequest records one answered request.
func (m *metrics) apiRequest(verb string, code int, took time.Duration) {
	m.apiRequests.WithLabelValues(verb, strconv.Itoa(code)).Inc()
	m.apiDuration.WithLabelValues(verb).Observe(took.Seconds())
}
