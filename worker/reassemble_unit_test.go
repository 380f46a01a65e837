package worker_test

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"atomuploads/upload"
	"atomuploads/worker"
)

// checkReassembled asserts the full object is file, made by one multipart
// copy, recorded, with nothing left behind.
func (e *unitEnv) checkReassembled(u *upload.Upload, file []byte) {
	e.t.Helper()
	full, ok := e.s3.object(unitBucket, u.FullKey())
	if !ok || !bytes.Equal(full, file) {
		e.t.Errorf("full object: present %t, %d bytes; want the %d bytes of the file", ok, len(full), len(file))
	}
	if n := e.s3.count("CreateMultipartUpload"); n != 1 {
		e.t.Errorf("%d multipart copies, want 1", n)
	}
	if got := e.get(u); !got.Assembled || got.Status != upload.StatusProcessing {
		e.t.Errorf("assembled %t, status %s; want assembled and processing", got.Assembled, got.Status)
	}
	if _, held := e.store.lease(u.AtomID, u.ID, upload.LeaseAssembly); held {
		e.t.Error("the assembly lease is still held")
	}
	e.checkS3Clean()
}

func TestUnitReassemblyRunsOnceWhenTwoHandlesRace(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	u := e.create(threeParts)
	file := unitFile(t, u.Size)
	e.allIn(u, file)
	copying, resume := make(chan struct{}), make(chan struct{})
	e.s3.onCall("UploadPartCopy", func(n int) {
		if n == 1 {
			close(copying)
			<-resume
		}
	})
	first := make(chan worker.Result)
	go func() { first <- e.handle(ownBody(worker.KindReassemble, u, 0)) }()
	<-copying
	// Another instance gets the same message while the copy runs.
	if res := e.handleOn(e.instance("unit-b"), ownBody(worker.KindReassemble, u, 0), 1); res != (worker.Result{}) {
		t.Errorf("second Handle = %+v, want the message deleted", res)
	}
	if n := e.logged("reassembly is under way elsewhere"); n != 1 {
		t.Errorf("%d under-way lines, want 1", n)
	}
	close(resume)
	if res := <-first; res.Err != nil {
		t.Fatalf("first Handle: %v", res.Err)
	}
	e.checkReassembled(u, file)

	// A late duplicate finds the record assembled.
	e.mustHandle(ownBody(worker.KindReassemble, u, 0))
	if n := e.s3.count("CreateMultipartUpload"); n != 1 {
		t.Errorf("%d multipart copies after a late duplicate, want 1", n)
	}
}

func TestUnitReassemblyRunsOnceUnderConcurrentHandles(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	u := e.create(threeParts)
	file := unitFile(t, u.Size)
	e.allIn(u, file)
	instances := []*worker.Dispatcher{e.d, e.instance("unit-b"), e.instance("unit-c")}
	var wg sync.WaitGroup
	for i := range 9 {
		wg.Go(func() {
			if res := e.handleOn(instances[i%3], ownBody(worker.KindReassemble, u, 0), 1); res.Err != nil {
				t.Errorf("Handle: %v", res.Err)
			}
		})
	}
	wg.Wait()
	e.checkReassembled(u, file)
	if n := e.logged("reassembled"); n != 1 {
		t.Errorf("%d reassembled lines, want 1", n)
	}
}

