package youtubetest

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"

	"golang.org/x/oauth2"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"
	yt "google.golang.org/api/youtube/v3"
)

// libraryService returns the generated YouTube client of
// google.golang.org/api, authorised by the fixture's token endpoint.
func libraryService(t testing.TB, f *fixture) *yt.Service {
	t.Helper()
	conf := &oauth2.Config{
		ClientID:     testClientID,
		ClientSecret: testClientSecret,
		Endpoint:     oauth2.Endpoint{TokenURL: f.hs.URL + "/token"},
	}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Transport: ownBodies{http.DefaultTransport}})
	svc, err := yt.NewService(ctx,
		option.WithEndpoint(f.hs.URL+"/"),
		option.WithHTTPClient(conf.Client(ctx, &oauth2.Token{RefreshToken: testRefreshToken})))
	if err != nil {
		t.Fatalf("NewService: %v", err)
	}
	return svc
}

// ownBodies sends a copy of each request body. The library reuses its
// chunk buffer as soon as an answer comes, while net/http may still be
// writing the previous body (the stand-in answers some injected failures
// before reading it): a data race of the library's, which the copy keeps
// out of these tests. The service's own client does not reuse buffers.
type ownBodies struct{ next http.RoundTripper }

func (o ownBodies) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return o.next.RoundTrip(r)
	}
	b, err := io.ReadAll(r.Body)
	r.Body.Close()
	if err != nil {
		return nil, err
	}
	c := r.Clone(r.Context())
	c.Body = io.NopCloser(bytes.NewReader(b))
	c.ContentLength = int64(len(b))
	return o.next.RoundTrip(c)
}

// The Go client library speaks its own form of the protocol
// (X-GUploader-No-308, Content-Range bytes a-b/* until the last chunk).
func TestGoClientLibraryUpload(t *testing.T) {
	const chunk = 4 * ChunkAlign
	tests := []struct {
		name       string
		size       int
		opts       Options
		wantChunks int
	}{
		{name: "ends mid-chunk", size: 3*chunk + 12345, wantChunks: 4},
		{name: "ends on a chunk boundary", size: 4 * chunk, wantChunks: 4},
		{name: "with injected failures", size: 5*chunk + 1, opts: Options{FailRate: 0.2, Seed: 5}, wantChunks: 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.opts)
			svc := libraryService(t, f)
			data := testData(tt.size, uint64(tt.size))
			v, err := svc.Videos.Insert([]string{"snippet", "status"}, &yt.Video{
				Snippet: &yt.VideoSnippet{Title: "Library upload", Tags: []string{"x"}},
				Status:  &yt.VideoStatus{PrivacyStatus: "unlisted"},
			}).Media(bytes.NewReader(data), googleapi.ChunkSize(chunk), googleapi.ContentType("video/mp4")).Do()
			if err != nil {
				t.Fatalf("Videos.Insert: %v", err)
			}
			got, ok := f.srv.Video(v.Id)
			if !ok {
				t.Fatalf("video %q is not on the server", v.Id)
			}
			if got.SHA256 != sha(data) || got.Size != int64(tt.size) {
				t.Errorf("video size %d sha256 %s, want %d %s", got.Size, got.SHA256, tt.size, sha(data))
			}
			if got.Title != "Library upload" || got.PrivacyStatus != "unlisted" || got.ContentType != "video/mp4" {
				t.Errorf("video metadata = %+v, want title Library upload, unlisted, video/mp4", got)
			}
			if v.Snippet == nil || v.Snippet.Title != "Library upload" || v.Status == nil || v.Status.UploadStatus != "uploaded" {
				t.Errorf("returned video = %+v, want the snippet and uploadStatus uploaded", v)
			}
			if len(got.Chunks) != tt.wantChunks {
				t.Errorf("chunks = %+v, want %d", got.Chunks, tt.wantChunks)
			}
			if tt.opts.FailRate > 0 && f.srv.Requests()[KindInjected] == 0 {
				t.Errorf("no failure was injected")
			}
			if viol := f.srv.Violations(); len(viol) != 0 {
				t.Errorf("violations = %q, want none", viol)
			}

			// videos.list through the same library.
			list, err := svc.Videos.List([]string{"status", "processingDetails"}).Id(v.Id).Do()
			if err != nil {
				t.Fatalf("Videos.List: %v", err)
			}
			if len(list.Items) != 1 || list.Items[0].ProcessingDetails == nil || list.Items[0].ProcessingDetails.ProcessingProgress == nil {
				t.Fatalf("list = %+v, want one video with processing progress", list.Items)
			}
			pd := list.Items[0].ProcessingDetails
			if pd.ProcessingStatus != "processing" || pd.ProcessingProgress.PartsTotal != DefaultProcessingSteps || pd.ProcessingProgress.PartsProcessed != 0 {
				t.Errorf("processing = %s %d/%d, want processing 0/%d", pd.ProcessingStatus,
					pd.ProcessingProgress.PartsProcessed, pd.ProcessingProgress.PartsTotal, DefaultProcessingSteps)
			}
		})
	}
}
