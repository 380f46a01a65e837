package worker

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"atomuploads/store"
	"atomuploads/upload"
)

// reassemble joins the parts into uploads/<atom>/<upload>/full with a
// multipart copy, once: the assembly lease makes one instance do it, and
// the record's assembled flag makes it happen once. A holder that dies
// leaves its message on the queue; the message comes back after the
// lease has expired and the copy starts again. A failed copy is aborted.
func (h *Steps) reassemble(ctx context.Context, log *zap.Logger, u *upload.Upload) error {
	owner := h.holder()
	u, _, err := h.store.Acquire(ctx, u.AtomID, u.ID, store.LeaseAssembly, owner, h.cfg.LeaseTTL)
	if errors.Is(err, store.ErrLeaseHeld) {
		log.Info("reassembly is under way elsewhere")
		return nil
	}
	if err != nil {
		return err
	}
	hold := store.Holding{Lease: store.LeaseAssembly, Owner: owner, TTL: h.cfg.LeaseTTL}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
		defer cancel()
		if _, err := h.store.Release(rctx, u.AtomID, u.ID, store.LeaseAssembly, owner, store.NoPart); err != nil {
			log.Warn("release assembly lease", zap.Error(err))
		}
	}()
	if u.Assembled || u.Status.Terminal() {
		return nil
	}
	start := time.Now()
	// Settle moves the upload to processing now that every part is in.
	if _, err := h.store.UpdateHolding(ctx, u.AtomID, u.ID, hold, func(*upload.Upload) error { return nil }); err != nil {
		return err
	}
	copyCtx, stop := context.WithCancelCause(ctx)
	var renewer sync.WaitGroup
	renewer.Add(1)
	go func() {
		defer renewer.Done()
		h.keepLease(copyCtx, stop, u, store.LeaseAssembly, owner)
	}()
	defer renewer.Wait()
	defer stop(nil)

	full := u.FullKey()
	mpu, err := h.s3.CreateMultipartUpload(copyCtx, &s3.CreateMultipartUploadInput{
		Bucket:      aws.String(h.cfg.Bucket),
		Key:         aws.String(full),
		ContentType: aws.String(u.ContentType),
	})
	if err != nil {
		return fmt.Errorf("start multipart copy of %s: %w", u.ID, err)
	}
	completed, err := h.copyParts(copyCtx, u, mpu.UploadId)
	if err == nil {
		_, err = h.s3.CompleteMultipartUpload(copyCtx, &s3.CompleteMultipartUploadInput{
			Bucket:          aws.String(h.cfg.Bucket),
			Key:             aws.String(full),
			UploadId:        mpu.UploadId,
			MultipartUpload: &s3types.CompletedMultipartUpload{Parts: completed},
		})
		if err != nil {
			err = fmt.Errorf("complete multipart copy of %s: %w", u.ID, err)
		}
	}
	if err != nil {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*bookkeepingTimeout)
		defer cancel()
		if _, aerr := h.s3.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
			Bucket: aws.String(h.cfg.Bucket), Key: aws.String(full), UploadId: mpu.UploadId,
		}); aerr != nil {
			err = errors.Join(err, fmt.Errorf("abort multipart copy: %w", aerr))
		}
		if cause := context.Cause(copyCtx); cause != nil && !errors.Is(cause, context.Canceled) {
			err = errors.Join(err, cause)
		}
		return err
	}
	if _, err := h.store.UpdateHolding(ctx, u.AtomID, u.ID, hold, func(u *upload.Upload) error {
		u.Assembled = true
		return nil
	}); err != nil {
		return err
	}
	log.Info("reassembled", zap.String("key", full), zap.Int64("bytes", u.Size), zap.Int("parts", u.PartCount()),
		zap.Int64("durationMs", time.Since(start).Milliseconds()))
	return nil
}

// copyParts copies every part into the multipart upload, a bounded number
// at a time, and returns the completed parts in order.
func (h *Steps) copyParts(ctx context.Context, u *upload.Upload, uploadID *string) ([]s3types.CompletedPart, error) {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(h.cfg.ReassemblyParallelism)
	var mu sync.Mutex
	var done []s3types.CompletedPart
	for _, p := range u.Parts() {
		g.Go(func() error {
			out, err := h.s3.UploadPartCopy(gctx, &s3.UploadPartCopyInput{
				Bucket:     aws.String(h.cfg.Bucket),
				Key:        aws.String(u.FullKey()),
				UploadId:   uploadID,
				PartNumber: aws.Int32(int32(p.Number + 1)),
				CopySource: aws.String(url.PathEscape(h.cfg.Bucket) + "/" + escapeKey(u.PartKey(p.Number))),
			})
			if err != nil {
				return fmt.Errorf("copy part %d of %s: %w", p.Number, u.ID, err)
			}
			mu.Lock()
			defer mu.Unlock()
			done = append(done, s3types.CompletedPart{PartNumber: aws.Int32(int32(p.Number + 1)), ETag: out.CopyPartResult.ETag})
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	sort.Slice(done, func(i, j int) bool { return *done[i].PartNumber < *done[j].PartNumber })
	return done, nil
}

// escapeKey URL-encodes a key for x-amz-copy-source, keeping '/'.
func escapeKey(key string) string {
	u := url.URL{Path: key}
	return u.EscapedPath()
}

// keepLease renews a lease at a third of its TTL until ctx ends. Losing it
// cancels ctx with ErrLeaseLost so that the work stops; so does failing to
// renew it for two thirds of its TTL, before another instance may take it
// over (a writer must not outlive its lease).
func (h *Steps) keepLease(ctx context.Context, stop context.CancelCauseFunc, u *upload.Upload, lease, owner string) {
	t := time.NewTicker(h.cfg.LeaseTTL / 3)
	defer t.Stop()
	renewed := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			err := h.store.Renew(ctx, u.AtomID, u.ID, lease, owner, h.cfg.LeaseTTL)
			switch {
			case err == nil:
				renewed = time.Now()
			case errors.Is(err, store.ErrLeaseLost):
				stop(store.ErrLeaseLost)
				return
			case time.Since(renewed) >= h.cfg.LeaseTTL*2/3:
				stop(fmt.Errorf("%w: could not renew it for %s: %v", store.ErrLeaseLost, time.Since(renewed).Round(time.Second), err))
				return
			case ctx.Err() == nil:
				h.log.Warn("renew lease", zap.String("atomId", u.AtomID), zap.String("uploadId", u.ID), zap.String("lease", lease), zap.Error(err))
			}
		}
	}
}
