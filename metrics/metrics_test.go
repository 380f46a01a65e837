package metrics_test

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"atomuploads/metrics"
)

// Ids as the service sees them: an atom id, a ULID upload id, a YouTube
// video id, a message id, a part key.
var ids = []string{
	"e2e-atom-7f3a", "01M899983R3070777E1D50S2BK", "dQw4w9WgXcQ", "c7150b9e-4f4e-4a8e-9d55-2f9d7c1e0a11",
	"uploads/e2e-atom-7f3a/01M899983R3070777E1D50S2BK/parts/3",
}

// everyCall calls every recording method of m with v wherever a label
// value is passed, as a caller with a bug (or a client's input) would.
func everyCall(m *metrics.Metrics, v string) {
	m.Request(v, v, 200, time.Millisecond)
	m.MessageHandled(v, v, time.Millisecond)
	m.RelaySession(v)
	m.YouTubeError(v)
	m.DestinationMoved(v, v, time.Second)
	m.DestinationMoved(v, "complete", time.Second)
	m.UploadMoved(v)
	m.Census(map[string]int{v: 1}, map[string]int{v: 2})
	m.QueueDepth(v, 1, 2, 3)
	m.TranscodeJob(v)
	m.FFmpegStarted()
	m.FFmpegFinished(v, time.Second)
	m.Lease(v, v)
	m.AssetCall(v)
	m.Dependency(v, v, true)
	m.Health().Observe(v, false)
}

// TestNoLabelHoldsAnID: whatever value a caller passes where a label value
// goes, the label is one of its set or "other", never the value itself.
// (A route is one of the patterns the API gave Routes, or "other".)
func TestNoLabelHoldsAnID(t *testing.T) {
	m := metrics.New("test")
	for _, id := range ids {
		everyCall(m, id)
	}
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	labelled := checkNoIDLabels(t, families, ids...)
	// Everything passed above landed in "other".
	for _, name := range []string{"atomuploads_queue_messages_handled_total", "atomuploads_youtube_errors_total",
		"atomuploads_destination_transitions_total", "atomuploads_relays_parked", "atomuploads_leases_total",
		"atomuploads_dependency_requests_total", "atomuploads_http_requests_total"} {
		if labelled[name] == 0 {
			t.Errorf("%s has no labelled series", name)
		}
	}
	if got := value(t, m.Registry(), "atomuploads_relays_parked", "waiting_for", metrics.Other); got != 2 {
		t.Errorf("relays_parked{waiting_for=other} = %v, want the 2 of an unknown reason", got)
	}
}

