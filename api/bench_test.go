package api_test

import (
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"testing"
	"time"

	"atomuploads/api"
	"atomuploads/upload"
)

// bigUpload is an upload of the largest size (9,987 parts), every part
// complete but three in each thousand.
func bigUpload(t testing.TB, atomID string) *upload.Upload {
	t.Helper()
	id, err := upload.NewID(time.Now(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, err := upload.New(upload.StartRequest{
		Filename: "clip.mp4", Size: upload.MaxFileSize, ContentType: "video/mp4",
		Destinations: []upload.DestinationRequest{
			{Type: upload.YouTube, YouTube: upload.YouTubeMetadata{Title: "A clip"}},
			{Type: upload.S3Bucket},
		},
	}, atomID, id, time.Now(), "eu-west-1", "bucket", 8*upload.MiB)
	if err != nil {
		t.Fatal(err)
	}
	for n := range u.PartCount() {
		if n%1000 >= 3 {
			u.Completed[n] = true
		}
	}
	return u
}

// oneUpload is a progress table of one record, in memory.
type oneUpload struct {
	api.Uploads
	u *upload.Upload
}

func (o oneUpload) Get(context.Context, string, string) (*upload.Upload, error) { return o.u, nil }

// BenchmarkGetLargestUpload measures GET of one upload of 9,987 parts
// (about 1.2 MB of JSON), read by a client in the same process: bytes and
// allocations per request. table=memory is the API alone (the record comes
// from memory); table=dynamodb also reads and decodes it from DynamoDB
// Local.
//
//	scripts/with-stack go test -run '^$' -bench GetLargestUpload -benchtime 3s ./api/
func BenchmarkGetLargestUpload(b *testing.B) {
	bench := func(b *testing.B, base, atomID, id string) {
		url := base + "/api2/atom/" + atomID + "/uploads/" + id
		b.ReportAllocs()
		for b.Loop() {
			req, _ := http.NewRequest("GET", url, http.NoBody)
			req.Header.Set("Authorization", "Bearer "+token)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			n, _ := io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				b.Fatalf("status %d", res.StatusCode)
			}
			b.SetBytes(n)
		}
	}
	b.Run("table=memory", func(b *testing.B) {
		u := bigUpload(b, "bench")
		base, _ := newFakeServer(b, oneUpload{u: u})
		bench(b, base, "bench", u.ID)
	})
	b.Run("table=dynamodb", func(b *testing.B) {
		h := newHarness(b)
		u := bigUpload(b, "bench")
		if err := h.store.Create(context.Background(), u); err != nil {
			b.Fatal(err)
		}
		bench(b, h.url, "bench", u.ID)
	})
}
