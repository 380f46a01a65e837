package upload_test

import (
	"testing"
	"time"

	"atomuploads/upload"
)

func TestRetry(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name       string
		change     func(u *upload.Upload)
		wantErr    bool
		wantStatus upload.Status
		check      func(t *testing.T, u *upload.Upload)
	}{
		{name: "nothing failed", change: func(*upload.Upload) {}, wantErr: true},
		{name: "cancelled", change: func(u *upload.Upload) { _ = u.Cancel(now) }, wantErr: true},
		{name: "a relay that failed mid-file resumes in its session", change: func(u *upload.Upload) {
			u.Completed = map[int]bool{0: true, 1: true, 2: true, 3: true, 4: true}
			d := u.Destination(upload.YouTube)
			d.Session, d.UploadedBytes = "sealed", 5*upload.MiB
			d.Park(upload.WaitYouTubeUploadLimit, now, now)
			d.Fail("YouTube's upload limit did not lift")
			u.Fail("youtube: it did not lift", now)
		}, wantStatus: upload.StatusProcessing, check: func(t *testing.T, u *upload.Upload) {
			d := u.Destination(upload.YouTube)
			if d.Status != upload.DestUpload || d.Session != "sealed" || d.UploadedBytes != 5*upload.MiB || d.Error != "" || d.WaitingFor != "" {
				t.Errorf("youtube %+v, want upload in its session from 5 MiB, no error, not parked", d)
			}
			if s := u.Destination(upload.S3Bucket); s.Status != upload.DestWaiting || s.Error != "" {
				t.Errorf("s3Bucket %s %q, want it retried too (it failed with the upload)", s.Status, s.Error)
			}
			if u.Error != "" {
				t.Errorf("upload error %q, want none", u.Error)
			}
		}},
		{name: "a rejected video is sent again from byte 0", change: func(u *upload.Upload) {
			d := u.Destination(upload.YouTube)
			d.VideoID, d.UploadedBytes, d.ProcessingStatus = "vid", u.Size, "succeeded"
			d.AssetAdded, d.SHA256, d.HashState, d.HashedBytes, d.PolledAt = true, "ab12", []byte("state"), u.Size, now
			d.Fail("YouTube rejected the video as a duplicate")
		}, wantStatus: upload.StatusUploading, check: func(t *testing.T, u *upload.Upload) {
			d := u.Destination(upload.YouTube)
			if d.Status != upload.DestWaiting || d.VideoID != "" || d.UploadedBytes != 0 || d.Session != "" {
				t.Errorf("youtube %+v, want waiting for a new session from byte 0", d)
			}
			// The new video is a new asset, proven by a new digest.
			if d.AssetAdded || d.SHA256 != "" || d.HashState != nil || d.HashedBytes != 0 || !d.PolledAt.IsZero() {
				t.Errorf("youtube asset added %t, sha256 %q, hash state %d bytes at %d, polled %s; want all of the old video's reset",
					d.AssetAdded, d.SHA256, len(d.HashState), d.HashedBytes, d.PolledAt)
			}
		}},
		{name: "a transcode gets a new job", change: func(u *upload.Upload) {
			d := u.Destination(upload.S3Bucket)
			d.JobID, d.Attempt = "job-1", 1
			d.Fail("transcode failed")
		}, wantStatus: upload.StatusUploading, check: func(t *testing.T, u *upload.Upload) {
			if d := u.Destination(upload.S3Bucket); d.Status != upload.DestWaiting || d.JobID != "" || d.Attempt != 1 {
				t.Errorf("s3Bucket %+v, want waiting, no job, attempts kept", d)
			}
		}},
		{name: "an asset call given up", change: func(u *upload.Upload) {
			d := u.Destination(upload.YouTube)
			d.VideoID, d.Status, d.AssetError = "vid", upload.DestComplete, "the atom API did not take it"
		}, wantStatus: upload.StatusUploading, check: func(t *testing.T, u *upload.Upload) {
			if d := u.Destination(upload.YouTube); d.Status != upload.DestComplete || d.AssetError != "" || d.VideoID != "vid" {
				t.Errorf("youtube %+v, want complete with the video, error cleared", d)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := newUpload(t)
			tt.change(u)
			err := u.Retry(now)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Retry() error = %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				if upload.ErrorCode(err) != upload.ECONFLICT {
					t.Errorf("Retry() error code %s, want %s", upload.ErrorCode(err), upload.ECONFLICT)
				}
				return
			}
			if u.Status != tt.wantStatus {
				t.Errorf("status %s, want %s", u.Status, tt.wantStatus)
			}
			tt.check(t, u)
		})
	}
}

// newUpload is the contract's example upload (5 MiB parts), just started.
func newUpload(tb testing.TB) *upload.Upload {
	tb.Helper()
	u, err := upload.New(startRequest(), testAtomID, "01JZ4Q7V9X8Y6W5T3S2R1P0N9M", time.Now(), testRegion, testBucket, 5*upload.MiB)
	if err != nil {
		tb.Fatal(err)
	}
	return u
}
