package worker_test

import (
	"testing"

	"atomuploads/worker"
)

// TestUnitTranscodeStartedOnceForTwoDeliveries: the reassembly's own
// transcode step and S3's event of the original (or any two deliveries)
// race: both call Start with the same token, which yields one job, and
// only one records it; only that one may log "transcode started" and
// start a poll chain.
func TestUnitTranscodeStartedOnceForTwoDeliveries(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	u := e.assembled(e.create(threeParts))
	e.tc.onCall("Start", func(n int) {
		if n == 1 { // the other delivery comes while this one starts the job
			e.mustHandle(fullBody(u))
		}
	})
	e.mustHandle(ownBody(worker.KindFull, u, 0))
	if jobs := e.tc.started(); len(jobs) != 1 {
		t.Fatalf("%d jobs, want 1", len(jobs))
	}
	if n := e.logged("transcode started"); n != 1 {
		t.Errorf("%d transcode-started lines for one job, want 1", n)
	}
	if polls := e.queue.ofKind(worker.KindTranscodePoll); len(polls) != 1 {
		t.Errorf("%d transcodePoll messages for one job, want 1", len(polls))
	}
}
