package metrics_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go/middleware"
	"go.uber.org/zap"

	"atomuploads/metrics"
)

// TestHealthReportSaysWhy: the detail names each dependency's last
// success and failure, a failing check with its sentence, and the drain.
func TestHealthReportSaysWhy(t *testing.T) {
	m := metrics.New("test")
	h := m.Health()
	h.Expect(metrics.DepSQSReceive, metrics.DepYouTubeToken, metrics.DepAtomAPI)
	h.Observe(metrics.DepSQSReceive, true)
	h.Observe(metrics.DepYouTubeToken, true)
	h.Observe(metrics.DepYouTubeToken, false)
	refusedSince := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	refused := true
	h.AddCheck("youtubeCredentials", func() (bool, time.Time, string) {
		return refused, refusedSince, "YouTube refuses the service's credentials"
	})

	r := h.Report(false)
	if r.Status != "ok" || r.Draining {
		t.Errorf("status %q draining %v, want ok", r.Status, r.Draining)
	}
	if d := r.Dependencies[metrics.DepSQSReceive]; d.LastSuccess == nil || d.LastFailure != nil {
		t.Errorf("sqsReceive = %+v, want a success and no failure", d)
	}
	if d := r.Dependencies[metrics.DepYouTubeToken]; d.LastSuccess == nil || d.LastFailure == nil {
		t.Errorf("youtubeToken = %+v, want a success and a failure", d)
	}
	if d, ok := r.Dependencies[metrics.DepAtomAPI]; !ok || d.LastSuccess != nil {
		t.Errorf("atomApi = %+v (listed %v), want listed, never answered", d, ok)
	}
	c := r.Checks["youtubeCredentials"]
	if c.OK || c.Since == nil || !c.Since.Equal(refusedSince) || len(r.Problems) != 1 || r.Problems[0] != c.Problem {
		t.Errorf("check %+v, problems %q: want the refusal, since %s, among the problems", c, r.Problems, refusedSince)
	}
	if got := value(t, m.Registry(), "atomuploads_health_check_failing", "check", "youtubeCredentials"); got != 1 {
		t.Errorf("health_check_failing{youtubeCredentials} = %v, want 1", got)
	}

	refused = false
	h.Drain()
	r = h.Report(false)
	if r.Status != "draining" || !r.Draining || !r.Checks["youtubeCredentials"].OK || len(r.Problems) != 0 {
		t.Errorf("after the fix and the drain: %+v", r)
	}
	if got := value(t, m.Registry(), "atomuploads_health_check_failing", "check", "youtubeCredentials"); got != 0 {
		t.Errorf("health_check_failing{youtubeCredentials} after the fix = %v, want 0", got)
	}
}

// TestServer: /metrics is the exposition of the service's registry, and
// /healthcheck the detail, 503 once the process drains.
func TestServer(t *testing.T) {
	m := metrics.New("test")
	m.Received(2)
	srv := metrics.NewServer(m, metrics.ServerConfig{Addr: "127.0.0.1:0"}, zap.NewNop())
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	base := "http://" + srv.Addr().String()

	status, body := get(t, base+"/metrics")
	for _, want := range []string{"atomuploads_queue_messages_received_total 2", "atomuploads_build_info{version=\"test\"} 1", "go_goroutines ", "process_cpu_seconds_total "} {
		if status != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("/metrics: %d without %q", status, want)
		}
	}
	status, body = get(t, base+"/healthcheck")
	var r metrics.Report
	if err := json.Unmarshal([]byte(body), &r); status != http.StatusOK || err != nil || r.Status != "ok" {
		t.Errorf("/healthcheck: %d %s", status, body)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if res, err := http.Get(base + "/metrics"); err == nil {
		res.Body.Close()
		t.Error("the server still answers after Stop")
	}
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthcheck", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), `"status":"draining"`) {
		t.Errorf("/healthcheck once draining: %d %s", rec.Code, rec.Body.String())
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(b)
}

