package worker

import (
	"crypto/rand"
	"slices"
	"testing"
	"time"

	"atomuploads/upload"
)

// dueUpload is a record of three parts (5 MiB, 5 MiB, 1000 bytes) with a
// YouTube and an s3Bucket destination, changed by fn.
func dueUpload(t *testing.T, fn func(u *upload.Upload, yt, s3 *upload.Destination)) *upload.Upload {
	t.Helper()
	id, err := upload.NewID(time.Now(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, err := upload.New(upload.StartRequest{
		Filename: "clip.mp4", Size: 2*5*upload.MiB + 1000, ContentType: "video/mp4",
		Destinations: []upload.DestinationRequest{
			{Type: upload.YouTube, YouTube: upload.YouTubeMetadata{Title: "Due", CategoryID: "25"}},
			{Type: upload.S3Bucket},
		},
	}, "atom-due", id, time.Now(), "eu-west-1", "bucket", 5*upload.MiB)
	if err != nil {
		t.Fatal(err)
	}
	fn(u, u.Destination(upload.YouTube), u.Destination(upload.S3Bucket))
	return u
}

// TestReconcilerDue: the work the reconciler re-drives for a quiet upload:
// what is due now and no lease covers. Work that waits on the browser
// (the next part) is never due, and neither is work this service does not
// do.
func TestReconcilerDue(t *testing.T) {
	t.Parallel()
	now := time.Now()
	live, expired := now.Add(time.Minute), now.Add(-time.Second)
	all := func(u *upload.Upload) {
		for n := range u.PartCount() {
			u.Completed[n] = true
		}
	}
	onYouTube := func(u *upload.Upload, yt *upload.Destination) {
		all(u)
		u.Assembled = true
		yt.Status, yt.VideoID, yt.UploadedBytes = upload.DestTranscoding, "vid1", u.Size
	}
	lease := func(u *upload.Upload, name upload.LeaseName, until time.Time) {
		if u.Leases == nil {
			u.Leases = map[upload.LeaseName]time.Time{}
		}
		u.Leases[name] = until
	}
	everything := reconciler{youtube: true, transcode: true, atomAPI: true, maxChunkBytes: 2 * upload.MiB}
	tests := []struct {
		name string
		r    reconciler // everything unless set
		fn   func(u *upload.Upload, yt, s3 *upload.Destination)
		want []Kind
	}{
		{
			name: "nothing in yet: it waits on the browser",
			fn:   func(*upload.Upload, *upload.Destination, *upload.Destination) {},
		},
		{
			name: "the first part is in: the relay",
			fn:   func(u *upload.Upload, _, _ *upload.Destination) { u.Completed[0] = true },
			want: []Kind{KindRelay},
		},
		{
			name: "a later part is in, the next one is not: it waits on the browser",
			fn:   func(u *upload.Upload, _, _ *upload.Destination) { u.Completed[1], u.Completed[2] = true, true },
		},
		{
			name: "relayed up to a missing part: it waits on the browser",
			fn: func(u *upload.Upload, yt, _ *upload.Destination) {
				u.Completed[0], u.Completed[2] = true, true
				yt.Status, yt.Session, yt.UploadedBytes = upload.DestUpload, "session", 5*upload.MiB
			},
		},
		{
			name: "relayed into a part that is in: the relay",
			fn: func(u *upload.Upload, yt, _ *upload.Destination) {
				u.Completed[0] = true
				yt.Status, yt.Session, yt.UploadedBytes = upload.DestUpload, "session", 2*upload.MiB
			},
			want: []Kind{KindRelay},
		},
		{
			name: "every part in: the reassembly and the relay",
			fn:   func(u *upload.Upload, _, _ *upload.Destination) { all(u) },
			want: []Kind{KindReassemble, KindRelay},
		},
		{
			name: "every part in, both leases live: nothing",
			fn: func(u *upload.Upload, _, _ *upload.Destination) {
				all(u)
				lease(u, upload.LeaseAssembly, live)
				lease(u, upload.LeaseYouTube, live)
			},
		},
		{
			name: "every part in, the assembly lease live",
			fn: func(u *upload.Upload, _, _ *upload.Destination) {
				all(u)
				lease(u, upload.LeaseAssembly, live)
			},
			want: []Kind{KindRelay},
		},
		{
			name: "every part in, the youtube lease live",
			fn: func(u *upload.Upload, _, _ *upload.Destination) {
				all(u)
				lease(u, upload.LeaseYouTube, live)
			},
			want: []Kind{KindReassemble},
		},
		{
			name: "every part in, both leases expired",
			fn: func(u *upload.Upload, _, _ *upload.Destination) {
				all(u)
				lease(u, upload.LeaseAssembly, expired)
				lease(u, upload.LeaseYouTube, expired)
			},
			want: []Kind{KindReassemble, KindRelay},
		},
		{
			name: "every byte on YouTube but no video named: the relay asks again",
			fn: func(u *upload.Upload, yt, _ *upload.Destination) {
				all(u)
				u.Assembled = true
				yt.Status, yt.Session, yt.UploadedBytes = upload.DestUpload, "session", u.Size
				lease(u, upload.LeaseYouTube, expired)
			},
			want: []Kind{KindRelay, KindFull},
		},
		{
			name: "assembled, the transcode not started: its start",
			fn: func(u *upload.Upload, _, _ *upload.Destination) {
				all(u)
				u.Assembled = true
				lease(u, upload.LeaseYouTube, live)
			},
			want: []Kind{KindFull},
		},
		{
			name: "on YouTube, asset not added, transcode not started",
			fn:   func(u *upload.Upload, yt, _ *upload.Destination) { onYouTube(u, yt) },
			want: []Kind{KindYouTubePoll, KindAsset, KindFull},
		},
		{
			name: "on YouTube, the asset lease live",
			fn: func(u *upload.Upload, yt, _ *upload.Destination) {
				onYouTube(u, yt)
				lease(u, upload.LeaseAsset, live)
			},
			want: []Kind{KindYouTubePoll, KindFull},
		},
		{
			name: "on YouTube, the asset lease expired",
			fn: func(u *upload.Upload, yt, _ *upload.Destination) {
				onYouTube(u, yt)
				lease(u, upload.LeaseAsset, expired)
			},
			want: []Kind{KindYouTubePoll, KindAsset, KindFull},
		},
		{
			name: "on YouTube with the asset, transcoding: the polls",
			fn: func(u *upload.Upload, yt, s3 *upload.Destination) {
				onYouTube(u, yt)
				yt.AssetAdded = true
				s3.Status, s3.JobID, s3.Attempt = upload.DestTranscoding, "job-1", 1
			},
			want: []Kind{KindYouTubePoll, KindTranscodePoll},
		},
		{
			name: "YouTube done, asset never added: the asset",
			fn: func(u *upload.Upload, yt, s3 *upload.Destination) {
				onYouTube(u, yt)
				yt.Status = upload.DestComplete
				s3.Status = upload.DestComplete
			},
			want: []Kind{KindAsset},
		},
		{
			name: "YouTube done, the asset given up: nothing",
			fn: func(u *upload.Upload, yt, s3 *upload.Destination) {
				onYouTube(u, yt)
				yt.Status, yt.AssetError = upload.DestComplete, "the video is on YouTube, but the atom API did not take it as an asset: gave up"
				s3.Status = upload.DestComplete
			},
		},
		{
			name: "YouTube rejected the video: no poll, no asset",
			fn: func(u *upload.Upload, yt, s3 *upload.Destination) {
				onYouTube(u, yt)
				yt.Fail("YouTube rejected the video: duplicate")
				s3.Status, s3.JobID = upload.DestTranscoding, "job-1"
			},
			want: []Kind{KindTranscodePoll},
		},
		{
			name: "the relay failed: nothing for YouTube",
			fn: func(u *upload.Upload, yt, _ *upload.Destination) {
				all(u)
				lease(u, upload.LeaseAssembly, live)
				yt.Fail("YouTube refused the upload")
			},
		},
		{
			name: "the transcode failed or finished: nothing for s3Bucket",
			fn: func(u *upload.Upload, yt, s3 *upload.Destination) {
				onYouTube(u, yt)
				yt.AssetAdded = true
				s3.Fail("transcode failed")
			},
			want: []Kind{KindYouTubePoll},
		},
		{
			name: "without YouTube: no relay, poll or asset",
			r:    reconciler{transcode: true, atomAPI: true, maxChunkBytes: 2 * upload.MiB},
			fn:   func(u *upload.Upload, yt, _ *upload.Destination) { onYouTube(u, yt) },
			want: []Kind{KindFull},
		},
		{
			name: "without YouTube, parts in: the reassembly only",
			r:    reconciler{transcode: true, atomAPI: true, maxChunkBytes: 2 * upload.MiB},
			fn:   func(u *upload.Upload, _, _ *upload.Destination) { all(u) },
			want: []Kind{KindReassemble},
		},
		{
			name: "without a transcoder: no transcode",
			r:    reconciler{youtube: true, atomAPI: true, maxChunkBytes: 2 * upload.MiB},
			fn:   func(u *upload.Upload, yt, _ *upload.Destination) { onYouTube(u, yt) },
			want: []Kind{KindYouTubePoll, KindAsset},
		},
		{
			name: "without the atom API: no asset",
			r:    reconciler{youtube: true, transcode: true, maxChunkBytes: 2 * upload.MiB},
			fn:   func(u *upload.Upload, yt, _ *upload.Destination) { onYouTube(u, yt) },
			want: []Kind{KindYouTubePoll, KindFull},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := tt.r
			if !r.youtube && !r.transcode && !r.atomAPI {
				r = everything
			}
			u := dueUpload(t, tt.fn)
			if got := r.due(u, now); !slices.Equal(got, tt.want) {
				t.Errorf("due = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestReconcilerDueWithoutADestination: an upload with one destination
// only has only its work due.
func TestReconcilerDueWithoutADestination(t *testing.T) {
	t.Parallel()
	r := reconciler{youtube: true, transcode: true, atomAPI: true, maxChunkBytes: 2 * upload.MiB}
	u := dueUpload(t, func(u *upload.Upload, _, _ *upload.Destination) {
		for n := range u.PartCount() {
			u.Completed[n] = true
		}
		u.Assembled = true
		u.Destinations = u.Destinations[1:] // s3Bucket only
	})
	if got := r.due(u, time.Now()); !slices.Equal(got, []Kind{KindFull}) {
		t.Errorf("due = %v, want [transcode]", got)
	}
}

func TestDestinationOf(t *testing.T) {
	t.Parallel()
	want := map[Kind]upload.DestinationType{
		KindPart: "", KindReassemble: "",
		KindRelay: upload.YouTube, KindYouTubePoll: upload.YouTube, KindAsset: upload.YouTube,
		KindFull: upload.S3Bucket, KindTranscodePoll: upload.S3Bucket,
	}
	for _, k := range ownKinds {
		if got := destinationOf(k); got != want[k] {
			t.Errorf("destinationOf(%s) = %q, want %q", k, got, want[k])
		}
	}
}
