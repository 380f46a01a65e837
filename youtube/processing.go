package youtube

import (
	"context"
	"fmt"
	"net/http"
)

// Processing is what YouTube reports about an uploaded video.
type Processing struct {
	// UploadStatus is status.uploadStatus: uploaded (processing), processed,
	// failed, rejected or deleted.
	UploadStatus string
	// ProcessingStatus is processingDetails.processingStatus: processing,
	// succeeded, failed or terminated.
	ProcessingStatus string
	// PartsProcessed and PartsTotal are processingDetails.processingProgress,
	// while YouTube is processing.
	PartsProcessed int64
	PartsTotal     int64
	// FailureReason is status.failureReason (or
	// processingDetails.processingFailureReason) when the upload failed.
	FailureReason string
	// RejectionReason is status.rejectionReason when YouTube rejected it.
	RejectionReason string
}

// Processing returns the video's upload and processing status:
// videos.list?part=status,processingDetails&id=<videoID>. A video that
// videos.list does not return gives ErrVideoNotFound.
func (c *Client) Processing(ctx context.Context, videoID string) (Processing, error) {
	op := fmt.Sprintf("processing status of video %q", videoID)
	if videoID == "" {
		return Processing{}, fmt.Errorf("processing status: %w", ErrVideoNotFound)
	}
	for try := 0; ; try++ {
		rctx, cancel := context.WithTimeout(ctx, c.timeout)
		resp, err := c.svc.Videos.List([]string{"status", "processingDetails"}).Id(videoID).Context(rctx).Do()
		cancel()
		if err != nil {
			err = transportError(ctx, err)
			if isStatus(err, http.StatusUnauthorized) {
				c.tokens.invalidate()
				if try == 0 {
					continue
				}
			}
			return Processing{}, fmt.Errorf("%s: %w", op, err)
		}
		for _, v := range resp.Items {
			if v.Id != videoID {
				continue
			}
			var p Processing
			if s := v.Status; s != nil {
				p.UploadStatus = s.UploadStatus
				p.FailureReason = s.FailureReason
				p.RejectionReason = s.RejectionReason
			}
			if d := v.ProcessingDetails; d != nil {
				p.ProcessingStatus = d.ProcessingStatus
				if p.FailureReason == "" {
					p.FailureReason = d.ProcessingFailureReason
				}
				if pp := d.ProcessingProgress; pp != nil {
					p.PartsProcessed = int64(pp.PartsProcessed)
					p.PartsTotal = int64(pp.PartsTotal)
				}
			}
			return p, nil
		}
		return Processing{}, fmt.Errorf("%s: %w", op, ErrVideoNotFound)
	}
}