// TestAWSMiddleware: every call of an SDK client counts under its service
// and operation; a failed condition is the service answering well, a
// throttle or refused credentials is not.
func TestAWSMiddleware(t *testing.T) {
	answers := map[string]struct {
		status int
		body   string
	}{
		"DynamoDB_20120810.GetItem":    {200, `{}`},
		"DynamoDB_20120810.UpdateItem": {400, `{"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException","message":"The conditional request failed"}`},
		"DynamoDB_20120810.PutItem":    {400, `{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate exceeded"}`},
		"DynamoDB_20120810.Query":      {400, `{"__type":"com.amazon.coral.service#UnrecognizedClientException","message":"The security token included in the request is invalid."}`},
		"AmazonSQS.ReceiveMessage":     {200, `{"Messages":[]}`},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := answers[r.Header.Get("X-Amz-Target")]
		if !ok {
			a.status, a.body = 500, `{"__type":"InternalServerError"}`
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.WriteHeader(a.status)
		_, _ = io.WriteString(w, a.body)
	}))
	defer srv.Close()

	m := metrics.New("test")
	cfg := aws.Config{
		Region:           "eu-west-1",
		Credentials:      credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
		RetryMaxAttempts: 1,
		APIOptions:       []func(*middleware.Stack) error{metrics.AWSMiddleware(m)},
	}
	db := dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(srv.URL) })
	q := sqs.NewFromConfig(cfg, func(o *sqs.Options) { o.BaseEndpoint = aws.String(srv.URL) })
	ctx := context.Background()
	key := map[string]types.AttributeValue{"id": &types.AttributeValueMemberS{Value: "1"}}
	_, _ = db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String("t"), Key: key})
	_, _ = db.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String("t"), Key: key})
	_, _ = db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("t"), Item: key})
	_, _ = db.Query(ctx, &dynamodb.QueryInput{TableName: aws.String("t")})
	_, _ = db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String("t"), Key: key})
	if _, err := q.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(srv.URL + "/q")}); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		dep, op, outcome string
	}{
		{"dynamodb", "GetItem", "ok"},
		{"dynamodb", "UpdateItem", "ok"},    // a failed condition: the table answered
		{"dynamodb", "PutItem", "error"},    // throttled
		{"dynamodb", "Query", "error"},      // credentials refused
		{"dynamodb", "DeleteItem", "error"}, // a server error
		{"sqs", "ReceiveMessage", "ok"},
	} {
		if got := value(t, m.Registry(), "atomuploads_dependency_requests_total", "dependency", c.dep, "operation", c.op, "outcome", c.outcome); got != 1 {
			t.Errorf("dependency_requests_total{%s %s %s} = %v, want 1", c.dep, c.op, c.outcome, got)
		}
	}
	r := m.Health().Report(false)
	if d := r.Dependencies[metrics.DepSQSReceive]; d.LastSuccess == nil {
		t.Errorf("sqsReceive = %+v, want the receive's success", d)
	}
	if d := r.Dependencies[metrics.DepDynamoDB]; d.LastSuccess == nil || d.LastFailure == nil {
		t.Errorf("dynamodb = %+v, want a success and a failure", d)
	}
}

// TestTransport: the HTTP clients' calls count under the dependency the
// request is of; an answer of 400 or more is a failure, 308 is not.
func TestTransport(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/token":
			w.WriteHeader(http.StatusBadRequest) // invalid_grant
		case "/upload":
			w.WriteHeader(http.StatusPermanentRedirect) // Resume Incomplete
		default:
			w.WriteHeader(http.StatusOK)
		}
	}))
	defer srv.Close()
	m := metrics.New("test")
	name := func(r *http.Request) string {
		if r.URL.Path == "/token" {
			return metrics.DepYouTubeToken
		}
		return metrics.DepYouTube
	}
	c := &http.Client{
		Transport:     metrics.Transport(m, name, nil),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	for _, p := range []string{"/token", "/upload", "/videos"} {
		req, err := http.NewRequestWithContext(context.Background(), http.MethodPut, srv.URL+p, http.NoBody)
		if err != nil {
			t.Fatal(err)
		}
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
	}
	if got := value(t, m.Registry(), "atomuploads_dependency_requests_total", "dependency", "youtubeToken", "operation", "PUT", "outcome", "error"); got != 1 {
		t.Errorf("youtubeToken errors = %v, want 1", got)
	}
	if got := value(t, m.Registry(), "atomuploads_dependency_requests_total", "dependency", "youtube", "operation", "PUT", "outcome", "ok"); got != 2 {
		t.Errorf("youtube oks = %v, want 2 (a 308 and a 200)", got)
	}
	if metrics.Transport(nil, name, http.DefaultTransport) != http.DefaultTransport {
		t.Error("without metrics, the transport is not the base")
	}
	if err := metrics.AWSMiddleware(nil)(nil); err != nil {
		t.Error("without metrics, the AWS option fails")
	}
}
