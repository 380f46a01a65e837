package worker_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"atomuploads/upload"
	"atomuploads/worker"
	"atomuploads/youtube/youtubetest"
)

// putPartChecked puts part n of file with S3's own SHA-256 checksum, which
// S3 verifies, as a browser or the CLI does.
func (e *env) putPartChecked(t testing.TB, u *upload.Upload, file []byte, n int) {
	t.Helper()
	p, _ := u.Part(n)
	_, err := e.st.S3.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(e.st.Bucket), Key: aws.String(u.PartKey(n)),
		Body: strings.NewReader(string(file[p.Start:p.End])), ChecksumAlgorithm: s3types.ChecksumAlgorithmSha256,
	})
	if err != nil {
		t.Fatalf("put part %d: %v", n, err)
	}
}

func requireChecksums(c *worker.Config) { c.RequirePartChecksums = true }

// TestPartOverwrittenBeforeItIsReadIsCheckedAfresh: a part overwritten
// with other bytes of the same size before anyone read it is checked and
// pinned afresh; YouTube and the original get the new bytes, and the
// digests prove it.
func TestPartOverwrittenBeforeItIsReadIsCheckedAfresh(t *testing.T) {
	e := newEnv(t)
	si := newStandIns(t, youtubetest.Options{ProcessingSteps: 1})
	e.startWorker(t, workerOpts{yt: si.ytClient, atom: si.atomCl, cfg: requireChecksums})
	const size = 2*5*upload.MiB + 4321
	first, _ := randomFile(t, size)
	second := append([]byte(nil), first...)
	copy(second[5*upload.MiB:], []byte("other bytes of the same size"))
	sum := sha256.Sum256(second)
	want := hex.EncodeToString(sum[:])
	u := e.newUploadWithSum(t, size, want, youTubeDest("Overwritten early"), upload.DestinationRequest{Type: upload.S3Bucket})
	e.putPartChecked(t, u, first, 1) // part 0 is missing: nobody reads part 1 yet
	waitFor(t, 30*time.Second, "part 1", func() bool { return e.get(t, u).Completed[1] })
	e.putPartChecked(t, u, second, 1)
	waitFor(t, 30*time.Second, "part 1 checked afresh", func() bool {
		return len(e.logs.With(t, "part changed before it was read; checked afresh")) == 1
	})
	e.putPartChecked(t, u, second, 0)
	e.putPartChecked(t, u, second, 2)
	got, v := si.videoOf(t, e, u, 60*time.Second)
	si.checkVideo(t, v, size, want)
	e.reassembledOnce(t, u, want)
	if d := got.Destination(upload.YouTube); d.SHA256 != want {
		t.Errorf("youtube details sha256 %q, want the proven digest %s", d.SHA256, want)
	}
	waitFor(t, 10*time.Second, "the original's digest", func() bool { return e.get(t, u).Destination(upload.S3Bucket).SHA256 == want })
}

// TestPartOverwrittenAfterItWasRelayedFailsTheUpload: once a part's bytes
// went to YouTube, another object under its key fails the upload, saying
// so; it is never relayed or copied.
func TestPartOverwrittenAfterItWasRelayedFailsTheUpload(t *testing.T) {
	e := newEnv(t)
	si := newStandIns(t, youtubetest.Options{})
	e.startWorker(t, workerOpts{yt: si.ytClient, atom: si.atomCl, cfg: requireChecksums})
	const size = 2*5*upload.MiB + 99
	file, _ := randomFile(t, size)
	u := e.newUpload(t, size, youTubeDest("Overwritten late"), upload.DestinationRequest{Type: upload.S3Bucket})
	e.putPartChecked(t, u, file, 0)
	waitFor(t, 30*time.Second, "part 0 on YouTube", func() bool {
		ss := si.yt.Sessions()
		return len(ss) == 1 && ss[0].Committed == 5*upload.MiB
	})
	other, _ := randomFile(t, size)
	e.putPartChecked(t, u, other, 0)
	waitFor(t, 30*time.Second, "the upload to fail", func() bool { return e.get(t, u).Status == upload.StatusFailed })
	if got := e.get(t, u); !strings.Contains(got.Error, "part 0 changed after it was sent to YouTube") {
		t.Errorf("error = %q, want it to say part 0 changed after it was sent to YouTube", got.Error)
	}
}

