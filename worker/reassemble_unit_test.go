package worker_test

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

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

func TestUnitReassemblyFailureIsAbortedAndRetried(t *testing.T) {
	t.Parallel()
	errS3 := errors.New("AccessDenied: the task role may not read the parts")
	tests := []struct {
		op        string
		wantAbort int
	}{
		{op: "UploadPartCopy", wantAbort: 1},
		{op: "CompleteMultipartUpload", wantAbort: 1},
		{op: "CreateMultipartUpload", wantAbort: 0},
	}
	for _, tt := range tests {
		t.Run(tt.op, func(t *testing.T) {
			t.Parallel()
			e := newUnitEnv(t)
			u := e.create(threeParts)
			file := unitFile(t, u.Size)
			e.allIn(u, file)
			e.s3.failNext(tt.op, errS3)
			res := e.handle(ownBody(worker.KindReassemble, u, 0))
			if !errors.Is(res.Err, errS3) {
				t.Fatalf("Handle = %+v, want the S3 error: the message is tried again", res)
			}
			if n := e.s3.count("AbortMultipartUpload"); n != tt.wantAbort {
				t.Errorf("%d aborts, want %d", n, tt.wantAbort)
			}
			if _, ok := e.s3.object(unitBucket, u.FullKey()); ok {
				t.Error("a full object after a failed copy")
			}
			if mpus, _, _ := e.s3.state(); mpus != 0 {
				t.Errorf("%d multipart uploads left behind", mpus)
			}
			if got := e.get(u); got.Assembled || got.Status.Terminal() {
				t.Errorf("assembled %t, status %s after a failed copy; want neither", got.Assembled, got.Status)
			}
			if _, held := e.store.lease(u.AtomID, u.ID, upload.LeaseAssembly); held {
				t.Error("the assembly lease is still held: the retry would wait for it")
			}
			e.mustHandle(ownBody(worker.KindReassemble, u, 0))
			if full, _ := e.s3.object(unitBucket, u.FullKey()); !bytes.Equal(full, file) || !e.get(u).Assembled {
				t.Error("the retried message did not reassemble the file")
			}
		})
	}
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
