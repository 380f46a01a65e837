package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awscreds "github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"atomuploads/api/rest"
	"atomuploads/atomapi/atomapitest"
	"atomuploads/devstack/stacktest"
	"atomuploads/youtube/youtubetest"
)

// record is an upload record as the API renders it.
type record = rest.Upload

func apiCall(ctx context.Context, method, url string, body any) (record, int, error) {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		return record{}, 0, err
	}
	req.Header.Set("Authorization", "Bearer test-token-0123456789")
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return record{}, 0, err
	}
	defer res.Body.Close()
	var rec record
	b, _ := io.ReadAll(res.Body)
	_ = json.Unmarshal(b, &rec)
	return rec, res.StatusCode, nil
}

// browserPut puts the parts with the upload's temporary credentials, as the
// media tool does.
func browserPut(ctx context.Context, st *stacktest.Stack, rec record, file []byte, order []int) error {
	c := rec.Credentials
	client := s3.NewFromConfig(st.AWS, func(o *s3.Options) {
		o.UsePathStyle = true
		o.Credentials = awscreds.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, c.SessionToken)
	})
	for _, n := range order {
		p := rec.Parts[n]
		if _, err := client.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(st.Bucket), Key: aws.String(p.Key), Body: bytes.NewReader(file[p.Start:p.End]),
			ChecksumAlgorithm: s3types.ChecksumAlgorithmSha256,
		}); err != nil {
			return fmt.Errorf("put part %d: %w", n, err)
		}
	}
	return nil
}

// TestKilledAtAnyMomentLosesNothing kills the service with SIGKILL at
// random moments of 20 uploads, restarts it each time, and checks that
// every upload reaches YouTube byte-exact, in order, in one session
// (invariant 3): the only other sessions are ones opened just before a kill,
// which never got a byte. The YouTube stand-in answers slowly, so kills land
// mid-chunk too, after YouTube committed bytes the service never recorded.
func TestKilledAtAnyMomentLosesNothing(t *testing.T) {
	t.Parallel() // alongside the asset kill test, which mostly waits
	const runs, atOnce = 20, 5
	var wg sync.WaitGroup
	sem := make(chan struct{}, atOnce)
	for i := range runs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			// A subtest of its own, so that a failed run is named and
			// only its processes' logs are shown.
			t.Run(fmt.Sprintf("run%02d", i), func(t *testing.T) {
				if err := killRun(t, i); err != nil {
					t.Error(err)
				}
			})
		}()
	}
	wg.Wait()
}

