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
}

// Done reports whether YouTube has finished processing the video well.
func (p YouTubeProcessing) Done() bool {
	return p.ProcessingStatus == "succeeded" || p.UploadStatus == "processed"
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

// Failure is the readable reason of a failed processing.
func (p YouTubeProcessing) Failure() string {
	switch {
	case p.RejectionReason != "":
		return "YouTube rejected the video: " + p.RejectionReason
	case p.FailureReason != "":
		return "YouTube could not process the video: " + p.FailureReason
	case p.UploadStatus == "deleted":
		return "the video was deleted on YouTube"
	}
	return fmt.Sprintf("YouTube processing %s (upload status %s)", p.ProcessingStatus, p.UploadStatus)
}

// ApplyProcessing records a processing answer on a YouTube destination
// that YouTube is processing: its progress, and the move to complete or
// failed when processing has ended. A terminal destination is left as it is.
func (d *Destination) ApplyProcessing(p YouTubeProcessing) error {
	if d.Status.Terminal() {
		return nil
	}
	d.ProcessingStatus = p.ProcessingStatus
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
