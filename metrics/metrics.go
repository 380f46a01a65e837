// Package metrics is the service's Prometheus instrumentation: a registry
// of the service's own (never the global default one) with the Go runtime
// and process collectors, the service's metrics, and the health of its
// dependencies (Health), served on a listener of its own (Server).
//
// Components are given a *Metrics and call one of its methods at each
// instrumentation point. Every method is safe on a nil *Metrics, which
// records nothing: tests and components that run without metrics need
// nothing.
//
// No label holds an id. Every label value comes from a small fixed set
// (kinds, outcomes, statuses, classes, routes); a value outside its set is
// recorded as "other", so that a bug or a caller's input can never turn a
// label into a series per upload.
package metrics

import (
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// namespace prefixes every metric of the service.
const namespace = "atomuploads"

// Other is the label value of anything outside a label's set.
const Other = "other"

// Outcomes of a queue message (MessageHandled).
const (
	OutcomeDone         = "done"          // its effect is durable; the message is deleted
	OutcomeRetried      = "retried"       // its work failed and is tried again later
	OutcomeHandedBack   = "handed_back"   // the shutdown handed its work over to any instance, at no cost
	OutcomeRedelivered  = "redelivered"   // it came again (its handler died) and was moved onto a fresh message
	OutcomeDeadLettered = "dead_lettered" // given up, or of a kind this version does not know
	OutcomeIgnored      = "ignored"       // not work of this service: a test event, another bucket, an unknown or finished upload
)

// KindNone is the kind of a message that carries no task.
const KindNone = "none"

// Relay session events (RelaySession).
const (
	SessionStarted   = "started"   // a YouTube resumable session was started
	SessionResumed   = "resumed"   // a writer asked YouTube for the committed offset and went on from there
	SessionRestarted = "restarted" // the session was gone (expired): a new one from byte 0
)

// Lease events (Lease).
const (
	LeaseAcquired  = "acquired"   // a turn at the lease began
	LeaseTakenOver = "taken_over" // …taken from a holder that did not release it (expired or abandoned)
	LeaseBusy      = "busy"       // another holder had it
	LeaseLost      = "lost"       // the holder lost it (or could not renew it) during its turn
)

// Outcomes of the atom API's asset call (AssetCall).
const (
	AssetAdded   = "added"   // the atom API took the asset
	AssetPresent = "present" // the atom had the video already
	AssetFailed  = "failed"  // the call failed; it is retried
)

// Outcomes of transcode jobs as the worker follows them (TranscodeJob)
// and of ffmpeg runs (FFmpegFinished).
const (
	TranscodeStarted  = "started"
	TranscodeComplete = "complete"
	TranscodeFailed   = "failed"
	TranscodeLost     = "lost" // the backend lost the job; it is started again, or fails
)

// The label sets. Values outside them are recorded as Other.
var (
	kinds = set(KindNone, "part", "transcode", "relay", "reassemble", "transcodePoll", "youtubePoll", "asset")
	// messageOutcomes are the outcomes of a message.
	messageOutcomes = set(OutcomeDone, OutcomeRetried, OutcomeHandedBack, OutcomeRedelivered, OutcomeDeadLettered, OutcomeIgnored)
	sessionEvents   = set(SessionStarted, SessionResumed, SessionRestarted)
	// youTubeClasses are youtube.Class's names.
	youTubeClasses   = set("temporary", "quota", "uploadLimit", "credentials", "request", "refused")
	destinationTypes = set("youtube", "s3Bucket")
	destStatuses     = set("waiting", "upload", "transcoding", "complete", "failed")
	uploadStatuses   = set("uploading", "processing", "complete", "failed", "cancelled", "expired")
	leaseNames       = set("youtube", "assembly", "asset")
	leaseEvents      = set(LeaseAcquired, LeaseTakenOver, LeaseBusy, LeaseLost)
	assetOutcomes    = set(AssetAdded, AssetPresent, AssetFailed)
	transcodeEvents  = set(TranscodeStarted, TranscodeComplete, TranscodeFailed, TranscodeLost)
	httpMethods      = set("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
	reassemblyEnds   = set("done", "failed")
)

type labelSet map[string]bool

func set(values ...string) labelSet {
	s := labelSet{}
	for _, v := range values {
		s[v] = true
	}
	return s
}

// of is v if it is in the set, else Other.
func (s labelSet) of(v string) string {
	if s[v] {
		return v
	}
	return Other
}

// Buckets of the histograms, in seconds.
var (
	// handlerBuckets: a part event takes tens of milliseconds, a relay
	// turn or a reassembly minutes.
	handlerBuckets = []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 900}
	// chunkBuckets: one PUT of up to youtube.maxChunkBytes.
	chunkBuckets = []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300}
	// lagBuckets: the relay keeps up when a part reaches YouTube within
	// seconds of landing in S3; a parked relay's lag is hours.
	lagBuckets = []float64{.1, .25, .5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600}
	// completeBuckets: from the start request to a destination complete.
	completeBuckets = []float64{10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 2 * 3600, 6 * 3600, 24 * 3600, 72 * 3600}
	// jobBuckets: a reassembly or an ffmpeg run.
	jobBuckets = []float64{.1, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}
)

