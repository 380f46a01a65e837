package worker

import (
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"atomuploads/metrics"
	"atomuploads/upload"
)

// TestStillWorking: work still in hand says so every stillWorkingEvery,
// with its kind and how long it has run, until it is done.
func TestStillWorking(t *testing.T) {
	every := stillWorkingEvery
	stillWorkingEvery = 5 * time.Millisecond
	t.Cleanup(func() { stillWorkingEvery = every })
	core, logs := observer.New(zapcore.InfoLevel)
	stop := stillWorking(zap.New(core).With(zap.String("uploadId", "u-1")), KindReassemble)
	for deadline := time.Now().Add(10 * time.Second); logs.FilterMessage("still working").Len() < 2; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no second \"still working\" line")
		}
	}
	stop()
	l := logs.FilterMessage("still working").All()[1].ContextMap()
	if l["kind"] != "reassemble" || l["uploadId"] != "u-1" || l["durationMs"] == nil {
		t.Errorf("still working line %v, want the job's fields, its kind and how long it has run", l)
	}
}

// BenchmarkObserveUpdate is what counting the status changes adds to one
// write of a record (the relay makes one per chunk): the statuses before
// and after compared, nothing changed.
func BenchmarkObserveUpdate(b *testing.B) {
	m := metrics.New("bench")
	u := &upload.Upload{Status: upload.StatusProcessing, Destinations: []upload.Destination{
		{Type: upload.YouTube, Status: upload.DestUpload}, {Type: upload.S3Bucket, Status: upload.DestWaiting}}}
	write := func(fn func(*upload.Upload) error) (*upload.Upload, error) { return u, fn(u) }
	change := func(*upload.Upload) error { return nil }
	b.ReportAllocs()
	for b.Loop() {
		_, _ = observeUpdate(m, change, write)
	}
}
