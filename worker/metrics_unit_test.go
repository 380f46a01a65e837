package worker_test

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"go.uber.org/zap"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"atomuploads/metrics"
	"atomuploads/transcode"
	"atomuploads/upload"
	"atomuploads/worker"
)

// The worker's metrics over the fakes: what a relay, the outcomes of
// messages and the census publish.

// withMetrics makes the unit env's Dispatcher record into a fresh
// Metrics, and returns it.
func (e *unitEnv) withMetrics() *metrics.Metrics {
	e.t.Helper()
	m := metrics.New("test")
	deps := worker.Deps{Store: e.store, Queue: e.queue, S3: e.s3, Log: e.log, Metrics: m}
	if e.yt != nil {
		deps.YouTube = e.yt
	}
	if e.tc != nil {
		deps.Transcoder = e.tc
	}
	if e.atom != nil {
		deps.AtomAPI = e.atom
	}
	e.d = worker.New(e.cfg, deps)
	return m
}

// partEventAt is the event of part n's creation, as S3 sends it: with the
// time S3 created the object.
func partEventAt(u *upload.Upload, n int, at time.Time) string {
	var ev map[string][]map[string]any
	if err := json.Unmarshal([]byte(partBody(u, n)), &ev); err != nil {
		panic(err)
	}
	ev["Records"][0]["eventTime"] = at.UTC().Format("2006-01-02T15:04:05.000Z")
	b, _ := json.Marshal(ev)
	return string(b)
}

// metricValue is the value of the counter or gauge name with the labels
// (name, value, …); -1 when there is no such series.
func metricValue(t testing.TB, g prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	for _, mt := range series(t, g, name) {
		have := map[string]string{}
		for _, l := range mt.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		match := len(have) == len(labels)/2
		for i := 0; match && i+1 < len(labels); i += 2 {
			match = have[labels[i]] == labels[i+1]
		}
		switch {
		case !match:
		case mt.GetCounter() != nil:
			return mt.GetCounter().GetValue()
		case mt.GetGauge() != nil:
			return mt.GetGauge().GetValue()
		}
	}
	return -1
}

// samples is the sample count of the (unlabelled) histogram name.
func samples(t testing.TB, g prometheus.Gatherer, name string) uint64 {
	t.Helper()
	for _, mt := range series(t, g, name) {
		return mt.GetHistogram().GetSampleCount()
	}
	return 0
}

func series(t testing.TB, g prometheus.Gatherer, name string) []*dto.Metric {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name {
			return f.GetMetric()
		}
	}
	return nil
}

