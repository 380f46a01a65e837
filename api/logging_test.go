package api_test

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"atomuploads/api"
	"atomuploads/devstack/stacktest"
	"atomuploads/upload"
)

// notFound is a table without uploads.
type notFound struct{ api.Uploads }

func (notFound) Get(_ context.Context, atomID, id string) (*upload.Upload, error) {
	return nil, upload.Errorf(upload.ENOTFOUND, "atom %s has no upload %s", atomID, id)
}

// send sends GET path with the given headers and answers the status, the
// X-Request-ID answered and the body.
func send(t testing.TB, base, path, auth string, header map[string]string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest("GET", base+path, http.NoBody)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header.Get("X-Request-ID"), string(b)
}

// longestLine is the length of the longest log line.
func longestLine(logs *stacktest.Logs) int {
	n := 0
	for _, l := range strings.Split(logs.String(), "\n") {
		n = max(n, len(l))
	}
	return n
}

func TestClientRequestIDOnlyWhenShortAndPlain(t *testing.T) {
	base, logs := newFakeServer(t, notFound{})
	const path = "/api2/atom/atom-1/uploads/01JZ4Q7V9X8Y6W5T3S2R1P0N9M"
	plain := "media-tool.42_Abc"
	if status, rid, _ := send(t, base, path, token, map[string]string{"X-Request-ID": plain}); status != 404 || rid != plain {
		t.Errorf("a short plain id: %d, answered id %q, want 404 and %q", status, rid, plain)
	}
	if got := logs.With(t, "request"); len(got) != 1 || got[0]["requestId"] != plain {
		t.Errorf("access line %v, want requestId %s", got, plain)
	}

	ours := regexp.MustCompile(`^[A-Z2-7]{26}$`)
	for _, bad := range []string{
		strings.Repeat("r", 512<<10), // a 512 KiB header
		strings.Repeat("a", 65), "has space", "ünïcode", `"quoted"`, "a/b", "{json}",
	} {
		status, rid, _ := send(t, base, path, token, map[string]string{"X-Request-ID": bad})
		if status != 404 || rid == bad || !ours.MatchString(rid) {
			t.Errorf("id %.20q…: %d, answered id %.40q; want 404 and a new id of ours", bad, status, rid)
		}
	}
	if n := longestLine(logs); n > 1024 {
		t.Errorf("a log line is %d bytes, want at most 1 KiB", n)
	}
	var refused []any
	for _, e := range logs.With(t, "request") {
		if n, ok := e["refusedRequestIdBytes"]; ok {
			refused = append(refused, n)
		}
	}
	if len(refused) != 7 || refused[0] != float64(512<<10) {
		t.Errorf("refused ids logged as %v, want their 7 lengths, 524288 first", refused)
	}
}

func TestLoggedParamsAreCapped(t *testing.T) {
	base, logs := newFakeServer(t, notFound{})
	huge := strings.Repeat("a", 120_000)
	// Unauthenticated: only the lengths.
	if status, _, _ := send(t, base, "/api2/atom/"+huge+"/uploads/"+huge, "", nil); status != 401 {
		t.Fatalf("no token: %d, want 401", status)
	}
	lines := logs.With(t, "request")
	if len(lines) != 1 {
		t.Fatalf("%d access lines, want 1", len(lines))
	}
	e := lines[0]
	if _, ok := e["atomId"]; ok || e["atomIdBytes"] != float64(120_000) || e["uploadIdBytes"] != float64(120_000) {
		t.Errorf("401 access line %v, want the ids' lengths and not the ids", e)
	}
	// Authenticated: capped, in the log and in the message.
	status, _, body := send(t, base, "/api2/atom/"+huge+"/uploads", token, nil)
	if status != 400 || len(body) > 512 || !strings.Contains(body, "(120000 bytes)") {
		t.Errorf("a huge atom id: %d, %d bytes of answer: %.300s; want a 400 quoting it cut", status, len(body), body)
	}
	if n := longestLine(logs); n > 1024 {
		t.Errorf("a log line is %d bytes, want at most 1 KiB", n)
	}
	lines = logs.With(t, "request")
	if a, _ := lines[1]["atomId"].(string); !strings.HasPrefix(a, "aaaa") || !strings.HasSuffix(a, "…(120000 bytes)") || len(a) > 200 {
		t.Errorf("authenticated access line atomId %q, want it cut", a)
	}
	// A valid atom id is logged whole.
	send(t, base, "/api2/atom/"+strings.Repeat("b", 100)+"/uploads/01JZ4Q7V9X8Y6W5T3S2R1P0N9M", token, nil)
	lines = logs.With(t, "request")
	if a := lines[2]["atomId"]; a != strings.Repeat("b", 100) {
		t.Errorf("a 100-character atom id is logged as %q, want whole", a)
	}
}