// TestWrongFileDigestFailsBeforeTheAsset: the start request named a
// SHA-256 the bytes do not have. YouTube's destination fails before the
// asset is added, and the original is refused too, both saying why.
func TestWrongFileDigestFailsBeforeTheAsset(t *testing.T) {
	e := newEnv(t)
	si := newStandIns(t, youtubetest.Options{ProcessingSteps: 1})
	e.startWorker(t, workerOpts{yt: si.ytClient, atom: si.atomCl, cfg: requireChecksums})
	const size = 3 * upload.MiB
	file, _ := randomFile(t, size)
	u := e.newUploadWithSum(t, size, strings.Repeat("ab", 32), youTubeDest("Wrong digest"), upload.DestinationRequest{Type: upload.S3Bucket})
	e.putPartChecked(t, u, file, 0)
	waitFor(t, 60*time.Second, "the upload to fail", func() bool { return e.get(t, u).Status == upload.StatusFailed })
	got := e.get(t, u)
	if d := got.Destination(upload.YouTube); d.Status != upload.DestFailed || !strings.Contains(d.Error, "does not match the file") {
		t.Errorf("youtube %s %q, want failed because the digest does not match", d.Status, d.Error)
	}
	if d := got.Destination(upload.S3Bucket); !strings.Contains(d.Error, "does not match the file") {
		t.Errorf("s3Bucket error %q, want the original refused", d.Error)
	}

	// YouTube alone: the relay's own digest refuses the video. The
	// reassembly, which would refuse the file too and may be first, is
	// held off by its lease, taken here.
	yu := e.newUploadWithSum(t, size, strings.Repeat("cd", 32), youTubeDest("Wrong digest, YouTube only"))
	held := upload.Lease{AtomID: yu.AtomID, UploadID: yu.ID, Name: upload.LeaseAssembly, Owner: "the test", TTL: time.Minute}
	if _, _, err := e.store.Acquire(testCtx(t, 10*time.Second), held); err != nil {
		t.Fatal(err)
	}
	e.putPartChecked(t, yu, file, 0)
	waitFor(t, 60*time.Second, "the YouTube destination to fail", func() bool {
		return e.get(t, yu).Destination(upload.YouTube).Status == upload.DestFailed
	})
	if d := e.get(t, yu).Destination(upload.YouTube); !strings.Contains(d.Error, "the video YouTube received does not match the file") || d.SHA256 == "" {
		t.Errorf("youtube error %q, sha256 %q; want the relay's digest to refuse it and be recorded", d.Error, d.SHA256)
	}
	time.Sleep(time.Second) // an asset call, if one were coming
	if n := len(si.atom.Calls(u.AtomID)); n != 0 {
		t.Errorf("%d asset calls, want none for a video that is not the file", n)
	}
}

// TestPartWithoutChecksumIsRefusedWhenRequired: a part sent without
// x-amz-checksum-sha256 fails the upload, naming the part, when the
// service requires checksums.
func TestPartWithoutChecksumIsRefusedWhenRequired(t *testing.T) {
	e := newEnv(t)
	e.startWorker(t, workerOpts{cfg: requireChecksums})
	u := e.newUpload(t, 3*upload.MiB)
	file, _ := randomFile(t, u.Size)
	e.putPart(t, u, file, 0) // no checksum
	waitFor(t, 30*time.Second, "the upload to fail", func() bool { return e.get(t, u).Status == upload.StatusFailed })
	if got := e.get(t, u); !strings.Contains(got.Error, "part 0 was sent without a SHA-256 checksum") {
		t.Errorf("error = %q, want it to name the part and the missing checksum", got.Error)
	}
}
