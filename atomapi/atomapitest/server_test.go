package atomapitest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

const (
	secret = "shared-secret"
	path   = "/api2/atoms/abc/assets"
	body   = `{"uri":"https://www.youtube.com/watch?v=dQw4w9WgXcQ"}`
)

func signature(secret, date, path string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(date + "\n" + path))
	return "HMAC " + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func TestServerAuthenticatesAndValidates(t *testing.T) {
	now := time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)
	date := now.Format(http.TimeFormat)
	good := map[string]string{
		"Content-Type":            "application/json",
		"X-Gu-Tools-HMAC-Date":    date,
		"X-Gu-Tools-HMAC-Token":   signature(secret, date, path),
		"X-Gu-Tools-Service-Name": "atom-uploads",
	}
	with := func(k, v string) map[string]string {
		h := map[string]string{}
		for key, val := range good {
			h[key] = val
		}
		h[k] = v
		return h
	}
	edge := now.Add(-5 * time.Minute).Format(http.TimeFormat)
	skewed := now.Add(-5*time.Minute - time.Second).Format(http.TimeFormat)
	tests := []struct {
		name       string
		method     string
		path       string
		headers    map[string]string
		body       string
		wantStatus int
		wantCall   bool
	}{
		{"signed", http.MethodPost, path, good, body, 200, true},
		{"signed 5 minutes ago", http.MethodPost, path, map[string]string{"Content-Type": "application/json", "X-Gu-Tools-HMAC-Date": edge, "X-Gu-Tools-HMAC-Token": signature(secret, edge, path), "X-Gu-Tools-Service-Name": "x"}, body, 200, true},
		{"date changed after signing", http.MethodPost, path, with("X-Gu-Tools-HMAC-Date", edge), body, 401, false},
		{"date out of range", http.MethodPost, path, map[string]string{"Content-Type": "application/json", "X-Gu-Tools-HMAC-Date": skewed, "X-Gu-Tools-HMAC-Token": signature(secret, skewed, path), "X-Gu-Tools-Service-Name": "x"}, body, 401, false},
		{"date not an HTTP date", http.MethodPost, path, with("X-Gu-Tools-HMAC-Date", now.Format(time.RFC3339)), body, 401, false},
		{"signature of another path", http.MethodPost, path, with("X-Gu-Tools-HMAC-Token", signature(secret, date, "/api2/atoms/other/assets")), body, 401, false},
		{"signature with another secret", http.MethodPost, path, with("X-Gu-Tools-HMAC-Token", signature("other", date, path)), body, 401, false},
		{"no service name", http.MethodPost, path, with("X-Gu-Tools-Service-Name", ""), body, 401, false},
		{"bearer token", http.MethodPost, path, map[string]string{"Content-Type": "application/json", "Authorization": "Bearer tok"}, body, 200, true},
		{"wrong bearer token", http.MethodPost, path, map[string]string{"Content-Type": "application/json", "Authorization": "Bearer nope"}, body, 401, false},
		{"no credentials", http.MethodPost, path, map[string]string{"Content-Type": "application/json"}, body, 401, false},
		{"GET", http.MethodGet, path, good, "", 405, false},
		{"POST to the atom", http.MethodPost, "/api2/atoms/abc", good, body, 405, false},
		{"other route", http.MethodPost, "/api2/atoms/abc/other", good, body, 404, false},
		{"not JSON", http.MethodPost, path, with("Content-Type", "text/plain"), body, 415, false},
		{"bad JSON", http.MethodPost, path, good, `{"url":"x"}`, 400, false},
		{"not a watch URL", http.MethodPost, path, good, `{"uri":"https://www.youtube.com/watch?v=short"}`, 400, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := New(Options{HMACSecret: secret, Token: "tok", Now: func() time.Time { return now }})
			hs := httptest.NewServer(srv)
			defer hs.Close()
			req, err := http.NewRequest(tt.method, hs.URL+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.headers {
				if v != "" {
					req.Header.Set(k, v)
				}
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d (rejected: %q)", resp.StatusCode, tt.wantStatus, srv.Rejected())
			}
			if got := len(srv.Calls("abc")) == 1; got != tt.wantCall {
				t.Errorf("recorded a call = %v, want %v", got, tt.wantCall)
			}
			if got := len(srv.Rejected()) == 0; got != tt.wantCall {
				t.Errorf("rejections = %q, want none only for accepted calls", srv.Rejected())
			}
		})
	}
}

func TestFailNext(t *testing.T) {
	srv := New(Options{Token: "tok"})
	hs := httptest.NewServer(srv)
	defer hs.Close()
	post := func() int {
		req, _ := http.NewRequest(http.MethodPost, hs.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer tok")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	srv.FailNext(1)
	srv.FailNextWith(2, http.StatusBadGateway)
	for i, want := range []int{502, 502, 200} {
		if got := post(); got != want {
			t.Errorf("request %d: status %d, want %d", i, got, want)
		}
	}
	if got, calls := srv.Requests(), srv.CallCount(); got != 3 || calls != 1 {
		t.Errorf("requests %d calls %d, want 3 and 1", got, calls)
	}
}

// TestAtomListsItsAssets: GET /api2/atoms/{id} answers the atom with its
// assets, one version for each POST, duplicates included (as
// media-atom-maker does), and is authenticated like the POST.
func TestAtomListsItsAssets(t *testing.T) {
	srv := New(Options{Token: "tok", Atoms: []string{"abc"}})
	hs := httptest.NewServer(srv)
	defer hs.Close()
	do := func(method, path, token, body string) (int, atom) {
		t.Helper()
		req, err := http.NewRequest(method, hs.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var a atom
		if resp.StatusCode == http.StatusOK {
			if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
				t.Fatalf("%s %s: the answer is not an atom: %v", method, path, err)
			}
		}
		return resp.StatusCode, a
	}
	if code, a := do(http.MethodGet, "/api2/atoms/abc", "tok", ""); code != 200 || a.ID != "abc" || len(a.Assets) != 0 {
		t.Fatalf("new atom: %d %+v, want 200 and no assets", code, a)
	}
	do(http.MethodPost, path, "tok", body)
	do(http.MethodPost, path, "tok", body)
	code, a := do(http.MethodGet, "/api2/atoms/abc", "tok", "")
	want := []asset{
		{AssetType: "Video", Platform: "Youtube", ID: "dQw4w9WgXcQ", Version: 1},
		{AssetType: "Video", Platform: "Youtube", ID: "dQw4w9WgXcQ", Version: 2},
	}
	if code != 200 || !reflect.DeepEqual(a.Assets, want) {
		t.Errorf("atom after two posts: %d %+v, want 200 %+v", code, a.Assets, want)
	}
	if code, _ := do(http.MethodGet, "/api2/atoms/nope", "tok", ""); code != http.StatusNotFound {
		t.Errorf("unknown atom: %d, want 404", code)
	}
	if code, _ := do(http.MethodGet, "/api2/atoms/abc", "wrong", ""); code != http.StatusUnauthorized {
		t.Errorf("wrong token: %d, want 401", code)
	}
}
