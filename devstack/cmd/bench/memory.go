package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"atomuploads/store"
	"atomuploads/youtube/youtubetest"
)

// (c)
func (b *bench) peakRSS(ctx context.Context) (string, error) {
	r, c, err := b.resources(ctx, "bench-c")
	if err != nil {
		return "", err
	}
	db := store.New(b.clients.DynamoDB, r.Table, 0)
	u, err := b.newUpload(ctx, db, r.Bucket, b.f.rssSize, "bench c")
	if err != nil {
		return "", err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(b.f.service)
	cmd.Env = append(os.Environ(),
		"UPLOADS_HTTP_ADDR="+addr, "UPLOADS_API_TOKENS=bench-token-0123456789",
		"UPLOADS_AWS_S3_USE_PATH_STYLE=true", "UPLOADS_UPLOADS_BUCKET="+r.Bucket,
		"UPLOADS_UPLOADS_CREDENTIALS_ROLE_ARN=arn:aws:iam::000000000000:role/bench",
		"UPLOADS_TABLE_NAME="+r.Table, "UPLOADS_QUEUE_URL="+c.QueueURL,
		"UPLOADS_YOUTUBE_API_BASE_URL="+b.ytURL+"/", "UPLOADS_YOUTUBE_TOKEN_URL="+b.ytURL+"/token",
		"UPLOADS_YOUTUBE_CLIENT_ID="+clientID, "UPLOADS_YOUTUBE_CLIENT_SECRET="+clientSecret,
		"UPLOADS_YOUTUBE_REFRESH_TOKEN="+refreshToken, "UPLOADS_LOG_LEVEL=warn")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return "", err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	time.Sleep(2 * time.Second)
	idle, _ := rss(cmd.Process.Pid, "VmRSS")

	var peak int64
	done := make(chan struct{})
	var sampler errgroup.Group
	sampler.Go(func() error {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return nil
			case <-t.C:
				if v, err := rss(cmd.Process.Pid, "VmRSS"); err == nil && v > peak {
					peak = v
				}
			}
		}
	})
	sum, _, err := b.putParts(ctx, r.Bucket, u, 3, 0)
	var v youtubetest.Video
	if err == nil {
		v, _, err = b.videoDone(ctx, "bench c", 15*time.Minute)
	}
	close(done)
	_ = sampler.Wait()
	if err != nil {
		return "", err
	}
	if v.SHA256 != sum {
		return "", fmt.Errorf("(c) video sha256 %s, want %s", v.SHA256, sum)
	}
	hwm, err := rss(cmd.Process.Pid, "VmHWM")
	if err != nil {
		return "", err
	}
	peak = max(peak, hwm)
	return fmt.Sprintf("| (c) peak RSS of a service process relaying %s (pipelined, %s chunks) | **%.0f MiB** peak (VmHWM), %.0f MiB idle before the upload |",
		mb(u.Size), mb(maxChunk), float64(peak)/1024, float64(idle)/1024), nil
}

// rss reads a memory line (in KiB) of /proc/<pid>/status.
func rss(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			return strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}
