package youtube

import (
	"context"
	"fmt"
	"net/http"

	"atomuploads/upload"
)

// Processing is what YouTube reports about an uploaded video; the domain
// owns its meaning (upload.YouTubeProcessing: Done, Failed, Failure).
type Processing = upload.YouTubeProcessing

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
					p.TimeLeftMs = int64(pp.TimeLeftMs)
				}
			}
			return p, nil
		}
		return Processing{}, fmt.Errorf("%s: %w", op, ErrVideoNotFound)
	}
}