// Metrics is the service's instrumentation. The zero value is not usable:
// New makes one; a nil *Metrics records nothing.
type Metrics struct {
	reg    *prometheus.Registry
	health *Health
	routes atomic.Pointer[labelSet] // the API's route patterns (Routes)

	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec

	received       prometheus.Counter
	receiveErrors  prometheus.Counter
	inFlight       prometheus.Gauge
	handled        *prometheus.CounterVec
	handleDuration *prometheus.HistogramVec

	bytesCommitted     prometheus.Counter
	chunkDuration      prometheus.Histogram
	partLag            prometheus.Histogram
	lastPartToComplete prometheus.Histogram
	sessions           *prometheus.CounterVec
	youTubeErrors      *prometheus.CounterVec

	destTransitions   *prometheus.CounterVec
	uploadTransitions *prometheus.CounterVec
	timeToComplete    *prometheus.HistogramVec
	parked            *prometheus.GaugeVec
	live              *prometheus.GaugeVec
	queueDepth        *prometheus.GaugeVec

	reassemblyDuration prometheus.Histogram
	reassemblyBytes    prometheus.Counter
	reassemblies       *prometheus.CounterVec
	transcodeJobs      *prometheus.CounterVec
	transcodeDuration  *prometheus.HistogramVec
	ffmpegRunning      prometheus.Gauge
	ffmpegDuration     *prometheus.HistogramVec

	leases     *prometheus.CounterVec
	assetCalls *prometheus.CounterVec

	dependencyRequests *prometheus.CounterVec
}

