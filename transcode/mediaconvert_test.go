package transcode

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/mediaconvert"

	"atomuploads/upload"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// fakeMediaConvert stands in for the MediaConvert endpoint: it records
// CreateJob requests, gives one job per client request token (until it
// forgets the tokens, as MediaConvert does after a while), answers GetJob
// with the job's settings and the status the test sets, SearchJobs with the
// jobs of an input file, newest first, and Probe with the source the test
// sets.
type fakeMediaConvert struct {
	mu       sync.Mutex
	creates  [][]byte            // CreateJob bodies as received
	jobs     []*fakeJob          // in creation order
	byToken  map[string]*fakeJob // client request token → job, until forgotten
	probe    map[string]any      // the probe result of every file
	probed   []string            // files probed
	searches []url.Values        // SearchJobs queries
	unlisted bool                // SearchJobs does not show the jobs yet
	pageSize int                 // SearchJobs results per page
	fail     map[string]mcError  // request path → error to answer with
}

type fakeJob struct {
	id       string
	token    string
	input    string
	queue    string
	meta     map[string]string
	settings json.RawMessage
	status   map[string]any // status fields of the job
}

type mcError struct {
	status int
	typ    string
	msg    string
}

// probeResult is a Probe answer for one file: a video track of the size
// and frame rate given, and an audio track if audio.
func probeResult(width, height, fps int, audio bool) map[string]any {
	tracks := []any{map[string]any{"index": 1, "trackType": "video", "codec": "H_264", "videoProperties": map[string]any{
		"width": width, "height": height, "frameRate": map[string]any{"numerator": fps, "denominator": 1},
	}}}
	if audio {
		tracks = append(tracks, map[string]any{"index": 2, "trackType": "audio", "codec": "AAC"})
	}
	return map[string]any{"container": map[string]any{"format": "mp4", "duration": 10.0, "tracks": tracks}}
}

func newFakeMediaConvert(t testing.TB) (*fakeMediaConvert, *mediaconvert.Client) {
	t.Helper()
	fake := &fakeMediaConvert{
		byToken:  map[string]*fakeJob{},
		probe:    probeResult(1920, 1080, 25, true),
		pageSize: 20,
		fail:     map[string]mcError{},
	}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	client := mediaconvert.New(mediaconvert.Options{
		Region:           "eu-west-1",
		BaseEndpoint:     aws.String(srv.URL),
		HTTPClient:       &http.Client{Transport: readOnlyBodies{srv.Client().Transport}},
		RetryMaxAttempts: 1,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "AKIDTEST", SecretAccessKey: "secret", Source: "test"}, nil
		}),
	})
	return fake, client
}

