package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"atomuploads/store"
	"atomuploads/upload"
	"atomuploads/youtube/youtubetest"
)

// (3) many uploads at once: uploads started together, each browser putting
// its parts at the browser rate, through several service processes on one
// queue and table, to the YouTube stand-in at the link cap. It reports the
// aggregate relay throughput against the cap, each upload's completion
// time (start → video complete), peak RSS of each process, and what the
// processes' logs and the stand-in say about takeovers.
func (b *bench) fleet(ctx context.Context, procs int) (obs, error) {
	r, c, err := b.resources(ctx, "bench-f")
	if err != nil {
		return nil, err
	}
	defer b.cleanup(r, c)
	b.yt.SetLink(b.f.linkRate*1e6, b.f.linkRTT)
	defer b.yt.SetLink(0, 0)
	db := store.New(b.clients.DynamoDB, r.Table, 0)

	cpu := startCPU()
	var svcs []*service
	defer func() {
		for _, s := range svcs {
			s.kill()
		}
	}()
	var env []string
	if b.f.fleetConcurrency > 0 {
		env = append(env, fmt.Sprintf("UPLOADS_WORKER_CONCURRENCY=%d", b.f.fleetConcurrency))
	}
	for i := range procs {
		s, err := b.startService(ctx, fmt.Sprintf("fleet%d-%d", procs, i), r, c, env...)
		if err != nil {
			return nil, err
		}
		svcs = append(svcs, s)
		cpu.follow(s.name, s.pid())
	}
	o := obs{"restarts": 0, "takeovers": 0, "warnings": 0, "errors": 0}
	for i, s := range svcs {
		o[fmt.Sprintf("idle.%d", i)] = s.rssNow()
	}

	run := title("f")
	var uploads []*upload.Upload
	for i := range b.f.fleetUploads {
		u, err := b.newUpload(ctx, db, r.Bucket, b.f.fleetSize, fmt.Sprintf("%s %02d", run, i))
		if err != nil {
			return nil, err
		}
		uploads = append(uploads, u)
	}
	// Every upload has the same bytes: made once, hashed once.
	plan := uploads[0]
	parts := make([][]byte, plan.PartCount())
	h := sha256.New()
	for n := range parts {
		parts[n] = partData(3, plan, n)
		h.Write(parts[n])
	}
	sum := hex.EncodeToString(h.Sum(nil))
	statusBefore := b.yt.Requests()[youtubetest.KindStatus]
	chunksBefore := b.yt.Requests()[youtubetest.KindChunk]
	connsBefore := b.ytConns.Load()
	linkBefore := b.yt.LinkBytes()

	start := time.Now()
	browsers := make([]time.Duration, len(uploads))
	putAt := map[string][]time.Time{} // by upload id: when each part was in S3
	for _, u := range uploads {
		putAt[u.ID] = make([]time.Time, u.PartCount())
	}
	g, gctx := errgroup.WithContext(ctx)
	for i, u := range uploads {
		g.Go(func() error {
			last, err := b.putParts(gctx, r.Bucket, u, func(n int) []byte { return parts[n] }, b.f.fleetBrowserRate, start, nil, putAt[u.ID])
			browsers[i] = last.Sub(start)
			return err
		})
	}
	browsersDone := make(chan error, 1)
	go func() { browsersDone <- g.Wait() }()

	// Completion of each upload, and the bytes committed at the stand-in
	// over time.
	type point struct {
		t time.Duration
		b int64
	}
	var (
		series []point
		done   = map[string]time.Duration{}
		videos = map[string]youtubetest.Video{}
	)
	total := int64(len(uploads)) * b.f.fleetSize
	deadline := start.Add(b.f.fleetTimeout)
	var browserErr error
	browsersRunning := true
	for len(done) < len(uploads) {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%d of %d uploads complete after %s", len(done), len(uploads), b.f.fleetTimeout)
		}
		if browsersRunning {
			select {
			case browserErr = <-browsersDone:
				browsersRunning = false
				if browserErr != nil {
					return nil, browserErr
				}
			default:
			}
		}
		now := time.Since(start)
		series = append(series, point{now, b.yt.LinkBytes() - linkBefore})
		for _, v := range b.yt.Videos() {
			if _, seen := done[v.Title]; !seen && strings.HasPrefix(v.Title, run+" ") {
				done[v.Title], videos[v.Title] = now, v
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if browsersRunning {
		if err := <-browsersDone; err != nil {
			return nil, err
		}
	}
	for t, v := range videos {
		if v.SHA256 != sum {
			return nil, fmt.Errorf("video %q sha256 %s, want %s", t, v.SHA256, sum)
		}
		if v.Sessions != 1 {
			o["restarts"] += float64(v.Sessions - 1)
		}
	}
	if v := b.yt.Violations(); len(v) > 0 {
		return nil, fmt.Errorf("the stand-in saw protocol violations: %s", strings.Join(v, "; "))
	}

	var completions []float64
	for _, d := range done {
		completions = append(completions, d.Seconds())
	}
	var browserTimes []float64
	for _, d := range browsers {
		browserTimes = append(browserTimes, d.Seconds())
	}
	o["worst"] = slices.Max(completions)
	o["median"] = median(completions)
	o["fairness"] = o["worst"] / o["median"]
	o["browsers"] = slices.Max(browserTimes)
	o["overall"] = float64(total) / 1e6 / o["worst"]
	// Throughput while the link is busy: between 10 % and 90 % of all the
	// bytes through the link.
	at := func(frac float64) time.Duration {
		for _, p := range series {
			if float64(p.b) >= frac*float64(total) {
				return p.t
			}
		}
		return series[len(series)-1].t
	}
	if t10, t90 := at(0.1), at(0.9); t90 > t10 {
		o["throughput"] = 0.8 * float64(total) / 1e6 / (t90 - t10).Seconds()
	}
	o["ratio"] = o["throughput"] / b.f.linkRate
	o["syncs"] = float64(b.yt.Requests()[youtubetest.KindStatus] - statusBefore)
	o["conns"] = float64(b.ytConns.Load() - connsBefore)
	o["puts"] = float64(b.yt.Requests()[youtubetest.KindChunk] - chunksBefore)

	// Peak RSS and CPU before the processes stop; then their logs.
	final := map[string]uint64{}
	for i, s := range svcs {
		o[fmt.Sprintf("peak.%d", i)] = s.peakRSS()
		final[s.name] = cpu.sample(s.name)
	}
	used := cpu.stop(final)
	var svcCPU float64
	for _, s := range svcs {
		svcCPU += used["cpu."+s.name]
		delete(used, "cpu."+s.name)
	}
	used["cpu.service"] = svcCPU
	for k, v := range used {
		o[k] = v
	}
	var wg sync.WaitGroup
	for _, s := range svcs {
		wg.Add(1)
		go func() { defer wg.Done(); s.stop() }()
	}
	wg.Wait()
	// From the logs: takeovers and trouble; how long each part's event
	// waited (part in S3 → marked complete), and the chunks' sizes.
	var (
		errs   []error
		lags   []float64
		chunks []float64
		marked = map[string]bool{}
	)
	for _, s := range svcs {
		n, err := s.logCounts()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		o["takeovers"] += float64(n["resuming at YouTube's committed offset"])
		o["warnings"] += float64(n["level:warn"])
		o["errors"] += float64(n["level:error"])
		if n["level:error"] > 0 || n["level:warn"] > 0 {
			fmt.Fprintf(os.Stderr, "bench: (3) %s logged %d warnings and %d errors; its log: %s\n", s.name, n["level:warn"], n["level:error"], s.logs)
		}
		errs = append(errs, s.lines(func(l logLine) {
			switch l.Msg {
			case "part complete":
				key := fmt.Sprintf("%s/%d", l.UploadID, l.Part)
				if at := putAt[l.UploadID]; !marked[key] && l.Part < len(at) && !at[l.Part].IsZero() {
					marked[key] = true
					lags = append(lags, l.Time.Sub(at[l.Part]).Seconds())
				}
			case "chunk relayed":
				chunks = append(chunks, float64(l.Bytes)/(1<<20))
			}
		}))
	}
	if len(lags) > 0 {
		slices.Sort(lags)
		o["lag.median"], o["lag.p99"] = median(lags), lags[len(lags)*99/100]
	}
	if len(chunks) > 0 {
		var sum float64
		for _, c := range chunks {
			sum += c
		}
		o["chunk"] = sum / float64(len(chunks))
	}
	return o, errors.Join(errs...)
}