// New returns the service's metrics on a registry of their own, with the
// Go runtime and process collectors and a build_info gauge of version.
func New(version string) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{reg: reg, health: newHealth()}
	f := factory{reg}

	m.httpRequests = f.counterVec("http_requests_total", "API requests by route (the route's pattern), method and status class (2xx, 4xx, 5xx).", "route", "method", "status_class")
	m.httpDuration = f.histogramVec("http_request_duration_seconds", "API request latency by route.", prometheus.DefBuckets, "route")

	m.received = f.counter("queue_messages_received_total", "Messages received from the queue.")
	m.receiveErrors = f.counter("queue_receive_errors_total", "Failed ReceiveMessage calls on the queue.")
	m.inFlight = f.gauge("queue_messages_in_flight", "Messages being handled by this process now.")
	m.handled = f.counterVec("queue_messages_handled_total", "Messages handled, by the kind of work they carry and what became of them: done, retried, handed_back, redelivered, dead_lettered, ignored.", "kind", "outcome")
	m.handleDuration = f.histogramVec("queue_handle_duration_seconds", "How long handling a message took, by kind (including the steps it made due at once).", handlerBuckets, "kind")

	m.bytesCommitted = f.counter("relay_bytes_committed_total", "Bytes YouTube committed, as the relay recorded them (again after a session restarted from zero).")
	m.chunkDuration = f.histogram("relay_chunk_duration_seconds", "Duration of one chunk PUT to YouTube, reading the parts from S3 included.", chunkBuckets)
	m.partLag = f.histogram("relay_part_lag_seconds", "Part-to-YouTube lag: seconds from a part's object being created in S3 to its last byte committed by YouTube, one sample per part.", lagBuckets)
	m.lastPartToComplete = f.histogram("relay_last_part_to_complete_seconds", "Seconds from the last part of an upload landing in S3 to YouTube having the whole video.", lagBuckets)
	m.sessions = f.counterVec("relay_sessions_total", "YouTube resumable sessions: started, resumed (a writer asked YouTube where it stood and went on), restarted (gone, sent again from zero).", "event")
	m.youTubeErrors = f.counterVec("youtube_errors_total", "Errors YouTube answered (or failures to reach it), by class: temporary, quota, uploadLimit, credentials, request, refused.", "class")

	m.destTransitions = f.counterVec("destination_transitions_total", "Destination status changes, by destination type and the status moved to.", "type", "status")
	m.uploadTransitions = f.counterVec("upload_transitions_total", "Upload status changes made by the worker, by the status moved to.", "status")
	m.timeToComplete = f.histogramVec("destination_time_to_complete_seconds", "Seconds from an upload's start to one of its destinations complete, by destination type.", completeBuckets, "type")
	m.parked = f.gaugeVec("relays_parked", "YouTube destinations of live uploads parked, by what they wait for; published by the one instance running the census sweep (use max across instances).", "waiting_for")
	m.live = f.gaugeVec("uploads_live", "Uploads that are not terminal, by status; published by the one instance running the census sweep (use max across instances).", "status")
	m.queueDepth = f.gaugeVec("queue_depth", "Messages on the queue (main) and the dead-letter queue (dead_letter) by state (visible, in_flight, delayed), as SQS approximates them; published by the one instance running the census sweep (use max across instances).", "queue", "state")

	m.reassemblyDuration = f.histogram("reassembly_duration_seconds", "Duration of a reassembly (multipart copy of the parts into the original) that finished.", jobBuckets)
	m.reassemblyBytes = f.counter("reassembly_bytes_copied_total", "Bytes copied by UploadPartCopy into originals.")
	m.reassemblies = f.counterVec("reassemblies_total", "Reassembly attempts, by outcome: done or failed.", "outcome")
	m.transcodeJobs = f.counterVec("transcode_jobs_total", "Transcode jobs as the worker follows them: started, complete, failed, lost.", "outcome")
	m.transcodeDuration = f.histogramVec("transcode_job_duration_seconds", "Duration of transcode jobs (MediaConvert or ffmpeg) as the worker follows them, from the start to the poll that saw the end, by outcome: complete, failed, lost.", completeBuckets, "outcome")
	m.ffmpegRunning = f.gauge("ffmpeg_jobs_running", "ffmpeg transcode jobs running in this process.")
	m.ffmpegDuration = f.histogramVec("ffmpeg_job_duration_seconds", "Duration of ffmpeg transcode jobs (download, probe, encode, upload), by outcome: complete, failed, lost.", jobBuckets, "outcome")

	m.leases = f.counterVec("leases_total", "Turns at the upload leases (youtube, assembly, asset): acquired, taken_over (from a holder that did not release it), busy (held by another), lost.", "lease", "event")
	m.assetCalls = f.counterVec("atomapi_asset_calls_total", "Calls adding the YouTube video to the atom, by outcome: added, present (the atom had it), failed.", "outcome")

	m.dependencyRequests = f.counterVec("dependency_requests_total", "Calls to the service's dependencies (dynamodb, s3, sqs, sts, mediaconvert, youtube, youtubeToken, atomApi) by operation and outcome (ok or error).", "dependency", "operation", "outcome")

	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "build_info", Help: "1, labelled with the service's version."}, []string{"version"})
	buildInfo.WithLabelValues(version).Set(1)
	reg.MustRegister(buildInfo, m.health,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.zero()
	return m
}

// zero creates the series of the label values that alarms watch, so that
// they exist (at 0) before the first event and rate() sees the first one.
func (m *Metrics) zero() {
	for k := range kinds {
		for o := range messageOutcomes {
			m.handled.WithLabelValues(k, o)
		}
	}
	for e := range sessionEvents {
		m.sessions.WithLabelValues(e)
	}
	for c := range youTubeClasses {
		m.youTubeErrors.WithLabelValues(c)
	}
	for t := range destinationTypes {
		for s := range destStatuses {
			m.destTransitions.WithLabelValues(t, s)
		}
	}
	for s := range uploadStatuses {
		m.uploadTransitions.WithLabelValues(s)
	}
	for o := range reassemblyEnds {
		m.reassemblies.WithLabelValues(o)
	}
	for o := range transcodeEvents {
		m.transcodeJobs.WithLabelValues(o)
	}
	for o := range assetOutcomes {
		m.assetCalls.WithLabelValues(o)
	}
}

// Registry is the service's registry (for Server, and tests).
func (m *Metrics) Registry() *prometheus.Registry {
	if m == nil {
		return nil
	}
	return m.reg
}

// Health is the health of the process's dependencies; nil on a nil
// *Metrics (Health's methods are nil-safe too).
func (m *Metrics) Health() *Health {
	if m == nil {
		return nil
	}
	return m.health
}

// Routes sets the API's route patterns (such as
// "/api2/atom/:atomId/uploads"): the only route labels Request records.
func (m *Metrics) Routes(patterns ...string) {
	if m == nil {
		return
	}
	s := set(patterns...)
	m.routes.Store(&s)
}

