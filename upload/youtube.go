package upload

import "fmt"

// YouTubeProcessing is what YouTube reports about an uploaded video: its
// status and processingDetails (videos.list).
type YouTubeProcessing struct {
	// UploadStatus is status.uploadStatus: uploaded (processing),
	// processed, failed, rejected or deleted.
	UploadStatus string
	// ProcessingStatus is processingDetails.processingStatus: processing,
	// succeeded, failed or terminated.
	ProcessingStatus string
	// PartsProcessed and PartsTotal are
	// processingDetails.processingProgress, while YouTube is processing.
	PartsProcessed int64
	PartsTotal     int64
	// FailureReason is status.failureReason (or
	// processingDetails.processingFailureReason) when the upload failed.
	FailureReason string
	// RejectionReason is status.rejectionReason when YouTube rejected it.
	RejectionReason string
	// TimeLeftMs is processingDetails.processingProgress.timeLeftMs:
	// YouTube's estimate of the processing time left, while it processes.
	TimeLeftMs int64
}

// Done reports whether YouTube has finished processing the video well: a
// rejected video's processing may have succeeded, but it is not done well.
func (p YouTubeProcessing) Done() bool {
	return !p.Failed() && (p.ProcessingStatus == "succeeded" || p.UploadStatus == "processed")
}

// Failed reports whether YouTube will not publish the video.
func (p YouTubeProcessing) Failed() bool {
	switch {
	case p.ProcessingStatus == "failed", p.ProcessingStatus == "terminated":
		return true
	case p.UploadStatus == "failed", p.UploadStatus == "rejected", p.UploadStatus == "deleted":
		return true
	}
	return false
}

// rejections say status.rejectionReason in words.
var rejections = map[string]string{
	"duplicate":                "as a duplicate of one already on the channel",
	"copyright":                "for copyright infringement",
	"claim":                    "because of a copyright claim",
	"length":                   "because it is longer than the channel may upload",
	"inappropriate":            "as inappropriate",
	"termsOfUse":               "for breaking YouTube's terms of use",
	"trademark":                "for trademark infringement",
	"uploaderAccountClosed":    "because the channel's account is closed",
	"uploaderAccountSuspended": "because the channel's account is suspended",
	"legal":                    "for legal reasons",
}

// failures say status.failureReason (and processingFailureReason) in words.
var failures = map[string]string{
	"codec":           "it uses a codec YouTube does not support",
	"conversion":      "YouTube could not convert it",
	"emptyFile":       "the file is empty",
	"invalidFile":     "the file is not a video YouTube can read",
	"tooSmall":        "the file is too small to be a video",
	"uploadAborted":   "the upload was aborted",
	"transcodeFailed": "YouTube could not transcode it",
	"streamingFailed": "YouTube could not stream it",
	"other":           "YouTube did not say why",
}

// Failure is the readable reason of a failed processing, in plain words.
func (p YouTubeProcessing) Failure() string {
	switch {
	case p.RejectionReason != "":
		if w, ok := rejections[p.RejectionReason]; ok {
			return "YouTube rejected the video " + w
		}
		return fmt.Sprintf("YouTube rejected the video (reason %q)", p.RejectionReason)
	case p.FailureReason != "":
		if w, ok := failures[p.FailureReason]; ok {
			return "YouTube could not process the video: " + w
		}
		return fmt.Sprintf("YouTube could not process the video (reason %q)", p.FailureReason)
	case p.UploadStatus == "deleted":
		return "the video was deleted on YouTube"
	}
	return fmt.Sprintf("YouTube stopped processing the video (%s)", p.ProcessingStatus)
}

// ApplyProcessing records a processing answer on a YouTube destination
// that YouTube is processing: its progress, and the move to complete or
// failed when processing has ended. A terminal destination is left as it is.
func (d *Destination) ApplyProcessing(p YouTubeProcessing) error {
	if d.Status.Terminal() {
		return nil
	}
	d.ProcessingStatus = p.ProcessingStatus
	d.ProcessingTimeLeftMs = p.TimeLeftMs
	if p.PartsTotal > 0 {
		d.Progress = float64(p.PartsProcessed) / float64(p.PartsTotal) * 100
	}
	switch {
	case p.Done():
		return d.MoveTo(DestComplete)
	case p.Failed():
		d.Fail(p.Failure())
	}
	return nil
}
