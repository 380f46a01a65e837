package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"atomuploads/upload"
)

// A complete s3Bucket destination shows its outputs typed (key, kind,
// picture size, bitrate) and the master playlist as playback; a record
// from before outputs were described gets the kinds their keys say.
func TestTranscodedOutputsAreRendered(t *testing.T) {
	h := newHarness(t)
	res := h.do(t, "POST", "/api2/atom/atom-1/uploads", token, startBody(1))
	if res.status != http.StatusCreated {
		t.Fatalf("start: %d %s", res.status, res.body)
	}
	id := decode[record](t, res).ID
	prefix := "atom-1/" + id + "/"
	files := []upload.OutputFile{
		{Key: prefix + "hls/master.m3u8", Kind: "hls"},
		{Key: prefix + "hls/master_720p.m3u8", Kind: "hlsVideo", Width: 1280, Height: 720, Bitrate: 3_100_000},
		{Key: prefix + "hls/master_audio.m3u8", Kind: "hlsAudio", Bitrate: 128_000},
		{Key: prefix + "720p.mp4", Kind: "mp4", Width: 1280, Height: 720, Bitrate: 2_400_000},
		{Key: prefix + "poster.0000000.jpg", Kind: "poster", Width: 1280, Height: 720},
	}
	if _, err := h.store.Update(context.Background(), "atom-1", id, func(u *upload.Upload) error {
		d := u.Destination(upload.S3Bucket)
		d.Status, d.Progress, d.JobID, d.Playback, d.Files = upload.DestTranscoding, 100, "job-1", prefix+"hls/master.m3u8", files
		for _, f := range files {
			d.Outputs = append(d.Outputs, f.Key)
		}
		return d.MoveTo(upload.DestComplete)
	}); err != nil {
		t.Fatal(err)
	}
	got := h.do(t, "GET", "/api2/atom/atom-1/uploads/"+id, token, nil)
	var rec struct {
		Destinations []struct {
			Type    string `json:"type"`
			Details struct {
				JobID    string            `json:"jobId"`
				Outputs  []json.RawMessage `json:"outputs"`
				Playback string            `json:"playback"`
			} `json:"details"`
		} `json:"destinations"`
	}
	if err := json.Unmarshal(got.body, &rec); err != nil {
		t.Fatalf("decode %s: %v", got.body, err)
	}
	d := rec.Destinations[1].Details
	if rec.Destinations[1].Type != "s3Bucket" || d.JobID != "job-1" || d.Playback != prefix+"hls/master.m3u8" {
		t.Errorf("details = %+v, want job-1 with the master playlist as playback", d)
	}
	want := []string{
		`{"key":"` + prefix + `hls/master.m3u8","kind":"hls"}`,
		`{"key":"` + prefix + `hls/master_720p.m3u8","kind":"hlsVideo","width":1280,"height":720,"bitrate":3100000}`,
		`{"key":"` + prefix + `hls/master_audio.m3u8","kind":"hlsAudio","bitrate":128000}`,
		`{"key":"` + prefix + `720p.mp4","kind":"mp4","width":1280,"height":720,"bitrate":2400000}`,
		`{"key":"` + prefix + `poster.0000000.jpg","kind":"poster","width":1280,"height":720}`,
	}
	if len(d.Outputs) != len(want) {
		t.Fatalf("outputs = %s, want %d", d.Outputs, len(want))
	}
	for i, r := range d.Outputs {
		if string(r) != want[i] {
			t.Errorf("outputs[%d] = %s, want %s", i, r, want[i])
		}
	}
	// A destination that is not complete has neither.
	list := h.do(t, "GET", "/api2/atom/atom-1/uploads/"+decode[record](t, h.do(t, "POST", "/api2/atom/atom-1/uploads", token, startBody(1))).ID, token, nil)
	var fresh struct {
		Destinations []struct {
			Details map[string]any `json:"details"`
		} `json:"destinations"`
	}
	if err := json.Unmarshal(list.body, &fresh); err != nil {
		t.Fatal(err)
	}
	if _, ok := fresh.Destinations[1].Details["playback"]; ok {
		t.Errorf("a waiting destination's details = %v, want no playback", fresh.Destinations[1].Details)
	}
}
