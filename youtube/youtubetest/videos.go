package youtubetest

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	yt "google.golang.org/api/youtube/v3"
)

type video struct {
	id       string
	sess     *session
	sha256   string
	polls    int
	failure  string // processing failure reason, if made to fail
	rejected string // rejection reason, if made to be rejected
	uploaded time.Time
}

var videoParts = map[string]bool{
	"id": true, "snippet": true, "status": true, "contentDetails": true, "fileDetails": true,
	"liveStreamingDetails": true, "localizations": true, "player": true, "processingDetails": true,
	"recordingDetails": true, "statistics": true, "suggestions": true, "topicDetails": true,
	"paidProductPlacementDetails": true,
}

// listParam joins the values of a list parameter, which may come as one
// comma-separated value or repeated (the Go client library repeats it).
func listParam(q url.Values, name string) []string {
	var out []string
	for _, v := range q[name] {
		for _, item := range strings.Split(v, ",") {
			if item = strings.TrimSpace(item); item != "" {
				out = append(out, item)
			}
		}
	}
	return out
}

// checkParts validates the part parameter; it returns the parts or a problem.
func checkParts(q url.Values) ([]string, string) {
	parts := listParam(q, "part")
	if len(parts) == 0 {
		return nil, "No filter selected. Expected one of: part"
	}
	for _, part := range parts {
		if !videoParts[part] {
			return nil, fmt.Sprintf("'%s' is not a valid value for part", part)
		}
	}
	return parts, ""
}

// videoResource renders a video with the requested parts; s.mu is held.
// Uploaded videos report "processing" for ProcessingSteps polls of
// videos.list, one part more each time, then "succeeded" (uploadStatus
// "processed"); see serveList.
func (s *Server) videoResource(v *video, parts []string) *yt.Video {
	out := &yt.Video{Kind: "youtube#video", Id: v.id, Etag: "etag-" + v.id}
	m := v.sess.meta
	uploadStatus, processing := "uploaded", "processing"
	switch {
	case v.rejected != "":
		uploadStatus, processing = "rejected", "succeeded"
	case v.failure != "":
		uploadStatus, processing = "failed", "failed"
	case v.polls >= s.steps:
		uploadStatus, processing = "processed", "succeeded"
	}
	for _, p := range parts {
		switch p {
		case "snippet":
			out.Snippet = &yt.VideoSnippet{
				Title:        m.Title,
				Description:  m.Description,
				Tags:         slices.Clone(m.Tags),
				CategoryId:   m.CategoryID,
				ChannelId:    "UCyoutubetest00000000000",
				ChannelTitle: "youtubetest",
				PublishedAt:  v.uploaded.UTC().Format(time.RFC3339),
			}
		case "status":
			out.Status = &yt.VideoStatus{
				UploadStatus:    uploadStatus,
				PrivacyStatus:   m.PrivacyStatus,
				FailureReason:   v.failure,
				RejectionReason: v.rejected,
				License:         "youtube",
				Embeddable:      true,
			}
		case "processingDetails":
			d := &yt.VideoProcessingDetails{ProcessingStatus: processing}
			switch processing {
			case "processing":
				d.ProcessingProgress = &yt.VideoProcessingDetailsProcessingProgress{
					PartsTotal:     uint64(s.steps),
					PartsProcessed: uint64(v.polls),
					// A minute a part still to go, as YouTube estimates it.
					TimeLeftMs: uint64(s.steps-v.polls) * 60_000,
					// Zero values are sent too: 0 parts processed is news.
					ForceSendFields: []string{"PartsProcessed", "PartsTotal", "TimeLeftMs"},
				}
			case "failed":
				d.ProcessingFailureReason = "other"
			}
			out.ProcessingDetails = d
		}
	}
	return out
}

// serveList is videos.list: GET /youtube/v3/videos?part=…&id=a,b. Each
// listed video that is still processing moves one step further per call.
func (s *Server) serveList(w http.ResponseWriter, r *http.Request) {
	s.count(KindList)
	q := r.URL.Query()
	parts, problem := checkParts(q)
	if problem != "" {
		writeError(w, http.StatusBadRequest, "invalidParameter", problem)
		return
	}
	ids := listParam(q, "id")
	if len(ids) == 0 {
		writeError(w, http.StatusBadRequest, "missingRequiredParameter", "No filter selected. Expected one of: id")
		return
	}
	type pageInfo struct {
		TotalResults   int `json:"totalResults"`
		ResultsPerPage int `json:"resultsPerPage"`
	}
	resp := struct {
		Kind     string      `json:"kind"`
		Etag     string      `json:"etag"`
		Items    []*yt.Video `json:"items"`
		PageInfo pageInfo    `json:"pageInfo"`
	}{Kind: "youtube#videoListResponse", Etag: "etag-list", Items: []*yt.Video{}}
	s.mu.Lock()
	for _, id := range ids {
		v := s.videos[id]
		if v == nil {
			continue
		}
		resp.Items = append(resp.Items, s.videoResource(v, parts))
		if v.failure == "" && v.rejected == "" && v.polls < s.steps {
			v.polls++
		}
	}
	s.mu.Unlock()
	resp.PageInfo = pageInfo{TotalResults: len(resp.Items), ResultsPerPage: len(resp.Items)}
	writeJSON(w, http.StatusOK, resp)
}