// TestUnitReassemblyFailureIsRetriedAndResumed: a failed reassembly keeps
// its multipart copy (recorded in the record as soon as it exists) and is
// retried on a message of its own, which resumes that copy: S3 is asked
// which parts are in, and only the rest are copied. Recording the copy is
// progress, so only a failure before it counts.
func TestUnitReassemblyFailureIsRetriedAndResumed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		op           string
		wantFailures int
		wantCreates  int // CreateMultipartUpload calls in all
	}{
		{op: "UploadPartCopy", wantFailures: 0, wantCreates: 1},
		{op: "CompleteMultipartUpload", wantFailures: 0, wantCreates: 1},
		{op: "CreateMultipartUpload", wantFailures: 1, wantCreates: 2},
	}
	for _, tt := range tests {
		t.Run(tt.op, func(t *testing.T) {
			t.Parallel()
			e := newUnitEnv(t)
			u := e.create(threeParts)
			file := unitFile(t, u.Size)
			e.allIn(u, file)
			e.s3.failNext(tt.op, apiError("AccessDenied"))
			if res := e.handle(ownBody(worker.KindReassemble, u, 0)); res != (worker.Result{}) {
				t.Fatalf("Handle = %+v, want the message deleted: the work goes on on a message of its own", res)
			}
			if n := e.s3.count("AbortMultipartUpload"); n != 0 {
				t.Errorf("%d aborts, want none: the copy is resumed", n)
			}
			if _, ok := e.s3.object(unitBucket, u.FullKey()); ok {
				t.Error("a full object after a failed copy")
			}
			got := e.get(u)
			if got.Assembled || got.Status.Terminal() {
				t.Errorf("assembled %t, status %s after a failed copy; want neither", got.Assembled, got.Status)
			}
			mpus := e.s3.mpuParts()
			if _, ok := mpus[got.Assembly.UploadID]; tt.wantFailures == 0 && (len(mpus) != 1 || !ok) {
				t.Errorf("multipart uploads %v, recorded %+v; want the one copy recorded", mpus, got.Assembly)
			}
			if _, held := e.store.lease(u.AtomID, u.ID, upload.LeaseAssembly); held {
				t.Error("the assembly lease is still held: the retry would wait for it")
			}
			retries := e.queue.ofKind(worker.KindReassemble)
			if len(retries) != 1 {
				t.Fatalf("reassemble messages %+v, want one retry", retries)
			}
			e.checkRetry(retries[0], worker.KindReassemble, tt.wantFailures, "S3 refused: AccessDenied")
			copiedBefore := e.s3.count("UploadPartCopy")
			e.mustHandle(retries[0].Body)
			full, _ := e.s3.object(unitBucket, u.FullKey())
			if !bytes.Equal(full, file) || !e.get(u).Assembled {
				t.Error("the retry did not reassemble the file")
			}
			if n := e.s3.count("CreateMultipartUpload"); n != tt.wantCreates {
				t.Errorf("%d multipart uploads started, want %d", n, tt.wantCreates)
			}
			var copied int
			for _, parts := range mpus {
				copied += len(parts)
			}
			if n := e.s3.count("UploadPartCopy") - copiedBefore; n != u.PartCount()-copied {
				t.Errorf("%d parts copied by the retry, want the %d not copied before", n, u.PartCount()-copied)
			}
			if tt.wantFailures == 0 && e.s3.count("ListParts") != 1 {
				t.Errorf("%d ListParts calls, want 1: the retry asks S3 what is in", e.s3.count("ListParts"))
			}
			if m, _, _ := e.s3.state(); m != 0 {
				t.Errorf("%d multipart uploads left behind", m)
			}
		})
	}
}

// TestUnitReassemblyTakeoverCopiesOnlyTheRest: a reassembler died after
// copying some parts; the record names its multipart upload. The next one
// lists the parts S3 has (a page at a time), copies only the others, and
// completes the same upload.
func TestUnitReassemblyTakeoverCopiesOnlyTheRest(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	e.s3.listPage = 2
	u := e.create(6*5*upload.MiB + 1) // 7 parts
	file := unitFile(t, u.Size)
	e.allIn(u, file)
	ctx := t.Context()
	mpu, err := e.s3.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(unitBucket), Key: aws.String(u.FullKey())})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 1, 2, 4, 6} {
		if _, err := e.s3.UploadPartCopy(ctx, &s3.UploadPartCopyInput{
			Bucket: aws.String(unitBucket), Key: aws.String(u.FullKey()), UploadId: mpu.UploadId, PartNumber: aws.Int32(int32(n + 1)),
			CopySource: aws.String(unitBucket + "/" + u.PartKey(n)),
		}); err != nil {
			t.Fatal(err)
		}
	}
	e.store.modify(t, u.AtomID, u.ID, func(u *upload.Upload) {
		u.Assembly = upload.Assembly{UploadID: aws.ToString(mpu.UploadId), Copied: 3} // its last checkpoint
		u.Settle(time.Now())
	})
	// The dead holder's lease has expired.
	e.store.setLease(t, u.AtomID, u.ID, upload.LeaseAssembly, "unit-dead#1", e.store.clock.Now().Add(-time.Second))
	before := e.s3.count("UploadPartCopy")
	e.mustHandle(ownBody(worker.KindReassemble, u, 0))
	full, _ := e.s3.object(unitBucket, u.FullKey())
	if !bytes.Equal(full, file) {
		t.Fatalf("full object of %d bytes, want the file's %d", len(full), len(file))
	}
	if n := e.s3.count("UploadPartCopy") - before; n != 2 {
		t.Errorf("%d parts copied, want the 2 S3 did not have", n)
	}
	if n, l := e.s3.count("CreateMultipartUpload"), e.s3.count("ListParts"); n != 1 || l != 3 {
		t.Errorf("%d multipart uploads started, %d ListParts pages; want the recorded one resumed, in 3 pages", n, l)
	}
	if n := e.logged("resuming the reassembly"); n != 1 {
		t.Errorf("%d resume lines, want 1", n)
	}
	got := e.get(u)
	if !got.Assembled || got.Assembly != (upload.Assembly{}) {
		t.Errorf("assembled %t, assembly %+v; want assembled, the copy forgotten", got.Assembled, got.Assembly)
	}
	e.checkS3Clean()
}