// Request records one API request: route is the matched route's pattern
// (anything but one of Routes is recorded as Other: a path a client made
// up could hold ids), status the HTTP status answered.
func (m *Metrics) Request(route, method string, status int, d time.Duration) {
	if m == nil {
		return
	}
	if r := m.routes.Load(); r == nil || !(*r)[route] {
		route = Other
	}
	m.httpRequests.WithLabelValues(route, httpMethods.of(method), statusClass(status)).Inc()
	m.httpDuration.WithLabelValues(route).Observe(d.Seconds())
}

// statusClass is "2xx" for 200–299, and so on.
func statusClass(status int) string {
	if status < 100 || status > 599 {
		return Other
	}
	return strconv.Itoa(status/100) + "xx"
}

// Received records n messages received from the queue.
func (m *Metrics) Received(n int) {
	if m == nil {
		return
	}
	m.received.Add(float64(n))
}

// ReceiveFailed records a failed ReceiveMessage call.
func (m *Metrics) ReceiveFailed() {
	if m == nil {
		return
	}
	m.receiveErrors.Inc()
}

// InFlight counts a message in hand (+1) or done with (-1).
func (m *Metrics) InFlight(delta int) {
	if m == nil {
		return
	}
	m.inFlight.Add(float64(delta))
}

// MessageHandled records what became of a message carrying work of kind
// (KindNone when it carried none), and how long it took.
func (m *Metrics) MessageHandled(kind, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	kind = kinds.of(kind)
	m.handled.WithLabelValues(kind, messageOutcomes.of(outcome)).Inc()
	m.handleDuration.WithLabelValues(kind).Observe(d.Seconds())
}

// ChunkRelayed records one chunk PUT to YouTube that YouTube answered.
func (m *Metrics) ChunkRelayed(d time.Duration) {
	if m == nil {
		return
	}
	m.chunkDuration.Observe(d.Seconds())
}

// Committed records bytes YouTube newly committed.
func (m *Metrics) Committed(bytes int64) {
	if m == nil || bytes <= 0 {
		return
	}
	m.bytesCommitted.Add(float64(bytes))
}

// PartRelayed records a part's lag: from its object's creation in S3 to
// its last byte committed by YouTube.
func (m *Metrics) PartRelayed(lag time.Duration) {
	if m == nil {
		return
	}
	m.partLag.Observe(max(lag, 0).Seconds())
}

// YouTubeComplete records the time from the last part landing in S3 to
// YouTube having the whole video.
func (m *Metrics) YouTubeComplete(sinceLastPart time.Duration) {
	if m == nil {
		return
	}
	m.lastPartToComplete.Observe(max(sinceLastPart, 0).Seconds())
}

// RelaySession records a session event: SessionStarted, SessionResumed or
// SessionRestarted.
func (m *Metrics) RelaySession(event string) {
	if m == nil {
		return
	}
	m.sessions.WithLabelValues(sessionEvents.of(event)).Inc()
}

// YouTubeError records an error YouTube answered, by the name of its
// youtube.Class.
func (m *Metrics) YouTubeError(class string) {
	if m == nil {
		return
	}
	m.youTubeErrors.WithLabelValues(youTubeClasses.of(class)).Inc()
}

// DestinationMoved records a destination of type typ moving to status,
// and, when status is complete, the time since its upload started.
func (m *Metrics) DestinationMoved(typ, status string, sinceStart time.Duration) {
	if m == nil {
		return
	}
	typ = destinationTypes.of(typ)
	m.destTransitions.WithLabelValues(typ, destStatuses.of(status)).Inc()
	if status == "complete" {
		m.timeToComplete.WithLabelValues(typ).Observe(max(sinceStart, 0).Seconds())
	}
}

// UploadMoved records an upload moving to status.
func (m *Metrics) UploadMoved(status string) {
	if m == nil {
		return
	}
	m.uploadTransitions.WithLabelValues(uploadStatuses.of(status)).Inc()
}

// Census publishes a count of the live uploads: how many are in each
// status, and how many YouTube destinations are parked by what they wait
// for. Every waitingFor value is published, 0 when none waits for it.
func (m *Metrics) Census(byStatus, parkedBy map[string]int) {
	if m == nil {
		return
	}
	publish(m.live, byStatus, "uploading", "processing")
	publish(m.parked, parkedBy, "youtubeQuota", "youtubeUploadLimit", "youtubeCredentials")
}

