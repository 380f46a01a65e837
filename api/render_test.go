package api

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"atomuploads/api/rest"
	"atomuploads/upload"
)

func testUpload(t testing.TB, size int64, filename string, complete func(n int) bool) *upload.Upload {
	t.Helper()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	id, err := upload.NewID(now, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, err := upload.New(upload.StartRequest{
		Filename: filename, Size: size, ContentType: "video/mp4",
		Destinations: []upload.DestinationRequest{
			{Type: upload.YouTube, YouTube: upload.YouTubeMetadata{Title: "A clip"}},
			{Type: upload.S3Bucket},
		},
	}, "atom-1", id, now, "eu-west-1", "bucket", 8*upload.MiB)
	if err != nil {
		t.Fatal(err)
	}
	for n := range u.PartCount() {
		if complete(n) {
			u.Completed[n] = true
		}
	}
	u.Destinations[0].UploadedBytes = 12345
	u.Destinations[0].VideoID = "vid"
	u.Destinations[1].Outputs = []string{"out/a.mp4", "out/<b>.jpg"}
	return u
}

// wholeRecord is the record built whole, as the API rendered it before it
// streamed: encoding/json of the complete rest.Upload.
func wholeRecord(u *upload.Upload, creds *rest.Credentials) rest.Upload {
	v := view(u)
	for n, p := range u.Parts() {
		v.Parts = append(v.Parts, rest.Part{Start: p.Start, End: p.End, Key: u.PartKey(n), Complete: u.Completed[n]})
	}
	v.Credentials = creds
	return v
}

func render(t testing.TB, u *upload.Upload, v recordView, creds *rest.Credentials) []byte {
	t.Helper()
	var b bytes.Buffer
	rw := newRecordWriter(&b)
	if err := rw.record(u, v, creds); err != nil {
		t.Fatal(err)
	}
	if err := rw.flush(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestStreamedRecordIsEncodingJSONs: the record written a part at a time is
// byte for byte what encoding/json writes for the whole rest.Upload (plus
// echo's newline), credentials included, escaping included.
func TestStreamedRecordIsEncodingJSONs(t *testing.T) {
	creds := &rest.Credentials{AccessKeyID: "AKIA", SecretAccessKey: "s<e>cret", SessionToken: "tok&en", Expiry: 1275617265}
	for _, tt := range []struct {
		name string
		u    *upload.Upload
	}{
		{"one part", testUpload(t, 1, "a.mp4", func(int) bool { return false })},
		{"three parts, odd name", testUpload(t, 24617583, `clip "<one>" & ünïcode.mp4`, func(n int) bool { return n == 1 })},
		{"the largest", testUpload(t, upload.MaxFileSize, "big.mp4", func(n int) bool { return n%7 != 0 })},
	} {
		for _, c := range []*rest.Credentials{nil, creds} {
			want, err := json.Marshal(wholeRecord(tt.u, c))
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, '\n')
			if got := render(t, tt.u, viewFull, c); !bytes.Equal(got, want) {
				t.Errorf("%s (credentials %v): streamed record differs from encoding/json's:\n got %.300s\nwant %.300s", tt.name, c != nil, got, want)
			}
		}
	}
}

func TestSummaryView(t *testing.T) {
	for _, tt := range []struct {
		name     string
		size     int64
		complete func(int) bool
		want     string
	}{
		{"none in", 100 * upload.MiB, func(int) bool { return false }, `"partsTotal":13,"partsComplete":0,"partsMissing":[[0,12]]`},
		{"all in", 100 * upload.MiB, func(int) bool { return true }, `"partsTotal":13,"partsComplete":13,"partsMissing":[]`},
		{"gaps", 100 * upload.MiB, func(n int) bool { return n < 3 || (n > 7 && n != 12) }, `"partsTotal":13,"partsComplete":7,"partsMissing":[[3,7],[12,12]]`},
		{"first and last", 100 * upload.MiB, func(n int) bool { return n != 0 && n != 12 }, `"partsTotal":13,"partsComplete":11,"partsMissing":[[0,0],[12,12]]`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u := testUpload(t, tt.size, "a.mp4", tt.complete)
			got := string(render(t, u, viewSummary, nil))
			if !strings.Contains(got, `]`+","+tt.want+"}\n") || strings.Contains(got, `"parts":`) {
				t.Errorf("summary = %s\nwant it to end in the destinations then %s, with no parts", got, tt.want)
			}
			var v rest.Upload
			if err := json.Unmarshal([]byte(got), &v); err != nil {
				t.Fatal(err)
			}
			if v.Parts != nil || v.PartsTotal == nil || v.PartsComplete == nil || v.ID != u.ID || len(v.Destinations) != 2 {
				t.Errorf("decoded summary = %+v", v)
			}
		})
	}
	// The summary of the largest upload is small, however its parts lie.
	u := testUpload(t, upload.MaxFileSize, "big.mp4", func(n int) bool { return n%1000 >= 3 })
	if got := render(t, u, viewSummary, nil); len(got) > 2048 || !strings.Contains(string(got), `"partsMissing":[[0,2],[1000,1002],`) {
		t.Errorf("summary of %d parts is %d bytes: %s", u.PartCount(), len(got), got)
	}
}

func TestCursorRoundTripAndForgery(t *testing.T) {
	id := "01JZ4Q7V9X8Y6W5T3S2R1P0N9M"
	if got, err := decodeCursor(encodeCursor(id)); err != nil || got != id {
		t.Errorf("round trip: %q %v", got, err)
	}
	for _, bad := range []string{
		"nope!", encodeCursor("not-an-upload-id"), encodeCursor(id + "x"), encodeCursor(`{"atomId":"other"}`),
		strings.Repeat("A", 10000), encodeCursor(id) + "==",
	} {
		if _, err := decodeCursor(bad); upload.ErrorCode(err) != upload.EINVALID || !strings.Contains(upload.ErrorMessage(err), "cursor is not one this API gave") {
			t.Errorf("cursor %.40q: error %v, want EINVALID", bad, err)
		}
	}
}

func TestStatusParam(t *testing.T) {
	got, err := statusParam([]string{"failed,expired", "failed", " cancelled"})
	if err != nil || !slices.Equal(got, []upload.Status{upload.StatusFailed, "expired", upload.StatusCancelled}) {
		t.Errorf("statuses = %v, %v", got, err)
	}
	for _, bad := range [][]string{{"bogus"}, {"failed,"}, {""}, {strings.Repeat("x", 5000)}} {
		_, err := statusParam(bad)
		msg := upload.ErrorMessage(err)
		if upload.ErrorCode(err) != upload.EINVALID || !strings.Contains(msg, "uploading, processing, complete, failed, cancelled, expired") || len(msg) > 400 {
			t.Errorf("status=%.40q: %v, want EINVALID naming the valid ones, short", bad, err)
		}
	}
}

func TestClip(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"", ""},
		{strings.Repeat("a", 128), strings.Repeat("a", 128)},
		{strings.Repeat("a", 129), strings.Repeat("a", 128) + "…(129 bytes)"},
		{strings.Repeat("a", 127) + "é" + "z", strings.Repeat("a", 127) + "…(130 bytes)"}, // é is not cut in half
	} {
		if got := clip(tt.in); got != tt.want {
			t.Errorf("clip(%d bytes) = %q, want %q", len(tt.in), got, tt.want)
		}
	}
}

// TestOutputsOfAnOlderRecord: a record from before outputs were described
// keeps only their keys; each is rendered with the kind its name says.
func TestOutputsOfAnOlderRecord(t *testing.T) {
	d := upload.Destination{Type: upload.S3Bucket, Outputs: []string{
		"a/u/hls/master.m3u8", "a/u/hls/master_720p.m3u8", "a/u/hls/master_audio.m3u8", "a/u/720p.mp4", "a/u/poster.0000000.jpg",
	}}
	var got []string
	for _, o := range outputs(d) {
		got = append(got, o.Key+"="+o.Kind)
	}
	want := []string{
		"a/u/hls/master.m3u8=hls", "a/u/hls/master_720p.m3u8=hlsVideo", "a/u/hls/master_audio.m3u8=hlsAudio",
		"a/u/720p.mp4=mp4", "a/u/poster.0000000.jpg=poster",
	}
	if !slices.Equal(got, want) {
		t.Errorf("outputs = %v, want %v", got, want)
	}
}
