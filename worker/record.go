package worker

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"

	"go.uber.org/zap"

	"atomuploads/upload"
)

// failDestination fails one destination with a readable reason.
func failDestination(ctx context.Context, st recordStore, log *zap.Logger, u *upload.Upload, t upload.DestinationType, reason string, now func() time.Time) outcome {
	if _, err := st.Update(ctx, u.AtomID, u.ID, upload.Settled(now, func(u *upload.Upload) error {
		if d := u.Destination(t); d != nil {
			d.Fail(reason)
		}
		return nil
	})); err != nil {
		return outcome{err: err}
	}
	log.Error("destination failed", zap.String("destination", string(t)), zap.String("status", string(upload.DestFailed)), zap.String("error", reason))
	return outcome{}
}

// recoverTo logs a panic of the goroutine it is deferred in, once, with
// its stack, and lets the goroutine end: no input may crash the process.
func recoverTo(log *zap.Logger, where string, fields ...zap.Field) {
	if p := recover(); p != nil {
		log.Error("recovered from a panic", append(fields, zap.String("in", where), zap.Any("panic", p), zap.ByteString("stack", debug.Stack()))...)
	}
}

// recoverInto is recoverTo that also turns the panic into *err, so that
// the work is retried like any failure.
func recoverInto(err *error, log *zap.Logger, where string, fields ...zap.Field) {
	if p := recover(); p != nil {
		log.Error("recovered from a panic", append(fields, zap.String("in", where), zap.Any("panic", p), zap.ByteString("stack", debug.Stack()))...)
		*err = fmt.Errorf("panic in %s: %v", where, p)
	}
}