func (f *fakeMediaConvert) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e, ok := f.fail[r.URL.Path]; ok {
		w.Header().Set("X-Amzn-ErrorType", e.typ)
		w.WriteHeader(e.status)
		fmt.Fprintf(w, `{"message": %q}`, e.msg)
		return
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/2017-08-29/jobs":
		body, _ := io.ReadAll(r.Body)
		f.creates = append(f.creates, body)
		var in struct {
			ClientRequestToken string            `json:"clientRequestToken"`
			Queue              string            `json:"queue"`
			UserMetadata       map[string]string `json:"userMetadata"`
			Settings           json.RawMessage   `json:"settings"`
		}
		if err := json.Unmarshal(body, &in); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var settings struct {
			Inputs []struct {
				FileInput string `json:"fileInput"`
			} `json:"inputs"`
		}
		_ = json.Unmarshal(in.Settings, &settings)
		j, ok := f.byToken[in.ClientRequestToken]
		if !ok {
			j = &fakeJob{
				id: fmt.Sprintf("1700000000000-job%03d", len(f.jobs)+1), token: in.ClientRequestToken, queue: in.Queue,
				meta: in.UserMetadata, settings: in.Settings, status: map[string]any{"status": "SUBMITTED"},
			}
			if len(settings.Inputs) > 0 {
				j.input = settings.Inputs[0].FileInput
			}
			f.jobs = append(f.jobs, j)
			f.byToken[in.ClientRequestToken] = j
		}
		writeJSON(w, http.StatusCreated, map[string]any{"job": j.view()})
	case r.Method == http.MethodGet && r.URL.Path == "/2017-08-29/search":
		q := r.URL.Query()
		f.searches = append(f.searches, q)
		var found []any
		for i := len(f.jobs) - 1; i >= 0 && !f.unlisted; i-- { // newest first
			j := f.jobs[i]
			if strings.Contains(j.input, q.Get("inputFile")) && (q.Get("queue") == "" || q.Get("queue") == j.queue) {
				found = append(found, j.view())
			}
		}
		from, _ := strconv.Atoi(q.Get("nextToken"))
		to := min(from+f.pageSize, len(found))
		out := map[string]any{"jobs": found[min(from, to):to]}
		if to < len(found) {
			out["nextToken"] = strconv.Itoa(to)
		}
		writeJSON(w, http.StatusOK, out)
	case r.Method == http.MethodPost && r.URL.Path == "/2017-08-29/probe":
		var in struct {
			InputFiles []struct {
				FileURL string `json:"fileUrl"`
			} `json:"inputFiles"`
		}
		body, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(body, &in)
		for _, file := range in.InputFiles {
			f.probed = append(f.probed, file.FileURL)
		}
		writeJSON(w, http.StatusOK, map[string]any{"probeResults": []any{f.probe}})
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/2017-08-29/jobs/"):
		id := strings.TrimPrefix(r.URL.Path, "/2017-08-29/jobs/")
		for _, j := range f.jobs {
			if j.id == id {
				writeJSON(w, http.StatusOK, map[string]any{"job": j.view()})
				return
			}
		}
		w.Header().Set("X-Amzn-ErrorType", "NotFoundException")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"message": "The job was not found"}`)
	default:
		http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusTeapot)
	}
}

// readOnlyBodies hides the WriteTo of request bodies from net/http. The
// SDK closes a request's body as soon as the response arrives, and its body
// then answers WriteTo with io.EOF; a stand-in on loopback can answer
// before net/http has made its last check of the body (no bytes beyond
// Content-Length, through WriteTo), which then fails and closes the
// connection under the response being read. Over a network to AWS the
// response comes long after that check.
type readOnlyBodies struct{ base http.RoundTripper }

type readOnlyBody struct{ io.ReadCloser }

func (t readOnlyBodies) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		body := r.Body
		r = r.Clone(r.Context())
		r.Body = readOnlyBody{body}
	}
	return t.base.RoundTrip(r)
}

// writeJSON answers with a body of known length, as AWS does.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func (j *fakeJob) view() map[string]any {
	v := map[string]any{"id": j.id, "role": "arn:aws:iam::123456789012:role/MediaConvert", "settings": j.settings,
		"clientRequestToken": j.token, "userMetadata": j.meta}
	if j.queue != "" {
		v["queue"] = j.queue
	}
	for k, s := range j.status {
		v[k] = s
	}
	return v
}

func (f *fakeMediaConvert) created() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.creates)
}

func (f *fakeMediaConvert) jobCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.jobs)
}

func (f *fakeMediaConvert) setStatus(id string, fields map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, j := range f.jobs {
		if j.id == id {
			j.status = fields
		}
	}
}

// forgetTokens is MediaConvert some time after a CreateJob: a request with
// the same client request token creates a new job.
func (f *fakeMediaConvert) forgetTokens() {
	f.mu.Lock()
	f.byToken = map[string]*fakeJob{}
	f.mu.Unlock()
}

func testMediaConvertConfig() MediaConvertConfig {
	return MediaConvertConfig{
		RoleARN:           "arn:aws:iam::123456789012:role/MediaConvert",
		Queue:             "arn:aws:mediaconvert:eu-west-1:123456789012:queues/Default",
		DestinationBucket: "atom-videos",
		PosterFrame:       true,
	}
}

var mcSpec = Spec{
	AtomID:       "6c6b5a4e-0d8f-4f43-9a5d-3f2b1c0d9e8f",
	UploadID:     "01JABCDEFGHJKMNPQRSTVWXYZ0",
	SourceBucket: "useruploadbucket",
	SourceKey:    "uploads/6c6b5a4e-0d8f-4f43-9a5d-3f2b1c0d9e8f/01JABCDEFGHJKMNPQRSTVWXYZ0/full",
	Token:        "01JABCDEFGHJKMNPQRSTVWXYZ0-1",
}

func TestMediaConvertCreateJobMatchesGolden(t *testing.T) {
	fake, client := newFakeMediaConvert(t)
	m, err := NewMediaConvert(client, testMediaConvertConfig())
	if err != nil {
		t.Fatalf("NewMediaConvert: %v", err)
	}
	ctx := context.Background()
	id, err := m.Start(ctx, mcSpec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if id != "1700000000000-job001" {
		t.Errorf("job id = %q, want 1700000000000-job001", id)
	}
	creates := fake.created()
	if len(creates) != 1 {
		t.Fatalf("CreateJob called %d times, want 1", len(creates))
	}
	got := canonicalJSON(t, creates[0])
	golden := filepath.Join("testdata", "mediaconvert_createjob.golden.json")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read golden file (run go test -run %s -update to create it): %v", t.Name(), err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("CreateJob request differs from %s (run with -update after checking the change)\ngot:\n%s", golden, got)
	}
}

// canonicalJSON re-encodes JSON with sorted keys and indentation.
func canonicalJSON(t testing.TB, b []byte) []byte {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("request body is not JSON: %v", err)
	}
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, '\n')
}

// Two instances starting the same attempt before either job shows in a
// search: the token makes their CreateJob calls one job.
func TestMediaConvertRetriedStartReusesToken(t *testing.T) {
	fake, client := newFakeMediaConvert(t)
	fake.unlisted = true
	m, err := NewMediaConvert(client, testMediaConvertConfig())
	if err != nil {
		t.Fatalf("NewMediaConvert: %v", err)
	}
	ctx := context.Background()
	first, err := m.Start(ctx, mcSpec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	second, err := m.Start(ctx, mcSpec)
	if err != nil {
		t.Fatalf("Start again: %v", err)
	}
	if first != second {
		t.Errorf("job ids = %q then %q, want the same job", first, second)
	}
	creates := fake.created()
	if len(creates) != 2 {
		t.Fatalf("CreateJob called %d times, want 2", len(creates))
	}
	var tokens []string
	for _, body := range creates {
		var in struct {
			ClientRequestToken string `json:"clientRequestToken"`
		}
		if err := json.Unmarshal(body, &in); err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, in.ClientRequestToken)
	}
	if want := []string{mcSpec.Token, mcSpec.Token}; !slices.Equal(tokens, want) {
		t.Errorf("client request tokens = %v, want %v", tokens, want)
	}
	if got := fake.jobCount(); got != 1 {
		t.Errorf("jobs created = %d, want 1", got)
	}
}

// A process that dies between CreateJob and recording the job id: its
// message comes back, to any instance, after MediaConvert has forgotten
// the token. The job is found, not started again.
func TestMediaConvertStartFindsTheJobOfACrashedStart(t *testing.T) {
	fake, client := newFakeMediaConvert(t)
	crashed, err := NewMediaConvert(client, testMediaConvertConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	first, err := crashed.Start(ctx, mcSpec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	fake.forgetTokens()
	other, err := NewMediaConvert(client, testMediaConvertConfig())
	if err != nil {
		t.Fatal(err)
	}
	fake.setStatus(first, map[string]any{"status": "PROGRESSING", "jobPercentComplete": 30})
	again, err := other.Start(ctx, mcSpec)
	if err != nil {
		t.Fatalf("Start on another instance: %v", err)
	}
	if again != first {
		t.Errorf("job ids = %q then %q, want the same job", first, again)
	}
	if n := len(fake.created()); n != 1 {
		t.Errorf("CreateJob called %d times, want 1", n)
	}
	if n := len(fake.probed); n != 1 {
		t.Errorf("Probe called %d times, want 1 (none for a job that exists)", n)
	}
	if len(fake.searches) == 0 {
		t.Fatal("Start searched no jobs")
	}
	q := fake.searches[len(fake.searches)-1]
	if q.Get("inputFile") != "s3://"+mcSpec.SourceBucket+"/"+mcSpec.SourceKey || q.Get("queue") != testMediaConvertConfig().Queue {
		t.Errorf("search = %v, want the original's jobs in the queue", q)
	}
}

// One job per upload while it can still deliver: a new attempt reuses a
// job of an earlier one that is running or complete, and starts a new one
// only when the earlier failed.
func TestMediaConvertStartReusesALiveJobOfAnEarlierAttempt(t *testing.T) {
	fake, client := newFakeMediaConvert(t)
	m, err := NewMediaConvert(client, testMediaConvertConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	attempt := func(n int) Spec {
		s := mcSpec
		s.Token = fmt.Sprintf("%s-%d", mcSpec.UploadID, n)
		return s
	}
	job1, err := m.Start(ctx, attempt(1))
	if err != nil {
		t.Fatal(err)
	}
	for _, status := range []string{"SUBMITTED", "PROGRESSING", "COMPLETE"} {
		fake.setStatus(job1, map[string]any{"status": status})
		if id, err := m.Start(ctx, attempt(2)); err != nil || id != job1 {
			t.Errorf("attempt 2 with attempt 1's job %s: Start = %q, %v; want %q", status, id, err, job1)
		}
	}
	fake.setStatus(job1, map[string]any{"status": "ERROR", "errorCode": 1999})
	job3, err := m.Start(ctx, attempt(3))
	if err != nil {
		t.Fatal(err)
	}
	if job3 == job1 {
		t.Errorf("attempt 3 after attempt 1's job failed = %q, want a new job", job3)
	}
	// Any number of pages back, the attempt's own job is found, even failed.
	fake.setStatus(job3, map[string]any{"status": "ERROR", "errorCode": 1999})
	fake.forgetTokens()
	fake.mu.Lock()
	fake.pageSize = 1
	fake.mu.Unlock()
	if id, err := m.Start(ctx, attempt(1)); err != nil || id != job1 {
		t.Errorf("attempt 1 again = %q, %v; want its job %q", id, err, job1)
	}
	if got := fake.jobCount(); got != 2 {
		t.Errorf("jobs created = %d, want 2", got)
	}
}

// A job of the same input with another upload's metadata is not this
// upload's.
func TestMediaConvertStartIgnoresOtherUploadsJobs(t *testing.T) {
	fake, client := newFakeMediaConvert(t)
	m, err := NewMediaConvert(client, testMediaConvertConfig())
	if err != nil {
		t.Fatal(err)
	}
	fake.mu.Lock()
	fake.jobs = append(fake.jobs, &fakeJob{id: "1600000000000-other", token: mcSpec.Token, input: "s3://" + mcSpec.SourceBucket + "/" + mcSpec.SourceKey,
		queue: testMediaConvertConfig().Queue, meta: map[string]string{"atomId": mcSpec.AtomID, "uploadId": "another"},
		status: map[string]any{"status": "PROGRESSING"}})
	fake.mu.Unlock()
	id, err := m.Start(context.Background(), mcSpec)
	if err != nil || id == "1600000000000-other" {
		t.Errorf("Start = %q, %v; want a new job", id, err)
	}
}

func TestMediaConvertLadderFollowsTheProbe(t *testing.T) {
	type output struct {
		NameModifier string `json:"nameModifier"`
		Video        *struct {
			Width  int `json:"width"`
			Height int `json:"height"`
		} `json:"videoDescription"`
		Audio []any `json:"audioDescriptions"`
	}
	var request struct {
		Settings struct {
			Inputs []struct {
				AudioSelectors map[string]any `json:"audioSelectors"`
			} `json:"inputs"`
			OutputGroups []struct {
				Name     string `json:"name"`
				Settings struct {
					Cmaf *struct {
						Destination string `json:"destination"`
					} `json:"cmafGroupSettings"`
					File *struct {
						Destination string `json:"destination"`
					} `json:"fileGroupSettings"`
				} `json:"outputGroupSettings"`
				Outputs []output `json:"outputs"`
			} `json:"outputGroups"`
		} `json:"settings"`
	}
	tests := []struct {
		name  string
		probe map[string]any
		want  string
	}{
		{"720p with sound", probeResult(1280, 720, 25, true),
			"hls[_720p 1280x720, _360p 640x360, _audio sound] mp4:720p[1280x720 sound] poster[1280x720]"},
		{"portrait without sound", probeResult(720, 1280, 30, false),
			"hls[_720p 720x1280, _360p 360x640] mp4:720p[720x1280] poster[720x1280]"},
		{"below the ladder", probeResult(320, 240, 25, true),
			"hls[_240p 320x240, _audio sound] mp4:240p[320x240 sound] poster[320x240]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake, client := newFakeMediaConvert(t)
			fake.probe = tt.probe
			m, err := NewMediaConvert(client, testMediaConvertConfig())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := m.Start(context.Background(), mcSpec); err != nil {
				t.Fatalf("Start: %v", err)
			}
			if want := []string{"s3://" + mcSpec.SourceBucket + "/" + mcSpec.SourceKey}; !slices.Equal(fake.probed, want) {
				t.Errorf("probed %v, want %v", fake.probed, want)
			}
			request.Settings.Inputs, request.Settings.OutputGroups = nil, nil
			if err := json.Unmarshal(fake.created()[0], &request); err != nil {
				t.Fatal(err)
			}
			describe := func(o output) string {
				var parts []string
				if o.Video != nil {
					parts = append(parts, fmt.Sprintf("%dx%d", o.Video.Width, o.Video.Height))
				}
				if len(o.Audio) > 0 {
					parts = append(parts, "sound")
				}
				return strings.Join(parts, " ")
			}
			var groups []string
			for _, g := range request.Settings.OutputGroups {
				var outs []string
				for _, o := range g.Outputs {
					outs = append(outs, strings.TrimSpace(o.NameModifier+" "+describe(o)))
				}
				name := g.Name
				if g.Name == "mp4" {
					name += ":" + path.Base(g.Settings.File.Destination)
				}
				groups = append(groups, name+"["+strings.Join(outs, ", ")+"]")
			}
			if got := strings.Join(groups, " "); got != tt.want {
				t.Errorf("job outputs = %s\nwant          %s", got, tt.want)
			}
			hasSound := tt.probe["container"].(map[string]any)["tracks"].([]any)
			if got, want := len(request.Settings.Inputs[0].AudioSelectors) > 0, len(hasSound) > 1; got != want {
				t.Errorf("audio selector: %v, want %v", got, want)
			}
		})
	}
}

func TestMediaConvertRefusesWhatIsNotAVideo(t *testing.T) {
	fake, client := newFakeMediaConvert(t)
	fake.probe = map[string]any{"container": map[string]any{"format": "", "tracks": []any{
		map[string]any{"index": 1, "trackType": "audio", "codec": "AAC"}}}}
	m, err := NewMediaConvert(client, testMediaConvertConfig())
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Start(context.Background(), mcSpec)
	if upload.ErrorCode(err) != upload.EINVALID || !strings.Contains(upload.ErrorMessage(err), "input is not a video") {
		t.Errorf("Start = %v, want an %s error saying the input is not a video", err, upload.EINVALID)
	}
	if n := len(fake.created()); n != 0 {
		t.Errorf("CreateJob called %d times, want 0", n)
	}
}

func TestMediaConvertJobStates(t *testing.T) {
	fake, client := newFakeMediaConvert(t)
	m, err := NewMediaConvert(client, testMediaConvertConfig())
	if err != nil {
		t.Fatalf("NewMediaConvert: %v", err)
	}
	ctx := context.Background()
	id, err := m.Start(ctx, mcSpec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	prefix := OutputPrefix(mcSpec.AtomID, mcSpec.UploadID)
	tests := []struct {
		status map[string]any
		want   Job
	}{
		{map[string]any{"status": "SUBMITTED"}, Job{ID: id, State: StateSubmitted}},
		{map[string]any{"status": "PROGRESSING", "jobPercentComplete": 42}, Job{ID: id, State: StateProgressing, Percent: 42}},
		{map[string]any{"status": "COMPLETE", "jobPercentComplete": 100}, Job{ID: id, State: StateComplete, Percent: 100,
			Playback: prefix + "hls/master.m3u8",
			Outputs: []Output{
				{Key: prefix + "hls/master.m3u8", Kind: KindHLS},
				{Key: prefix + "hls/master_1080p.m3u8", Kind: KindHLSVideo, Width: 1920, Height: 1080, Bitrate: 5_128_000},
				{Key: prefix + "hls/master_720p.m3u8", Kind: KindHLSVideo, Width: 1280, Height: 720, Bitrate: 3_128_000},
				{Key: prefix + "hls/master_360p.m3u8", Kind: KindHLSVideo, Width: 640, Height: 360, Bitrate: 928_000},
				{Key: prefix + "hls/master_audio.m3u8", Kind: KindHLSAudio, Bitrate: 128_000},
				{Key: prefix + "1080p.mp4", Kind: KindMP4, Width: 1920, Height: 1080, Bitrate: 5_128_000},
				{Key: prefix + "poster.0000000.jpg", Kind: KindPoster, Width: 1920, Height: 1080},
			}}},
		{map[string]any{"status": "ERROR", "errorCode": 1010,
			"errorMessage": "Unable to open input file [s3://useruploadbucket/uploads/x/full]: [Failed probe/open: [No parser found for container]]"},
			Job{ID: id, State: StateError, Error: "MediaConvert could not open the original: it may not be a video file it can read " +
				"(Unable to open input file: Failed probe/open: No parser found for container) [MediaConvert error 1010]"}},
		{map[string]any{"status": "ERROR", "errorCode": 1401,
			"errorMessage": "Unable to write to output file [s3://atom-videos/a/u/hls/master_720p_00001.cmfv]: [Failed to write data: Access Denied]"},
			Job{ID: id, State: StateError, Error: "MediaConvert could not write the outputs; check its role's access to the output bucket " +
				"(Unable to write to output file: Failed to write data: Access Denied) [MediaConvert error 1401]"}},
		{map[string]any{"status": "ERROR"}, Job{ID: id, State: StateError, Error: "MediaConvert failed the transcode"}},
		{map[string]any{"status": "CANCELED"}, Job{ID: id, State: StateError, Error: "MediaConvert job was cancelled"}},
	}
	for _, tt := range tests {
		t.Run(tt.status["status"].(string), func(t *testing.T) {
			fake.setStatus(id, tt.status)
			got, err := m.Job(ctx, id)
			if err != nil {
				t.Fatalf("Job: %v", err)
			}
			if !jobsEqual(got, tt.want) {
				t.Errorf("Job = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestMediaConvertErrorsBecomeDomainErrors(t *testing.T) {
	fake, client := newFakeMediaConvert(t)
	m, err := NewMediaConvert(client, testMediaConvertConfig())
	if err != nil {
		t.Fatalf("NewMediaConvert: %v", err)
	}
	ctx := context.Background()
	tests := []struct {
		fail     mcError
		wantCode string
		wantMsg  string
	}{
		{mcError{400, "BadRequestException", "/settings/outputGroups/0: height must be at least 32"}, upload.EINVALID,
			"MediaConvert refused the job: /settings/outputGroups/0: height must be at least 32"},
		{mcError{429, "TooManyRequestsException", "slow down"}, upload.EUNAVAILABLE, "MediaConvert is busy or failing; try again"},
		{mcError{500, "InternalServerErrorException", "oops"}, upload.EUNAVAILABLE, "MediaConvert is busy or failing; try again"},
		{mcError{403, "ForbiddenException", "not allowed"}, upload.EINTERNAL, "MediaConvert denied access; check the service's IAM permissions"},
	}
	for _, tt := range tests {
		t.Run(tt.fail.typ, func(t *testing.T) {
			fake.mu.Lock()
			fake.fail["/2017-08-29/jobs"] = tt.fail
			fake.mu.Unlock()
			_, err := m.Start(ctx, mcSpec)
			if upload.ErrorCode(err) != tt.wantCode || upload.ErrorMessage(err) != tt.wantMsg {
				t.Errorf("Start error = %q (code %s, message %q), want code %s, message %q",
					err, upload.ErrorCode(err), upload.ErrorMessage(err), tt.wantCode, tt.wantMsg)
			}
		})
	}
	fake.mu.Lock()
	delete(fake.fail, "/2017-08-29/jobs")
	fake.fail["/2017-08-29/search"] = mcError{429, "TooManyRequestsException", "slow down"}
	fake.mu.Unlock()
	if _, err := m.Start(ctx, mcSpec); upload.ErrorCode(err) != upload.EUNAVAILABLE {
		t.Errorf("Start with the search throttled = %v, want an %s error", err, upload.EUNAVAILABLE)
	}
	if n := len(fake.created()); n != 0 {
		t.Errorf("CreateJob called %d times with the search failing, want 0", n)
	}
	_, err = m.Job(ctx, "1700000000000-nosuch")
	if upload.ErrorCode(err) != upload.ENOTFOUND {
		t.Errorf("Job(unknown) = %v, want an %s error", err, upload.ENOTFOUND)
	}
	if _, err := m.Start(ctx, Spec{AtomID: mcSpec.AtomID, UploadID: mcSpec.UploadID, SourceBucket: "b", SourceKey: "k",
		Token: strings.Repeat("x", 65)}); upload.ErrorCode(err) != upload.EINVALID {
		t.Errorf("Start(65-character token) = %v, want an %s error", err, upload.EINVALID)
	}
}