func killRun(t *testing.T, run int) error {
	st := stacktest.New(t)
	yt, ytURL, atom, atomURL := newStandIns(t, youtubetest.Options{Slow: 25 * time.Millisecond})
	env := serviceEnv(t, st, ytURL, atomURL)
	env["UPLOADS_YOUTUBE_MAX_CHUNK_BYTES"] = "1048576"
	env["UPLOADS_LOG_LEVEL"] = "info"
	base := "http://" + env["UPLOADS_HTTP_ADDR"] + "/api2/atom/kill-atom/uploads"
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	size := int64(2*5<<20 + 1 + mrand.IntN(3<<20)) // 3 parts
	file := make([]byte, size)
	_, _ = rand.Read(file)
	sum := sha256.Sum256(file)

	svc := startService(t, env)
	svcs := []*service{svc}
	svc.waitHealthy(t)
	rec, code, err := apiCall(ctx, "POST", base, map[string]any{
		"filename": "kill.mp4", "size": size, "contentType": "video/mp4",
		"destinations": []map[string]any{{"type": "youtube", "title": fmt.Sprintf("Kill run %d", run)}},
	})
	if err != nil || code != http.StatusCreated {
		return fmt.Errorf("start upload: %d %w", code, err)
	}
	putDone := make(chan error, 1)
	go func() { putDone <- browserPut(ctx, st, rec, file, mrand.Perm(len(rec.Parts))) }()

	kills := 1 + mrand.IntN(2)
	for k := range kills {
		time.Sleep(time.Duration(50+mrand.IntN(1200)) * time.Millisecond)
		_ = svc.cmd.Process.Kill() // SIGKILL: no shutdown, leases held, messages in flight
		<-svc.done
		if k == 0 {
			if err := <-putDone; err != nil {
				return err
			}
		}
		svc = startService(t, env)
		svcs = append(svcs, svc)
		svc.waitHealthy(t)
	}
	for {
		got, _, err := apiCall(ctx, "GET", base+"/"+rec.ID, nil)
		if err != nil {
			return err
		}
		d := got.Destinations[0]
		if d.Status == "failed" {
			return fmt.Errorf("youtube destination failed: %s", d.Error)
		}
		if d.Details.VideoID != "" {
			v, ok := yt.Video(d.Details.VideoID)
			if !ok {
				return fmt.Errorf("stand-in has no video %s", d.Details.VideoID)
			}
			if v.SHA256 != hex.EncodeToString(sum[:]) || v.Size != size {
				return fmt.Errorf("video %d bytes %s, want %d bytes %x", v.Size, v.SHA256, size, sum)
			}
			if viol := yt.Violations(); len(viol) > 0 {
				return fmt.Errorf("protocol violations: %v", viol)
			}
			// A kill between YouTube opening a session and the service
			// recording it leaves an empty session behind (it expires on
			// YouTube's side); bytes go to one session only.
			for _, s := range yt.Sessions() {
				if s.VideoID != v.ID && s.Committed != 0 {
					return fmt.Errorf("a second session got %d bytes", s.Committed)
				}
			}
			var next int64
			for _, c := range v.Chunks {
				if c.Start != next {
					return fmt.Errorf("chunk at %d, want %d", c.Start, next)
				}
				next += c.Length
			}
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not done after %d kills: destination %s", kills, d.Status)
		case <-time.After(200 * time.Millisecond):
		}
	}
	// One asset call, even across kills: wait until a process has recorded
	// the asset (after that, nobody calls again), then count. It may wait
	// for a message whose handler was killed to come back (its visibility,
	// 10 s), for a dead holder's asset lease (4 s), and for YouTube's
	// processing, polled every second (three polls, then done).
	recorded := func() bool {
		for _, s := range svcs {
			if out := s.out.String(); strings.Contains(out, `"msg":"asset added to atom"`) ||
				strings.Contains(out, `"msg":"asset found on the atom already"`) {
				return true
			}
		}
		return false
	}
	for !recorded() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("the asset was never recorded; %d asset calls", len(atom.Calls("kill-atom")))
		case <-time.After(100 * time.Millisecond):
		}
	}
	if n := len(atom.Calls("kill-atom")); n != 1 {
		return fmt.Errorf("%d asset calls, want 1", n)
	}
	return nil
}