// TestUnitMetricsOfARelay: a YouTube upload whose three parts arrive one
// by one moves the relay's numbers by exactly what happened: every byte
// committed once, one session, one lag sample per part (and one from the
// last part to the video), the destination's moves, every message done.
// The chunk lines that finish a part carry its lag, and the completion
// line the time since the last part.
func TestUnitMetricsOfARelay(t *testing.T) {
	e := newUnitEnv(t)
	m := e.withMetrics()
	reg := m.Registry()
	u := e.create(threeParts, ytDest())
	file := unitFile(t, threeParts)
	for n := range u.PartCount() {
		e.putPart(u, file, n)
		e.mustHandle(partEventAt(u, n, time.Now()))
	}
	e.checkVideo(file)

	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"atomuploads_relay_bytes_committed_total", nil, float64(threeParts)},
		{"atomuploads_relay_sessions_total", []string{"event", metrics.SessionStarted}, 1},
		{"atomuploads_relay_sessions_total", []string{"event", metrics.SessionRestarted}, 0},
		{"atomuploads_queue_messages_handled_total", []string{"kind", "part", "outcome", metrics.OutcomeDone}, 3},
		{"atomuploads_destination_transitions_total", []string{"type", "youtube", "status", "upload"}, 1},
		{"atomuploads_destination_transitions_total", []string{"type", "youtube", "status", "transcoding"}, 1},
		{"atomuploads_upload_transitions_total", []string{"status", "processing"}, 1},
		{"atomuploads_youtube_errors_total", []string{"class", "temporary"}, 0},
	} {
		if got := metricValue(t, reg, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if got := metricValue(t, reg, "atomuploads_leases_total", "lease", "youtube", "event", metrics.LeaseAcquired); got < 1 {
		t.Errorf("youtube leases acquired = %v, want at least one", got)
	}
	if n := samples(t, reg, "atomuploads_relay_part_lag_seconds"); n != uint64(u.PartCount()) {
		t.Errorf("part lag: %d samples, want one per part (%d)", n, u.PartCount())
	}
	if n := samples(t, reg, "atomuploads_relay_last_part_to_complete_seconds"); n != 1 {
		t.Errorf("last part to complete: %d samples, want 1", n)
	}
	if n := samples(t, reg, "atomuploads_relay_chunk_duration_seconds"); n == 0 {
		t.Error("no chunk duration recorded")
	}

	withLag := 0
	for _, l := range e.logs.FilterMessage("chunk relayed").All() {
		if _, ok := l.ContextMap()["lagMs"]; ok {
			withLag++
		}
	}
	if withLag == 0 || withLag > u.PartCount() {
		t.Errorf("%d chunk lines with lagMs, want 1–%d (the chunks that finished a part)", withLag, u.PartCount())
	}
	done := e.logs.FilterMessage("YouTube upload complete").All()
	if len(done) != 1 {
		t.Fatalf("%d completion lines, want 1", len(done))
	}
	if _, ok := done[0].ContextMap()["sinceLastPartMs"]; !ok {
		t.Errorf("the completion line has no sinceLastPartMs: %v", done[0].ContextMap())
	}
}

// TestUnitMetricsWithoutEventTimes: parts whose events carry no time (the
// service's own part messages) take the object's Last-Modified; a part
// whose creation is unknown (a pin from before the times were kept) gives
// no lag sample, and nothing else changes.
func TestUnitMetricsWithoutEventTimes(t *testing.T) {
	e := newUnitEnv(t)
	m := e.withMetrics()
	u := e.create(threeParts, ytDest())
	file := unitFile(t, threeParts)
	for n := range u.PartCount() {
		e.arrive(u, file, n) // no eventTime; the fake S3 has no Last-Modified
	}
	e.checkVideo(file)
	reg := m.Registry()
	if got := metricValue(t, reg, "atomuploads_relay_bytes_committed_total"); got != float64(threeParts) {
		t.Errorf("bytes committed = %v, want %d", got, threeParts)
	}
	if n := samples(t, reg, "atomuploads_relay_part_lag_seconds"); n != 0 {
		t.Errorf("part lag: %d samples of parts of unknown creation, want none", n)
	}
}

// TestUnitMetricsOfOutcomes: each message counts under its kind and what
// became of it.
func TestUnitMetricsOfOutcomes(t *testing.T) {
	e := newUnitEnv(t)
	m := e.withMetrics()
	reg := m.Registry()

	e.mustHandle(`{"Event":"s3:TestEvent"}`)
	if res := e.handle(`{"atomUploads":{"kind":"fromTheFuture","atomId":"a","uploadId":"01M899983R3070777E1D50S2BK"}}`); !res.DeadLetter {
		t.Fatalf("unknown kind: %+v, want dead-lettered", res)
	}

	u := e.create(threeParts, ytDest())
	file := unitFile(t, threeParts)
	e.putPart(u, file, 0)
	e.yt.failNext("StartSession", quotaError())
	e.mustHandle(partEventAt(u, 0, time.Now())) // the part is done, the relay parks
	e.yt.failAlways("PutChunk", temporaryYouTubeError())

	v := e.create(threeParts, ytDest())
	e.putPart(v, file, 0)
	e.mustHandle(partEventAt(v, 0, time.Now())) // the relay keeps failing: retried later
	if res := e.handleOn(e.d, ownBody(worker.KindRelay, v, 0), 2); res.Err != nil {
		t.Fatalf("redelivered relay: %+v", res)
	}

	for _, c := range []struct {
		kind, outcome string
		want          float64
	}{
		{metrics.KindNone, metrics.OutcomeIgnored, 1},
		{metrics.KindNone, metrics.OutcomeDeadLettered, 1},
		{"part", metrics.OutcomeDone, 1},
		{"part", metrics.OutcomeRetried, 1},
		{"relay", metrics.OutcomeRedelivered, 1},
	} {
		if got := metricValue(t, reg, "atomuploads_queue_messages_handled_total", "kind", c.kind, "outcome", c.outcome); got != c.want {
			t.Errorf("handled{%s, %s} = %v, want %v", c.kind, c.outcome, got, c.want)
		}
	}
	if got := metricValue(t, reg, "atomuploads_youtube_errors_total", "class", "quota"); got != 1 {
		t.Errorf("youtube_errors{quota} = %v, want 1", got)
	}
	if got := metricValue(t, reg, "atomuploads_youtube_errors_total", "class", "temporary"); got < 1 {
		t.Errorf("youtube_errors{temporary} = %v, want the failed chunks", got)
	}
}

// TestUnitMetricsCountStatusChanges: a destination failing, and the upload
// with it, count once each, whichever write made them.
func TestUnitMetricsCountStatusChanges(t *testing.T) {
	e := newUnitEnv(t)
	m := e.withMetrics()
	u := e.create(threeParts, ytDest())
	file := unitFile(t, threeParts)
	e.putPart(u, file, 0)
	e.yt.failNext("StartSession", refusedError())
	e.mustHandle(partEventAt(u, 0, time.Now()))
	if d := e.get(u).Destination(upload.YouTube); d.Status != upload.DestFailed {
		t.Fatalf("youtube destination %s, want failed", d.Status)
	}
	reg := m.Registry()
	if got := metricValue(t, reg, "atomuploads_destination_transitions_total", "type", "youtube", "status", "failed"); got != 1 {
		t.Errorf("transitions{youtube, failed} = %v, want 1", got)
	}
	if got := metricValue(t, reg, "atomuploads_destination_transitions_total", "type", "youtube", "status", "upload"); got != 0 {
		t.Errorf("transitions{youtube, upload} = %v, want 0: it never started", got)
	}
	if got := metricValue(t, reg, "atomuploads_youtube_errors_total", "class", "refused"); got != 1 {
		t.Errorf("youtube_errors{refused} = %v, want 1", got)
	}
}

// depthSQS is the fake dead-letter queue with the queues' counts.
type depthSQS struct {
	*fakeSQS
	counts map[string][3]int // by queue URL: visible, in flight, delayed
}

func (q depthSQS) GetQueueAttributes(_ context.Context, in *sqs.GetQueueAttributesInput, _ ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error) {
	c, ok := q.counts[aws.ToString(in.QueueUrl)]
	if !ok {
		return nil, sqsError("AWS.SimpleQueueService.NonExistentQueue")
	}
	return &sqs.GetQueueAttributesOutput{Attributes: map[string]string{
		"ApproximateNumberOfMessages": strconv.Itoa(c[0]), "ApproximateNumberOfMessagesNotVisible": strconv.Itoa(c[1]),
		"ApproximateNumberOfMessagesDelayed": strconv.Itoa(c[2]),
	}}, nil
}

// TestUnitCensusCountsParkedRelays: the census sweep publishes how many
// live uploads are in each status, how many relays are parked, by what
// they wait for, and how many messages the queues hold; an instance that
// finds the census taken by another withdraws its own numbers.
func TestUnitCensusCountsParkedRelays(t *testing.T) {
	m := metrics.New("test")
	e := newSweepEnv(t, func(c *worker.SweepConfig) { c.Metrics = m })
	queues := depthSQS{fakeSQS: e.dlq, counts: map[string][3]int{unitQueueURL: {7, 3, 1}, unitDLQURL: {2, 0, 0}}}
	e.s = worker.NewSweeper(e.cfg, e.store, queues, nil, nil, zap.NewNop())
	park := func(u *upload.Upload, waitingFor string) {
		e.store.modify(t, u.AtomID, u.ID, func(u *upload.Upload) {
			u.Destination(upload.YouTube).Park(waitingFor, time.Now().Add(time.Hour), time.Now())
		})
	}
	park(e.create(true, ytDest()), upload.WaitYouTubeQuota)
	park(e.create(true, ytDest()), upload.WaitYouTubeQuota)
	park(e.create(true, ytDest()), upload.WaitYouTubeCredentials)
	e.create(true, ytDest())
	done := e.create(true, ytDest())
	e.store.modify(t, done.AtomID, done.ID, func(u *upload.Upload) { u.Status = upload.StatusCancelled })

	reg := m.Registry()
	e.start()
	waitUntil(t, "the census", func() bool {
		return metricValue(t, reg, "atomuploads_relays_parked", "waiting_for", "youtubeQuota") == 2
	})
	for reason, want := range map[string]float64{"youtubeCredentials": 1, "youtubeUploadLimit": 0} {
		if got := metricValue(t, reg, "atomuploads_relays_parked", "waiting_for", reason); got != want {
			t.Errorf("relays_parked{%s} = %v, want %v", reason, got, want)
		}
	}
	if got := metricValue(t, reg, "atomuploads_uploads_live", "status", "uploading"); got != 4 {
		t.Errorf("uploads_live{uploading} = %v, want the 4 not cancelled", got)
	}
	for _, c := range []struct {
		queue, state string
		want         float64
	}{{"main", "visible", 7}, {"main", "in_flight", 3}, {"main", "delayed", 1}, {"dead_letter", "visible", 2}} {
		if got := metricValue(t, reg, "atomuploads_queue_depth", "queue", c.queue, "state", c.state); got != c.want {
			t.Errorf("queue_depth{%s, %s} = %v, want %v", c.queue, c.state, got, c.want)
		}
	}

	e.store.setSweepLease("census", "sweeper-b", time.Now().Add(time.Hour))
	waitUntil(t, "the census withdrawn", func() bool {
		n, err := testutil.GatherAndCount(reg, "atomuploads_relays_parked", "atomuploads_queue_depth")
		return err == nil && n == 0
	})
}

// TestUnitMetricsTranscodeJobDuration: a transcode job followed to its
// end is timed from its start (kept in the record, so any instance's poll
// can time it) to the poll that saw it complete.
func TestUnitMetricsTranscodeJobDuration(t *testing.T) {
	e := newUnitEnv(t)
	m := e.withMetrics()
	u := e.assembled(e.create(threeParts))
	e.mustHandle(fullBody(u))
	d := e.get(u).Destination(upload.S3Bucket)
	if d.JobID != "job-1" || time.Since(d.JobStartedAt) > time.Minute {
		t.Fatalf("job %q started at %s, want job-1 with its start kept", d.JobID, d.JobStartedAt)
	}
	e.store.modify(t, u.AtomID, u.ID, func(u *upload.Upload) {
		u.Destination(upload.S3Bucket).JobStartedAt = time.Now().Add(-90 * time.Second)
	})
	e.tc.script(fakeJob{job: transcode.Job{State: transcode.StateComplete, Percent: 100, Outputs: []transcode.Output{{Key: "a/720p.mp4", Kind: transcode.KindMP4}}}})
	e.mustHandle(ownBody(worker.KindTranscodePoll, u, 0))
	if d := e.get(u).Destination(upload.S3Bucket); d.Status != upload.DestComplete {
		t.Fatalf("s3Bucket destination %s, want complete", d.Status)
	}
	var h *dto.Histogram
	for _, mt := range series(t, m.Registry(), "atomuploads_transcode_job_duration_seconds") {
		if l := mt.GetLabel(); len(l) == 1 && l[0].GetValue() == metrics.TranscodeComplete {
			h = mt.GetHistogram()
		}
	}
	if h.GetSampleCount() != 1 || h.GetSampleSum() < 90 || h.GetSampleSum() > 150 {
		t.Errorf("transcode_job_duration_seconds{complete}: %d samples, sum %.1f s; want one of about 90 s", h.GetSampleCount(), h.GetSampleSum())
	}
	if got := metricValue(t, m.Registry(), "atomuploads_transcode_jobs_total", "outcome", "complete"); got != 1 {
		t.Errorf("transcode_jobs_total{complete} = %v, want 1", got)
	}
}