// TestUnitReassemblyOfACopyS3NoLongerKnowsStartsAgain: the recorded
// multipart upload is gone (a lifecycle rule aborted it): the reassembly
// starts a new one.
func TestUnitReassemblyOfACopyS3NoLongerKnowsStartsAgain(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	u := e.create(threeParts)
	file := unitFile(t, u.Size)
	e.allIn(u, file)
	e.store.modify(t, u.AtomID, u.ID, func(u *upload.Upload) { u.Assembly = upload.Assembly{UploadID: "mpu-aborted", Copied: 2} })
	e.mustHandle(ownBody(worker.KindReassemble, u, 0))
	e.checkReassembled(u, file)
	if n := e.s3.count("UploadPartCopy"); n != 3 {
		t.Errorf("%d parts copied, want all 3", n)
	}
}

// TestUnitReassemblyThatCannotAskS3IsRetried: the takeover cannot list the
// parts: nothing is started again, and the work is retried.
func TestUnitReassemblyThatCannotAskS3IsRetried(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	u := e.create(threeParts)
	e.allIn(u, unitFile(t, u.Size))
	e.store.modify(t, u.AtomID, u.ID, func(u *upload.Upload) { u.Assembly = upload.Assembly{UploadID: "mpu-7", Copied: 2} })
	e.s3.failNext("ListParts", apiError("SlowDown"))
	e.mustHandle(ownBody(worker.KindReassemble, u, 0))
	if n := e.s3.count("CreateMultipartUpload") + e.s3.count("UploadPartCopy"); n != 0 {
		t.Errorf("%d copy calls, want none", n)
	}
	if got := e.get(u).Assembly; got.UploadID != "mpu-7" {
		t.Errorf("assembly %+v, want the recorded copy kept", got)
	}
	retries := e.queue.ofKind(worker.KindReassemble)
	if len(retries) != 1 {
		t.Fatalf("reassemble messages %+v, want one", retries)
	}
	e.checkRetry(retries[0], worker.KindReassemble, 1, "S3 refused: SlowDown")
}

func TestUnitReassemblyParallelismIsBounded(t *testing.T) {
	t.Parallel()
	for _, limit := range []int{1, 3} {
		t.Run(fmt.Sprintf("at most %d", limit), func(t *testing.T) {
			t.Parallel()
			e := newUnitEnv(t, unitOpts{cfg: func(c *worker.Config) { c.ReassemblyParallelism = limit }})
			u := e.create(6*5*upload.MiB + 1) // 7 parts
			file := unitFile(t, u.Size)
			e.allIn(u, file)
			// Each copy waits for the limit to be reached, then a little for
			// a copy beyond it, which a missing bound would let in.
			// (The copies run in the step's goroutines: no t.Fatal here; a
			// limit never reached shows in the check below.)
			e.s3.onCall("UploadPartCopy", func(int) {
				for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
					if _, _, most := e.s3.state(); most >= limit {
						break
					}
				}
				for deadline := time.Now().Add(20 * time.Millisecond); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
					if _, _, most := e.s3.state(); most > limit {
						return
					}
				}
			})
			e.mustHandle(ownBody(worker.KindReassemble, u, 0))
			if _, _, most := e.s3.state(); most != limit {
				t.Errorf("%d part copies at once, want %d", most, limit)
			}
			if n := e.s3.count("UploadPartCopy"); n != 7 {
				t.Errorf("%d part copies, want 7", n)
			}
			e.checkReassembled(u, file)
		})
	}
}

func TestUnitReassemblyWaitsForEveryPart(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		setup func(e *unitEnv, u *upload.Upload, file []byte)
	}{
		{name: "a part is missing", setup: func(e *unitEnv, u *upload.Upload, file []byte) { e.markIn(u, file, 0, 2) }},
		{name: "the upload was cancelled", setup: func(e *unitEnv, u *upload.Upload, file []byte) {
			e.allIn(u, file)
			e.store.modify(e.t, u.AtomID, u.ID, func(u *upload.Upload) { _ = u.Cancel(time.Now()) })
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newUnitEnv(t)
			u := e.create(threeParts)
			file := unitFile(t, u.Size)
			tt.setup(e, u, file)
			e.mustHandle(ownBody(worker.KindReassemble, u, 0))
			if n := e.s3.count("CreateMultipartUpload"); n != 0 {
				t.Errorf("%d multipart copies, want none", n)
			}
			if e.get(u).Assembled {
				t.Error("recorded as assembled")
			}
		})
	}
}