// TestKilledRightAfterTheAtomTookTheAsset: the atom API takes the asset,
// and the service is killed before it hears back, so the table never
// records it. The next process finds the video on the atom and records it:
// the atom gets one asset, not two.
func TestKilledRightAfterTheAtomTookTheAsset(t *testing.T) {
	t.Parallel() // mostly waiting for the message to come back
	st := stacktest.New(t)
	yt, ytURL, _, _ := newStandIns(t, youtubetest.Options{})
	var (
		mu     sync.Mutex
		svc    *service
		killed = make(chan struct{})
		once   sync.Once
	)
	atom, atomURL := newAtomStandIn(t, atomapitest.Options{OnAsset: func(atomapitest.Call) {
		once.Do(func() {
			mu.Lock()
			s := svc
			mu.Unlock()
			_ = s.cmd.Process.Kill() // the answer is written only after the process is gone
			<-s.done
			close(killed)
		})
	}})
	env := serviceEnv(t, st, ytURL, atomURL)
	env["UPLOADS_LOG_LEVEL"] = "info"
	base := "http://" + env["UPLOADS_HTTP_ADDR"] + "/api2/atom/asset-atom/uploads"
	ctx := testCtx(t, 3*time.Minute)
	mu.Lock()
	svc = startService(t, env)
	mu.Unlock()
	svc.waitHealthy(t)

	size := int64(5<<20 + 777)
	file := make([]byte, size)
	_, _ = rand.Read(file)
	rec, code, err := apiCall(ctx, "POST", base, map[string]any{
		"filename": "asset.mp4", "size": size, "contentType": "video/mp4",
		"destinations": []map[string]any{{"type": "youtube", "title": "Asset"}},
	})
	if err != nil || code != http.StatusCreated {
		t.Fatalf("start upload: %d %v", code, err)
	}
	if err := browserPut(ctx, st, rec, file, []int{0, 1}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-killed:
	case <-ctx.Done():
		t.Fatal("the service never added the asset")
	}
	if n := len(atom.Calls("asset-atom")); n != 1 {
		t.Fatalf("%d asset calls before the restart, want 1", n)
	}
	next := startService(t, env)
	next.waitHealthy(t)
	// The restarted process takes over once the dead one's message comes
	// back (10 s visibility); its asset lease (4 s) has run out by then.
	for {
		out := next.out.String()
		if strings.Contains(out, `"msg":"asset found on the atom already"`) {
			break
		}
		if strings.Contains(out, `"msg":"asset added to atom"`) {
			t.Fatalf("the restarted service added the asset again: %d asset calls, want 1", len(atom.Calls("asset-atom")))
		}
		if ctx.Err() != nil {
			t.Fatal("the restarted service never recorded the asset")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := len(atom.Calls("asset-atom")); n != 1 {
		t.Errorf("%d asset calls, want 1", n)
	}
	got, _, err := apiCall(ctx, "GET", base+"/"+rec.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := got.Destinations[0]; d.Status != "complete" || d.Error != "" || len(yt.Videos()) != 1 || d.Details.VideoID != yt.Videos()[0].ID {
		t.Errorf("destination %+v, want complete with the one video on the stand-in", d)
	}
}

// TestSIGTERMDuringRelay: ECS stops the task in the middle of a chunk. The
// process exits 0 within the grace, lets go of the YouTube lease, and the
// upload completes byte-exact once a process runs again.
func TestSIGTERMDuringRelay(t *testing.T) {
	st := stacktest.New(t)
	yt, ytURL, _, atomURL := newStandIns(t, youtubetest.Options{Slow: 3 * time.Second})
	env := serviceEnv(t, st, ytURL, atomURL)
	env["UPLOADS_YOUTUBE_MAX_CHUNK_BYTES"] = "1048576"
	base := "http://" + env["UPLOADS_HTTP_ADDR"] + "/api2/atom/term-atom/uploads"
	ctx := testCtx(t, 3*time.Minute)
	svc := startService(t, env)
	svc.waitHealthy(t)

	size := int64(2*5<<20 + 12345)
	file := make([]byte, size)
	_, _ = rand.Read(file)
	sum := sha256.Sum256(file)
	rec, code, err := apiCall(ctx, "POST", base, map[string]any{
		"filename": "term.mp4", "size": size, "contentType": "video/mp4",
		"destinations": []map[string]any{{"type": "youtube", "title": "SIGTERM"}},
	})
	if err != nil || code != http.StatusCreated {
		t.Fatalf("start upload: %d %v", code, err)
	}
	if err := browserPut(ctx, st, rec, file, []int{0, 1, 2}); err != nil {
		t.Fatal(err)
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if ctx.Err() != nil {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor("a chunk in flight", func() bool {
		ss := yt.Sessions()
		return len(ss) == 1 && ss[0].Committed > 0 // committed; its answer is slow
	})
	began := time.Now()
	if err := svc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := svc.exitCode(t, 15*time.Second); code != 0 {
		t.Fatalf("exit code after SIGTERM %d, want 0", code)
	}
	if took := time.Since(began); took > 7*time.Second {
		t.Errorf("stopping took %s, more than the 5s grace and its bookkeeping", took)
	}
	item, err := st.DynamoDB.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(st.Table), ConsistentRead: aws.Bool(true),
		Key: map[string]dbtypes.AttributeValue{
			"atomId": &dbtypes.AttributeValueMemberS{Value: "term-atom"}, "uploadId": &dbtypes.AttributeValueMemberS{Value: rec.ID},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if exp, ok := item.Item["youtubeLeaseExpiry"].(*dbtypes.AttributeValueMemberN); ok && exp.Value != "0" {
		t.Errorf("the YouTube lease is still held after the stop (expiry %s)", exp.Value)
	}

	yt.SetSlow(0)
	svc = startService(t, env)
	svc.waitHealthy(t)
	waitFor("the video", func() bool { return len(yt.Videos()) == 1 })
	v := yt.Videos()[0]
	if v.SHA256 != hex.EncodeToString(sum[:]) || v.Size != size || len(yt.Violations()) > 0 {
		t.Errorf("video %d bytes %s (violations %v), want %d bytes %x", v.Size, v.SHA256, yt.Violations(), size, sum)
	}
}
