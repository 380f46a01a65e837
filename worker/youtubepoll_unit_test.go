package worker_test

import (
	"testing"
	"time"

	"atomuploads/upload"
	"atomuploads/worker"
)

// onYouTube records u's video as uploaded to YouTube and being processed
// there (the asset added), and the original assembled.
func (e *unitEnv) onYouTube(u *upload.Upload, polledAt time.Time) {
	e.t.Helper()
	e.assembled(u)
	e.store.modify(e.t, u.AtomID, u.ID, func(u *upload.Upload) {
		d := u.Destination(upload.YouTube)
		d.Status, d.VideoID, d.UploadedBytes, d.AssetAdded, d.PolledAt = upload.DestTranscoding, "vidPOLL", u.Size, true, polledAt
	})
}

func TestUnitYouTubePoll(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		answer     fakeProcessing
		failures   int // of the poll message
		wantStatus upload.DestinationStatus
		wantProg   float64
		wantErr    string
		wantPoll   bool // the next poll, after the poll interval
		// wantRetry is the cause of the failed poll's retry, with
		// failures+1; "" for none.
		wantRetry  string
		wantUpload upload.Status
	}{
		{
			name:       "processing",
			answer:     fakeProcessing{p: upload.YouTubeProcessing{UploadStatus: "uploaded", ProcessingStatus: "processing", PartsProcessed: 3, PartsTotal: 10}},
			wantStatus: upload.DestTranscoding, wantProg: 30, wantPoll: true, wantUpload: upload.StatusProcessing,
		},
		{
			// An answer is progress: the failures before it are forgotten.
			name:       "processing after failed polls",
			answer:     fakeProcessing{p: upload.YouTubeProcessing{UploadStatus: "uploaded", ProcessingStatus: "processing", PartsProcessed: 5, PartsTotal: 10}},
			failures:   2,
			wantStatus: upload.DestTranscoding, wantProg: 50, wantPoll: true, wantUpload: upload.StatusProcessing,
		},
		{
			name:       "succeeded",
			answer:     fakeProcessing{p: upload.YouTubeProcessing{UploadStatus: "processed", ProcessingStatus: "succeeded"}},
			wantStatus: upload.DestComplete, wantProg: 100, wantUpload: upload.StatusComplete,
		},
		{
			name:       "rejected",
			answer:     fakeProcessing{p: upload.YouTubeProcessing{UploadStatus: "rejected", ProcessingStatus: "terminated", RejectionReason: "duplicate"}},
			wantStatus: upload.DestFailed, wantErr: "YouTube rejected the video as a duplicate of one already on the channel", wantUpload: upload.StatusFailed,
		},
		{
			name:       "poll failed",
			answer:     fakeProcessing{err: temporaryYouTubeError()},
			failures:   1,
			wantStatus: upload.DestTranscoding, wantRetry: "YouTube answered backendError", wantUpload: upload.StatusProcessing,
		},
		{
			name:       "poll failed once too often",
			answer:     fakeProcessing{err: upload.Errorf(upload.EUNAVAILABLE, "YouTube did not answer")},
			failures:   2,
			wantStatus: upload.DestFailed, wantErr: "gave up after 3 attempts without progress: YouTube did not answer",
			wantUpload: upload.StatusFailed,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newUnitEnv(t)
			u := e.create(threeParts, ytDest())
			e.onYouTube(u, time.Time{})
			e.yt.script(tt.answer)
			e.mustHandle(ownBody(worker.KindYouTubePoll, u, tt.failures))
			got := e.get(u)
			d := got.Destination(upload.YouTube)
			if d.Status != tt.wantStatus || d.Progress != tt.wantProg || d.Error != tt.wantErr {
				t.Errorf("youtube destination %s, progress %.0f, error %q; want %s, %.0f, %q", d.Status, d.Progress, d.Error, tt.wantStatus, tt.wantProg, tt.wantErr)
			}
			if got.Status != tt.wantUpload {
				t.Errorf("upload %s (%q), want %s", got.Status, got.Error, tt.wantUpload)
			}
			if tt.answer.err == nil && (d.ProcessingStatus != tt.answer.p.ProcessingStatus || time.Since(d.PolledAt) > time.Minute) {
				t.Errorf("processingStatus %q, polledAt %s; want %q recorded now", d.ProcessingStatus, d.PolledAt, tt.answer.p.ProcessingStatus)
			}
			polls := e.queue.ofKind(worker.KindYouTubePoll)
			switch {
			case tt.wantPoll && (len(polls) != 1 || polls[0].Failures != 0 || polls[0].Delay != e.cfg.PollInterval):
				t.Errorf("youtubePoll messages %+v, want one after %s", polls, e.cfg.PollInterval)
			case tt.wantRetry != "":
				if len(polls) != 1 {
					t.Fatalf("youtubePoll messages %+v, want the retry", polls)
				}
				e.checkRetry(polls[0], worker.KindYouTubePoll, tt.failures+1, tt.wantRetry)
			case !tt.wantPoll && tt.wantRetry == "" && len(polls) != 0:
				t.Errorf("youtubePoll messages %+v, want none", polls)
			}
		})
	}
}

func TestUnitYouTubePollsThatDoNothing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		opts  unitOpts
		setup func(e *unitEnv, u *upload.Upload)
	}{
		{name: "polled recently: a duplicate chain is cut", setup: func(e *unitEnv, u *upload.Upload) { e.onYouTube(u, time.Now()) }},
		{name: "no video yet", setup: func(*unitEnv, *upload.Upload) {}},
		{name: "no YouTube client", opts: unitOpts{noYouTube: true}, setup: func(e *unitEnv, u *upload.Upload) { e.onYouTube(u, time.Time{}) }},
		{name: "processing over", setup: func(e *unitEnv, u *upload.Upload) {
			e.onYouTube(u, time.Time{})
			e.store.modify(e.t, u.AtomID, u.ID, func(u *upload.Upload) { u.Destination(upload.YouTube).Status = upload.DestComplete })
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newUnitEnv(t, tt.opts)
			u := e.create(threeParts, ytDest())
			tt.setup(e, u)
			before := e.get(u)
			e.mustHandle(ownBody(worker.KindYouTubePoll, u, 0))
			if e.yt != nil && e.yt.count("Processing") != 0 {
				t.Errorf("%d processing queries, want none", e.yt.count("Processing"))
			}
			if n := len(e.queue.sent()); n != 0 {
				t.Errorf("%d messages sent, want none", n)
			}
			if got := e.get(u); got.Version != before.Version {
				t.Errorf("record version %d → %d, want unchanged", before.Version, got.Version)
			}
		})
	}
}
