package worker_test

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"atomuploads/upload"
	"atomuploads/worker"
	"atomuploads/youtube"
	"atomuploads/youtube/youtubetest"
)

// clock is a test's clock: the real time plus an offset the test moves
// forward, as if a day went by.
type clock struct{ offset atomic.Int64 }

func (c *clock) now() time.Time                  { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) advance(d time.Duration)         { c.offset.Add(int64(d)) }
func (c *clock) until(t time.Time) time.Duration { return t.Sub(c.now()) }

// parking sets short parking times on a worker's config and its clock.
func parking(c *clock, edit func(*worker.ParkConfig)) func(*worker.Config) {
	return func(cfg *worker.Config) {
		cfg.Now = c.now
		cfg.Park = worker.ParkConfig{
			UploadLimitRetry: time.Second, UploadLimitHorizon: time.Hour, CredentialsRetry: time.Second,
			MaxHop: 300 * time.Millisecond,
		}
		if edit != nil {
			edit(&cfg.Park)
		}
	}
}

// parkedFor waits until the upload's YouTube destination waits for what.
func (e *env) parkedFor(t testing.TB, u *upload.Upload, what string) *upload.Destination {
	t.Helper()
	var d *upload.Destination
	waitFor(t, 60*time.Second, "the relay to park for "+what, func() bool {
		d = e.get(t, u).Destination(upload.YouTube)
		return d.WaitingFor == what
	})
	return d
}

// TestQuotaMidFileParksUntilTheReset: YouTube refuses chunks with
// quotaExceeded half-way through a file. The relay parks until the next
// midnight Pacific, keeping its session and offset, the destination says
// so, and nothing is failed; once the quota is back and the clock has
// passed the reset, it resumes in the same session and finishes
// byte-exact.
func TestQuotaMidFileParksUntilTheReset(t *testing.T) {
	e := newEnv(t)
	si := newStandIns(t, youtubetest.Options{})
	var c clock
	e.startWorker(t, workerOpts{yt: si.ytClient, atom: si.atomCl, cfg: parking(&c, nil)})
	const size = 3*5*upload.MiB + 777
	u := e.newUpload(t, size, youTubeDest("Quota"), upload.DestinationRequest{Type: upload.S3Bucket})
	file, sum := randomFile(t, size)
	e.putPart(t, u, file, 0)
	waitFor(t, 30*time.Second, "part 0 on YouTube", func() bool {
		ss := si.yt.Sessions()
		return len(ss) == 1 && ss[0].Committed == 5*upload.MiB
	})
	si.yt.Refuse(youtubetest.KindChunk, http.StatusForbidden, "quotaExceeded")
	for n := 1; n < u.PartCount(); n++ {
		e.putPart(t, u, file, n)
	}
	d := e.parkedFor(t, u, upload.WaitYouTubeQuota)
	pacific, _ := time.LoadLocation("America/Los_Angeles")
	if r := d.ResumeAt.In(pacific); r.Hour() != 0 || r.Minute() != 0 || !r.After(c.now()) || c.until(r) > 24*time.Hour {
		t.Errorf("resumeAt %s, want the next midnight Pacific", r)
	}
	if d.Status != upload.DestUpload || d.UploadedBytes != 5*upload.MiB || d.Session == "" {
		t.Errorf("parked destination %s at %d bytes, session kept %v; want it to keep its place", d.Status, d.UploadedBytes, d.Session != "")
	}
	e.reassembledOnce(t, u, sum)
	time.Sleep(time.Second) // a few hops go by, and the relay stays parked
	if got := e.get(t, u); got.Status.Terminal() || got.Destination(upload.YouTube).WaitingFor != upload.WaitYouTubeQuota {
		t.Fatalf("upload %s, youtube waiting for %q: it must wait, not fail", got.Status, got.Destination(upload.YouTube).WaitingFor)
	}

	si.yt.Refuse(youtubetest.KindChunk, 0, "")
	c.advance(c.until(d.ResumeAt) + time.Second) // the reset comes
	_, v := si.videoOf(t, e, u, 60*time.Second)
	si.checkVideo(t, v, size, sum)
	if v.Sessions != 1 || len(si.yt.Sessions()) != 1 {
		t.Errorf("video from %d sessions (%d in all), want 1: the parked session must be resumed", v.Sessions, len(si.yt.Sessions()))
	}
	if d := e.get(t, u).Destination(upload.YouTube); d.WaitingFor != "" || !d.ResumeAt.IsZero() {
		t.Errorf("after resuming: waiting for %q until %s, want neither", d.WaitingFor, d.ResumeAt)
	}
}

// TestUploadLimitParksAndResumes: the channel's uploadLimitExceeded parks
// the relay; it tries again every retry interval and resumes when the
// limit lifts. Past the horizon, the destination fails, saying so.
func TestUploadLimitParksAndResumes(t *testing.T) {
	e := newEnv(t)
	si := newStandIns(t, youtubetest.Options{})
	var c clock
	e.startWorker(t, workerOpts{yt: si.ytClient, atom: si.atomCl, cfg: parking(&c, nil)})
	si.yt.Refuse(youtubetest.KindInitiate, http.StatusBadRequest, "uploadLimitExceeded")
	const size = 2 * upload.MiB
	u := e.newUpload(t, size, youTubeDest("Upload limit"))
	file, sum := randomFile(t, size)
	e.putPart(t, u, file, 0)
	e.parkedFor(t, u, upload.WaitYouTubeUploadLimit)
	waitFor(t, 30*time.Second, "a second try", func() bool { return si.yt.Requests()[youtubetest.KindInjected] >= 2 })
	si.yt.Refuse(youtubetest.KindInitiate, 0, "")
	_, v := si.videoOf(t, e, u, 60*time.Second)
	si.checkVideo(t, v, size, sum)

	// And a limit that does not lift within the horizon.
	si.yt.Refuse(youtubetest.KindInitiate, http.StatusBadRequest, "uploadLimitExceeded")
	u2 := e.newUpload(t, size, youTubeDest("Upload limit for good"))
	e.putPart(t, u2, file, 0)
	e.parkedFor(t, u2, upload.WaitYouTubeUploadLimit)
	c.advance(2 * time.Hour) // past the horizon
	waitFor(t, 30*time.Second, "the destination to fail", func() bool {
		return e.get(t, u2).Destination(upload.YouTube).Status == upload.DestFailed
	})
	if d := e.get(t, u2).Destination(upload.YouTube); !strings.Contains(d.Error, "upload limit for the channel did not lift within 1h0m0s") {
		t.Errorf("error = %q, want it to say the limit did not lift", d.Error)
	}
}

