package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"atomuploads/store"
	"atomuploads/upload"
)

// (d)
func (b *bench) eventsPerSecond(ctx context.Context) (string, error) {
	r, c, err := b.resources(ctx, "bench-d")
	if err != nil {
		return "", err
	}
	db := store.New(b.clients.DynamoDB, r.Table, 0)
	var us []*upload.Upload
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for range b.f.events {
		id, err := upload.NewID(time.Now(), rand.Reader)
		if err != nil {
			return "", err
		}
		u, err := upload.New(upload.StartRequest{Filename: "e.mp4", Size: 1024, Destinations: []upload.DestinationRequest{{Type: upload.S3Bucket}}},
			"bench", id, time.Now(), b.aws.Region, r.Bucket, b.f.partSize)
		if err != nil {
			return "", err
		}
		us = append(us, u)
		g.Go(func() error {
			if err := db.Create(gctx, u); err != nil {
				return err
			}
			_, err := b.clients.S3.PutObject(gctx, &s3.PutObjectInput{Bucket: aws.String(r.Bucket), Key: aws.String(u.PartKey(0)), Body: bytes.NewReader(make([]byte, 1024))})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return "", err
	}
	time.Sleep(2 * time.Second) // the bridge puts the events on the queue
	start := time.Now()
	stop := b.worker(r, c, db)
	defer stop()
	for _, u := range us {
		for {
			got, err := db.Get(ctx, u.AtomID, u.ID)
			if err != nil {
				return "", err
			}
			if got.Assembled {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	elapsed := time.Since(start)
	return fmt.Sprintf("| (d) S3 events through one worker (16 at once): part event (HeadObject, conditional ADD, one-part reassembly) | **%.0f part events/s** (%d uploads in %.1f s) |",
		float64(len(us))/elapsed.Seconds(), len(us), elapsed.Seconds()), nil
}
