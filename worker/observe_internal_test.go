package worker

import (
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
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