// TestRefusedCredentialsParkEveryRelay: with a refresh token YouTube
// refuses (invalid_grant), every relay parks, saying it waits for the
// credentials, and the refusal is logged loudly but not once per relay; a
// process with fixed credentials lets them all finish.
func TestRefusedCredentialsParkEveryRelay(t *testing.T) {
	e := newEnv(t)
	si := newStandIns(t, youtubetest.Options{})
	revoked, err := youtube.New(youtube.Config{
		APIBaseURL: si.baseURL + "/", TokenURL: si.baseURL + "/token",
		ClientID: "client", ClientSecret: "client-secret", RefreshToken: "revoked",
		RequestTimeout: 10 * time.Second, BaseDelay: 10 * time.Millisecond,
	}, &http.Client{})
	if err != nil {
		t.Fatal(err)
	}
	var c clock
	stop := e.startWorker(t, workerOpts{owner: "broken", yt: revoked, atom: si.atomCl, cfg: parking(&c, nil)})
	const size = 2 * upload.MiB
	file, sum := randomFile(t, size)
	var us []*upload.Upload
	for i := range 3 {
		u := e.newUpload(t, size, youTubeDest("Credentials "+string(rune('A'+i))))
		e.putPart(t, u, file, 0)
		us = append(us, u)
	}
	for _, u := range us {
		e.parkedFor(t, u, upload.WaitYouTubeCredentials)
	}
	if n := len(e.logs.With(t, "YouTube refuses the service's credentials: every YouTube relay is parked until they are fixed")); n < 1 || n > 2 {
		t.Errorf("%d credential error lines for three relays in a second, want one (once an interval)", n)
	}
	stop() // the secret is fixed and the service restarted
	e.startWorker(t, workerOpts{owner: "fixed", yt: si.ytClient, atom: si.atomCl, cfg: parking(&c, nil)})
	for _, u := range us {
		_, v := si.videoOf(t, e, u, 60*time.Second)
		si.checkVideo(t, v, size, sum)
	}
}

// TestRejectedVideoFailsInPlainWords: YouTube rejects the uploaded video
// as a duplicate; the destination fails saying so in words, and no asset
// is added.
func TestRejectedVideoFailsInPlainWords(t *testing.T) {
	e := newEnv(t)
	si := newStandIns(t, youtubetest.Options{ProcessingSteps: 3})
	e.startWorker(t, workerOpts{yt: si.ytClient})
	const size = 2 * upload.MiB
	u := e.newUpload(t, size, youTubeDest("Duplicate"))
	file, _ := randomFile(t, size)
	e.putPart(t, u, file, 0)
	waitFor(t, 30*time.Second, "the video", func() bool { return e.get(t, u).Destination(upload.YouTube).VideoID != "" })
	si.yt.RejectVideo(e.get(t, u).Destination(upload.YouTube).VideoID, "duplicate")
	waitFor(t, 30*time.Second, "the destination to fail", func() bool {
		return e.get(t, u).Destination(upload.YouTube).Status == upload.DestFailed
	})
	if d := e.get(t, u).Destination(upload.YouTube); d.Error != "YouTube rejected the video as a duplicate of one already on the channel" {
		t.Errorf("error = %q, want the rejection in plain words", d.Error)
	}
}

// TestDailyLimitParksTheThirdUploadUntilTomorrow: with a daily limit of 2
// YouTube sessions, the third upload of the day waits for the next Pacific
// day without calling YouTube, and goes on then.
func TestDailyLimitParksTheThirdUploadUntilTomorrow(t *testing.T) {
	e := newEnv(t)
	si := newStandIns(t, youtubetest.Options{})
	var c clock
	e.startWorker(t, workerOpts{yt: si.ytClient, atom: si.atomCl, cfg: parking(&c, func(p *worker.ParkConfig) { p.DailyUploadLimit = 2 })})
	const size = 2 * upload.MiB
	file, sum := randomFile(t, size)
	var us []*upload.Upload
	for i := range 3 {
		u := e.newUpload(t, size, youTubeDest("Daily "+string(rune('A'+i))))
		us = append(us, u)
		e.putPart(t, u, file, 0)
		if i < 2 {
			_, v := si.videoOf(t, e, u, 60*time.Second)
			si.checkVideo(t, v, size, sum)
		}
	}
	d := e.parkedFor(t, us[2], upload.WaitYouTubeQuota)
	if n := si.yt.Requests()[youtubetest.KindInitiate]; n != 2 {
		t.Errorf("%d sessions started, want 2: the third must not spend the call", n)
	}
	c.advance(c.until(d.ResumeAt) + time.Second) // the next Pacific day
	_, v := si.videoOf(t, e, us[2], 60*time.Second)
	si.checkVideo(t, v, size, sum)
}
