package youtube_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"testing"

	"atomuploads/youtube"
	"atomuploads/youtube/youtubetest"
)

// TestErrorClasses: YouTube's answers, as the stand-in gives them in
// Google's JSON error shape, are classified by what the caller should do.
func TestErrorClasses(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name      string
		status    int
		reason    string
		wantClass youtube.Class
		wantField string
	}{
		{"quota", http.StatusForbidden, "quotaExceeded", youtube.ClassQuota, ""},
		{"daily limit", http.StatusForbidden, "dailyLimitExceeded", youtube.ClassQuota, ""},
		{"upload limit", http.StatusBadRequest, "uploadLimitExceeded", youtube.ClassUploadLimit, ""},
		{"rate limit", http.StatusForbidden, "rateLimitExceeded", youtube.ClassTemporary, ""},
		{"backend", http.StatusServiceUnavailable, "backendError", youtube.ClassTemporary, ""},
		{"channel forbidden", http.StatusForbidden, "forbidden", youtube.ClassCredentials, ""},
		{"title", http.StatusBadRequest, "invalidTitle", youtube.ClassRequest, "title"},
		{"description", http.StatusBadRequest, "invalidDescription", youtube.ClassRequest, "description"},
		{"tags", http.StatusBadRequest, "invalidTags", youtube.ClassRequest, "tags"},
		{"category", http.StatusBadRequest, "invalidCategoryId", youtube.ClassRequest, "categoryId"},
		{"metadata", http.StatusBadRequest, "invalidVideoMetadata", youtube.ClassRequest, "metadata"},
		{"something else", http.StatusBadRequest, "somethingElse", youtube.ClassRefused, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, youtubetest.Options{}, nil, nil)
			e.srv.Refuse(youtubetest.KindInitiate, tt.status, tt.reason)
			_, err := e.c.StartSession(context.Background(), meta, 10, "video/mp4")
			var ye *youtube.Error
			if !errors.As(err, &ye) {
				t.Fatalf("StartSession error = %v, want a *youtube.Error", err)
			}
			if got := ye.Class(); got != tt.wantClass || ye.Field() != tt.wantField || youtube.ClassOf(err) != tt.wantClass {
				t.Errorf("%s: class %s field %q, want %s %q", tt.reason, got, ye.Field(), tt.wantClass, tt.wantField)
			}
			checkSecretFree(t, e, err)
		})
	}
}

// TestRefusedCredentialsAreTheirOwnClass: a refresh token the token
// endpoint refuses (invalid_grant) is a credentials problem, not a
// temporary one; a context that ends is not YouTube's answer at all.
func TestRefusedCredentialsAreTheirOwnClass(t *testing.T) {
	t.Parallel()
	e := newEnv(t, youtubetest.Options{}, nil, func(c *youtube.Config) { c.RefreshToken = "revoked" })
	_, err := e.c.StartSession(context.Background(), meta, 10, "video/mp4")
	if got := youtube.ClassOf(err); got != youtube.ClassCredentials {
		t.Errorf("class of %v = %s, want credentials", err, got)
	}
	if got := youtube.ClassOf(context.Canceled); got != youtube.ClassTemporary {
		t.Errorf("class of a cut context = %s, want temporary", got)
	}
}

// TestRefusedChunksCommitNothing: a chunk refused with quotaExceeded
// commits nothing; once the refusal is lifted the same session goes on.
func TestRefusedChunksCommitNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, youtubetest.Options{}, nil, nil)
	data := testData(512<<10, 3)
	uri, err := e.c.StartSession(context.Background(), meta, int64(len(data)), "video/mp4")
	if err != nil {
		t.Fatal(err)
	}
	e.srv.Refuse(youtubetest.KindChunk, http.StatusForbidden, "quotaExceeded")
	_, err = e.c.PutChunk(context.Background(), uri, bytes.NewReader(data[:256<<10]), 0, 256<<10, int64(len(data)))
	if youtube.ClassOf(err) != youtube.ClassQuota {
		t.Fatalf("refused chunk: %v, want a quota error", err)
	}
	p, err := e.c.Offset(context.Background(), uri, int64(len(data)))
	if err != nil || p.Committed != 0 {
		t.Fatalf("offset after a refused chunk = %+v, %v; want 0 committed", p, err)
	}
	e.srv.Refuse(youtubetest.KindChunk, 0, "")
	p, _ = relay(t, e, uri, data, 256<<10)
	if !p.Done {
		t.Fatalf("relay after the refusal lifted: %+v, want done", p)
	}
	if v, ok := e.srv.Video(p.VideoID); !ok || v.SHA256 != sha(data) || len(e.srv.Violations()) > 0 {
		t.Errorf("video %+v (violations %v), want the file byte-exact", v, e.srv.Violations())
	}
}