// publish sets the gauges of the known values to their counts (0 when
// absent), and the Other gauge to the count of the rest, if any.
func publish(g *prometheus.GaugeVec, counts map[string]int, known ...string) {
	other := 0
	for v, n := range counts {
		if !slices.Contains(known, v) {
			other += n
		}
	}
	for _, v := range known {
		g.WithLabelValues(v).Set(float64(counts[v]))
	}
	if other > 0 {
		g.WithLabelValues(Other).Set(float64(other))
	} else {
		g.DeleteLabelValues(Other)
	}
}

// Queues of QueueDepth.
const (
	QueueMain       = "main"
	QueueDeadLetter = "dead_letter"
)

// QueueDepth publishes how many messages a queue (QueueMain,
// QueueDeadLetter) holds: visible, in flight, delayed.
func (m *Metrics) QueueDepth(queue string, visible, inFlight, delayed int) {
	if m == nil {
		return
	}
	if queue != QueueMain && queue != QueueDeadLetter {
		queue = Other
	}
	m.queueDepth.WithLabelValues(queue, "visible").Set(float64(visible))
	m.queueDepth.WithLabelValues(queue, "in_flight").Set(float64(inFlight))
	m.queueDepth.WithLabelValues(queue, "delayed").Set(float64(delayed))
}

// CensusElsewhere withdraws this process's census: another instance runs
// the census sweep now, and publishes it.
func (m *Metrics) CensusElsewhere() {
	if m == nil {
		return
	}
	m.live.Reset()
	m.parked.Reset()
	m.queueDepth.Reset()
}

// Reassembled records a reassembly that finished, and how long it took.
func (m *Metrics) Reassembled(d time.Duration) {
	if m == nil {
		return
	}
	m.reassemblies.WithLabelValues("done").Inc()
	m.reassemblyDuration.Observe(d.Seconds())
}

// ReassemblyFailed records a reassembly attempt that failed.
func (m *Metrics) ReassemblyFailed() {
	if m == nil {
		return
	}
	m.reassemblies.WithLabelValues("failed").Inc()
}

// PartCopied records bytes copied into an original.
func (m *Metrics) PartCopied(bytes int64) {
	if m == nil {
		return
	}
	m.reassemblyBytes.Add(float64(bytes))
}

// TranscodeJob records a transcode job event as the worker follows it:
// TranscodeStarted, TranscodeComplete, TranscodeFailed or TranscodeLost.
func (m *Metrics) TranscodeJob(event string) {
	if m == nil {
		return
	}
	m.transcodeJobs.WithLabelValues(transcodeEvents.of(event)).Inc()
}

// TranscodeDuration records how long a transcode job the worker followed
// ran, by how it ended: TranscodeComplete, TranscodeFailed or
// TranscodeLost.
func (m *Metrics) TranscodeDuration(outcome string, d time.Duration) {
	if m == nil {
		return
	}
	m.transcodeDuration.WithLabelValues(transcodeEvents.of(outcome)).Observe(max(d, 0).Seconds())
}

// FFmpegStarted records an ffmpeg job starting to run in this process.
func (m *Metrics) FFmpegStarted() {
	if m == nil {
		return
	}
	m.ffmpegRunning.Inc()
}

// FFmpegFinished records an ffmpeg job of this process ending (complete,
// failed or lost) after d.
func (m *Metrics) FFmpegFinished(outcome string, d time.Duration) {
	if m == nil {
		return
	}
	m.ffmpegRunning.Dec()
	m.ffmpegDuration.WithLabelValues(transcodeEvents.of(outcome)).Observe(d.Seconds())
}

// Lease records a lease event (LeaseAcquired, …) of an upload lease.
func (m *Metrics) Lease(name, event string) {
	if m == nil {
		return
	}
	m.leases.WithLabelValues(leaseNames.of(name), leaseEvents.of(event)).Inc()
}

// AssetCall records the outcome of an asset call: AssetAdded,
// AssetPresent or AssetFailed.
func (m *Metrics) AssetCall(outcome string) {
	if m == nil {
		return
	}
	m.assetCalls.WithLabelValues(assetOutcomes.of(outcome)).Inc()
}

// factory makes metrics of the namespace and registers them.
type factory struct{ reg *prometheus.Registry }

func (f factory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help})
	f.reg.MustRegister(c)
	return c
}

func (f factory) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, labels)
	f.reg.MustRegister(c)
	return c
}

func (f factory) gauge(name, help string) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help})
	f.reg.MustRegister(g)
	return g
}

func (f factory) gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help}, labels)
	f.reg.MustRegister(g)
	return g
}

func (f factory) histogram(name, help string, buckets []float64) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: name, Help: help, Buckets: buckets})
	f.reg.MustRegister(h)
	return h
}

func (f factory) histogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: name, Help: help, Buckets: buckets}, labels)
	f.reg.MustRegister(h)
	return h
}
