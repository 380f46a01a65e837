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
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/mediaconvert"

	"atomuploads/upload"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// fakeMediaConvert stands in for the MediaConvert endpoint: it records
// CreateJob requests, gives one job per client request token, and answers
// GetJob with the job's settings and the status the test sets.
type fakeMediaConvert struct {
	mu       sync.Mutex
	creates  [][]byte                   // CreateJob bodies as received
	byToken  map[string]string          // client request token → job id
	settings map[string]json.RawMessage // job id → settings
	status   map[string]map[string]any  // job id → status fields of the job
	fail     map[string]mcError         // request path → error to answer with
}

type mcError struct {
	status int
	typ    string
	msg    string
}

func newFakeMediaConvert(t testing.TB) (*fakeMediaConvert, *mediaconvert.Client) {
	t.Helper()
	fake := &fakeMediaConvert{
		byToken:  map[string]string{},
		settings: map[string]json.RawMessage{},
		status:   map[string]map[string]any{},
		fail:     map[string]mcError{},
	}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	client := mediaconvert.New(mediaconvert.Options{
		Region:           "eu-west-1",
		BaseEndpoint:     aws.String(srv.URL),
		HTTPClient:       srv.Client(),
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
			ClientRequestToken string          `json:"clientRequestToken"`
			Settings           json.RawMessage `json:"settings"`
		}
		if err := json.Unmarshal(body, &in); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		id, ok := f.byToken[in.ClientRequestToken]
		if !ok {
			id = fmt.Sprintf("1700000000000-job%03d", len(f.byToken)+1)
			f.byToken[in.ClientRequestToken] = id
			f.settings[id] = in.Settings
			f.status[id] = map[string]any{"status": "SUBMITTED"}
		}
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]any{"job": f.job(id)})
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/2017-08-29/jobs/"):
		id := strings.TrimPrefix(r.URL.Path, "/2017-08-29/jobs/")
		if _, ok := f.status[id]; !ok {
			w.Header().Set("X-Amzn-ErrorType", "NotFoundException")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"message": "The job was not found"}`)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"job": f.job(id)})
	default:
		http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusTeapot)
	}
}

func (f *fakeMediaConvert) job(id string) map[string]any {
	j := map[string]any{"id": id, "role": "arn:aws:iam::123456789012:role/MediaConvert", "settings": f.settings[id]}
	for k, v := range f.status[id] {
		j[k] = v
	}
	return j
}

func (f *fakeMediaConvert) created() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.creates)
}

func (f *fakeMediaConvert) jobCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.byToken)
}

func (f *fakeMediaConvert) setStatus(id string, fields map[string]any) {
	f.mu.Lock()
	f.status[id] = fields
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

func TestMediaConvertRetriedStartReusesToken(t *testing.T) {
	fake, client := newFakeMediaConvert(t)
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
		{map[string]any{"status": "COMPLETE", "jobPercentComplete": 100}, Job{ID: id, State: StateComplete, Percent: 100, Outputs: []Output{
			{Key: prefix + "1080p.mp4", Kind: KindMP4, Height: 1080, Bitrate: 5_128_000},
			{Key: prefix + "720p.mp4", Kind: KindMP4, Height: 720, Bitrate: 3_128_000},
			{Key: prefix + "360p.mp4", Kind: KindMP4, Height: 360, Bitrate: 896_000},
			{Key: prefix + "poster.0000000.jpg", Kind: KindPoster, Height: 1080},
		}}},
		{map[string]any{"status": "ERROR", "errorCode": 1010, "errorMessage": "Unable to open input file [s3://useruploadbucket/uploads/x/full]"},
			Job{ID: id, State: StateError, Error: "MediaConvert job failed (error 1010): Unable to open input file [s3://useruploadbucket/uploads/x/full]"}},
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
	_, err = m.Job(ctx, "1700000000000-nosuch")
	if upload.ErrorCode(err) != upload.ENOTFOUND {
		t.Errorf("Job(unknown) = %v, want an %s error", err, upload.ENOTFOUND)
	}
	if _, err := m.Start(ctx, Spec{AtomID: mcSpec.AtomID, UploadID: mcSpec.UploadID, SourceBucket: "b", SourceKey: "k",
		Token: strings.Repeat("x", 65)}); upload.ErrorCode(err) != upload.EINVALID {
		t.Errorf("Start(65-character token) = %v, want an %s error", err, upload.EINVALID)
	}
}
