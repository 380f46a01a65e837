package worker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/aws/smithy-go"

	"atomuploads/atomapi"
	"atomuploads/upload"
	"atomuploads/youtube"
)

// markOf is the upload's progress as far as work of kind k is concerned:
// the sum of the counters of what that work moves forward. Counters only
// grow, so an attempt made progress when markOf grew while it ran.
func markOf(u *upload.Upload, k Kind) int64 {
	if u == nil {
		return 0
	}
	var m int64
	add := func(t upload.DestinationType) {
		if d := u.Destination(t); d != nil {
			m += d.Advances
		}
	}
	switch k {
	case KindPart:
		m += u.Advances
		add(upload.YouTube) // a part drives the relay in the same message
	case KindReassemble:
		m += u.Advances
	case KindRelay, KindYouTubePoll:
		add(upload.YouTube)
	case KindAsset:
		// Its only step forward is the addition itself: the destination's
		// other advances (processing polls) are not the asset's progress.
		if d := u.Destination(upload.YouTube); d != nil && d.AssetAdded {
			m = 1
		}
	case KindFull, KindTranscodePoll:
		add(upload.S3Bucket)
	}
	return m
}

// giveUpChange is the change of a record that gives up on work of kind k:
// the destination that work drives fails with reason, or the whole upload
// for a part or the reassembly, without which it cannot finish. A given-up
// asset call leaves the destination as it is, with the reason as its
// AssetError: the video itself is fine on YouTube.
func giveUpChange(k Kind, reason string, now func() time.Time) func(*upload.Upload) error {
	return upload.Settled(now, func(u *upload.Upload) error {
		switch k {
		case KindPart, KindReassemble:
			u.Fail(reason, now())
		case KindRelay, KindYouTubePoll:
			if d := u.Destination(upload.YouTube); d != nil {
				d.Fail(reason)
			}
		case KindAsset:
			if d := u.Destination(upload.YouTube); d != nil && !d.AssetAdded && d.Status != upload.DestFailed {
				d.AssetError = "the video is on YouTube, but the atom API did not take it as an asset: " + reason
			}
		case KindFull, KindTranscodePoll:
			if d := u.Destination(upload.S3Bucket); d != nil {
				d.Fail(reason)
			}
		}
		return nil
	})
}

// cause says in domain words why an attempt failed, for the record's
// error and the retry's message: never an SDK's or a server's raw text.
func cause(err error) string {
	var (
		atomErr *atomapi.Error
		de      *upload.Error
		ye      *youtube.Error
		ae      smithy.APIError
		ne      net.Error
		tmp     *temporaryError
	)
	switch {
	case err == nil:
		return ""
	case errors.As(err, &tmp):
		return cause(tmp.err)
	case errors.Is(err, upload.ErrLeaseLost):
		return "another worker took the work over"
	case errors.As(err, &de) && de.Code != upload.EINTERNAL:
		return de.Message
	case errors.Is(err, youtube.ErrSessionGone):
		return "the YouTube upload session expired"
	case errors.Is(err, youtube.ErrVideoNotFound):
		return "YouTube has no such video (deleted, or not on the service's channel)"
	case errors.As(err, &atomErr):
		if atomErr.Status != 0 {
			return fmt.Sprintf("the atom API answered %d", atomErr.Status)
		}
		return "the atom API could not be reached"
	case errors.As(err, &ye):
		if ye.Reason != "" {
			return fmt.Sprintf("YouTube answered %s", ye.Reason)
		}
		if ye.Status != 0 {
			return fmt.Sprintf("YouTube answered %d", ye.Status)
		}
		return "YouTube could not be reached"
	case errors.As(err, &ae):
		return fmt.Sprintf("%s refused: %s", service(err), ae.ErrorCode())
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "a dependency did not answer in time"
	case strings.Contains(err.Error(), "panic"):
		return "an internal error (see the service's logs)"
	}
	return "a dependency could not be reached (see the service's logs)"
}

// service names the AWS service of an SDK error, in words.
func service(err error) string {
	var oe *smithy.OperationError
	if errors.As(err, &oe) {
		switch oe.ServiceID {
		case "S3":
			return "S3"
		case "DynamoDB":
			return "the progress table"
		case "SQS":
			return "the queue"
		}
		return oe.ServiceID
	}
	return "AWS"
}