// ulid is the shape of the service's upload ids.
var ulid = regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{26}$`)

// idLabelNames are label names that could only hold ids.
var idLabelNames = map[string]bool{"atomId": true, "uploadId": true, "videoId": true, "jobId": true, "messageId": true, "key": true, "part": true}

// checkNoIDLabels fails the test for every label that holds one of ids,
// looks like an upload id, or is named after an id; it returns how many
// labelled series each family has.
func checkNoIDLabels(t *testing.T, families []*dto.MetricFamily, ids ...string) map[string]int {
	t.Helper()
	labelled := map[string]int{}
	for _, f := range families {
		for _, mt := range f.GetMetric() {
			if len(mt.GetLabel()) > 0 {
				labelled[f.GetName()]++
			}
			for _, l := range mt.GetLabel() {
				if idLabelNames[l.GetName()] {
					t.Errorf("%s has a label named %s", f.GetName(), l.GetName())
				}
				if ulid.MatchString(l.GetValue()) {
					t.Errorf("%s{%s=%q}: an upload id", f.GetName(), l.GetName(), l.GetValue())
				}
				for _, id := range ids {
					if strings.Contains(l.GetValue(), id) {
						t.Errorf("%s{%s=%q} holds the id %q", f.GetName(), l.GetName(), l.GetValue(), id)
					}
				}
			}
		}
	}
	return labelled
}

// TestNilMetricsRecordNothing: a component without metrics calls the same
// methods on a nil *Metrics, and nothing happens.
func TestNilMetricsRecordNothing(t *testing.T) {
	var m *metrics.Metrics
	everyCall(m, "x")
	m.Received(1)
	m.ReceiveFailed()
	m.InFlight(1)
	m.ChunkRelayed(time.Second)
	m.Committed(1)
	m.PartRelayed(time.Second)
	m.YouTubeComplete(time.Second)
	m.Reassembled(time.Second)
	m.ReassemblyFailed()
	m.PartCopied(1)
	m.CensusElsewhere()
	m.Health().Expect(metrics.DepS3)
	m.Health().AddCheck("x", func() (bool, time.Time, string) { return true, time.Now(), "x" })
	m.Health().Drain()
	if m.Registry() != nil || m.Health() != nil {
		t.Error("a nil *Metrics has a registry or a health")
	}
	if r := m.Health().Report(false); r.Status != "ok" || len(r.Dependencies) != 0 || len(r.Problems) != 0 {
		t.Errorf("report of a nil health = %+v, want a bare ok", r)
	}
	if r := m.Health().Report(true); r.Status != "draining" || !r.Draining {
		t.Errorf("report of a nil health while the API drains = %+v, want draining", r)
	}
}

// TestCounters: each recording method moves its metric by what it says.
func TestCounters(t *testing.T) {
	m := metrics.New("v1.2.3")
	reg := m.Registry()
	m.Received(3)
	m.InFlight(1)
	m.InFlight(1)
	m.InFlight(-1)
	m.MessageHandled("relay", metrics.OutcomeRetried, 2*time.Second)
	m.Committed(1000)
	m.Committed(24)
	m.Committed(-5) // a session restarted: nothing newly committed
	m.PartRelayed(1500 * time.Millisecond)
	m.PartRelayed(-time.Second) // a clock behind S3's: 0, not a negative sample
	m.RelaySession(metrics.SessionStarted)
	m.DestinationMoved("youtube", "complete", time.Minute)
	m.DestinationMoved("s3Bucket", "failed", time.Minute)
	m.Lease("youtube", metrics.LeaseTakenOver)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"atomuploads_build_info", []string{"version", "v1.2.3"}, 1},
		{"atomuploads_queue_messages_received_total", nil, 3},
		{"atomuploads_queue_messages_in_flight", nil, 1},
		{"atomuploads_queue_messages_handled_total", []string{"kind", "relay", "outcome", "retried"}, 1},
		{"atomuploads_queue_messages_handled_total", []string{"kind", "relay", "outcome", "done"}, 0},
		{"atomuploads_relay_bytes_committed_total", nil, 1024},
		{"atomuploads_relay_sessions_total", []string{"event", "started"}, 1},
		{"atomuploads_relay_sessions_total", []string{"event", "restarted"}, 0},
		{"atomuploads_destination_transitions_total", []string{"type", "youtube", "status", "complete"}, 1},
		{"atomuploads_destination_transitions_total", []string{"type", "s3Bucket", "status", "failed"}, 1},
		{"atomuploads_leases_total", []string{"lease", "youtube", "event", "taken_over"}, 1},
	} {
		if got := value(t, reg, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	lag := histogram(t, reg, "atomuploads_relay_part_lag_seconds")
	if lag.GetSampleCount() != 2 || lag.GetSampleSum() != 1.5 {
		t.Errorf("part lag: %d samples summing %v, want 2 summing 1.5", lag.GetSampleCount(), lag.GetSampleSum())
	}
	if h := histogram(t, reg, "atomuploads_destination_time_to_complete_seconds"); h.GetSampleCount() != 1 || h.GetSampleSum() != 60 {
		t.Errorf("time to complete: %d samples summing %v, want the youtube one of 60 s", h.GetSampleCount(), h.GetSampleSum())
	}
	// The Go runtime and process collectors are on the registry.
	if n, err := testutil.GatherAndCount(reg, "go_goroutines", "process_start_time_seconds"); err != nil || n != 2 {
		t.Errorf("go_goroutines and process_start_time_seconds: %d series, %v", n, err)
	}
	// And nothing is on the global default registry.
	if n, _ := testutil.GatherAndCount(prometheus.DefaultGatherer, "atomuploads_build_info"); n != 0 {
		t.Error("the service's metrics are on the default registry")
	}
}

// TestCensus: the census publishes every reason, 0 when none waits for
// it; an instance that does not run the census withdraws its counts.
func TestCensus(t *testing.T) {
	m := metrics.New("test")
	reg := m.Registry()
	m.Census(map[string]int{"uploading": 3, "processing": 2}, map[string]int{"youtubeQuota": 2})
	for reason, want := range map[string]float64{"youtubeQuota": 2, "youtubeUploadLimit": 0, "youtubeCredentials": 0} {
		if got := value(t, reg, "atomuploads_relays_parked", "waiting_for", reason); got != want {
			t.Errorf("relays_parked{%s} = %v, want %v", reason, got, want)
		}
	}
	if got := value(t, reg, "atomuploads_uploads_live", "status", "processing"); got != 2 {
		t.Errorf("uploads_live{processing} = %v, want 2", got)
	}
	m.Census(map[string]int{}, map[string]int{})
	if got := value(t, reg, "atomuploads_relays_parked", "waiting_for", "youtubeQuota"); got != 0 {
		t.Errorf("relays_parked{youtubeQuota} after they resumed = %v, want 0", got)
	}
	m.CensusElsewhere()
	if n, _ := testutil.GatherAndCount(reg, "atomuploads_relays_parked", "atomuploads_uploads_live"); n != 0 {
		t.Errorf("%d census series after another instance took the census, want none", n)
	}
}

// value is the value of the counter or gauge name with the labels
// (name, value, …), or -1 when there is none.
func value(t *testing.T, g prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, mt := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range mt.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			if len(have) != len(labels)/2 {
				continue
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue metrics
				}
			}
			switch {
			case mt.GetCounter() != nil:
				return mt.GetCounter().GetValue()
			case mt.GetGauge() != nil:
				return mt.GetGauge().GetValue()
			}
		}
	}
	return -1
}

func histogram(t *testing.T, g prometheus.Gatherer, name string) *dto.Histogram {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) > 0 {
			return f.GetMetric()[0].GetHistogram()
		}
	}
	t.Fatalf("no histogram %s", name)
	return nil
}

// BenchmarkRelayChunkMetrics is what the relay's instrumentation costs a
// chunk: its duration, the bytes committed, one part's lag, and the count
// of the record's status changes (which compares the statuses before and
// after the chunk's write).
func BenchmarkRelayChunkMetrics(b *testing.B) {
	m := metrics.New("bench")
	b.ReportAllocs()
	for b.Loop() {
		m.ChunkRelayed(120 * time.Millisecond)
		m.Committed(8 << 20)
		m.PartRelayed(800 * time.Millisecond)
	}
}
