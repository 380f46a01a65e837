// Command bench measures the service on the local stack (scripts/bench runs
// it) and prints one table in which every row compares the service with a
// baseline measured on the same machine in the same run; each measurement
// is repeated and reported as its median and its spread (min–max):
//
//	(a)  pipelined relay vs the naive path: time from the last part landing
//	     in S3 to the video being complete on YouTube, when the relay streams
//	     parts while the browser is still uploading, and when everything is
//	     sent only after the last part, through google.golang.org/api's own
//	     resumable Media upload; on loopback, and at a realistic YouTube link
//	     (the stand-in's bandwidth cap and round trip) for two file sizes;
//	(b)  relay throughput S3 → YouTube stand-in, against a plain loopback
//	     copy of the same bytes;
//	(d)  part events per second of the service's worker, against a bare loop
//	     of the same AWS calls at the same concurrency;
//	(r)  reassembly of 1,000 parts, against a bare UploadPartCopy loop at the
//	     same parallelism;
//	(3)  many uploads at once through several service processes on one
//	     queue and table, at the link cap: throughput against the cap, the
//	     worst upload against the median, peak RSS, takeovers;
//	(4)  peak RSS of one service process with 1, 8 and 32 relays in flight,
//	     and the AWS calls per uploaded GiB (counted by SDK middleware).
//
// Where the two cores went during each measurement (the stack's processes,
// this one, the service's, and everything else on the machine) is printed
// in a second table.
//
// The YouTube stand-in runs in this process on loopback; the AWS stand-ins
// are the local stack's (AWS_ENDPOINT_URL_* from its env file). -tiny runs
// everything once with tiny sizes (scripts/test does, so that the bench
// cannot rot); the numbers then mean nothing.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"atomuploads/devstack"
	"atomuploads/youtube"
	"atomuploads/youtube/youtubetest"
)

const (
	clientID, clientSecret, refreshToken = "bench", "bench-secret", "bench-refresh"
	maxChunk                             = 64 << 20 // youtube.maxChunkBytes of config.yaml
)

type flags struct {
	service    string
	only       string
	runs       int
	dRuns      int
	linkRuns   int
	fleetRuns  int
	profileDir string
	scratch    string
	partSize   int64

	pipelinedSize int64
	browserRate   float64 // MB/s

	linkRate        float64 // MB/s
	linkRTT         time.Duration
	linkSizes       []int64
	linkBrowserRate float64
	followUpPoll    time.Duration

	throughput int64

	events int

	reassemblyParts    int
	reassemblyPartSize int64

	fleetUploads     int
	fleetSize        int64
	fleetBrowserRate float64
	fleetProcs       []int
	fleetTimeout     time.Duration
	fleetConcurrency int

	memRelays []int
	memChunk  int64
	memHold   time.Duration
}

// tinyFlags are -tiny's values of the flags not given.
var tinyFlags = map[string]string{
	"runs": "1", "d-runs": "1", "link-runs": "1", "fleet-runs": "1", "part-size": "5242880",
	"a-size": "12582912", "b-size": "16777216", "link-sizes": "10MiB,15MiB", "follow-up-poll": "1s",
	"d-uploads": "10", "r-parts": "6",
	"fleet-uploads": "3", "fleet-size": "10485760", "fleet-browser-rate": "10", "fleet-procs": "2",
	"mem-relays": "1,2", "mem-chunk": "10485760", "mem-hold": "100ms",
}

func main() { os.Exit(run()) }

// run is main, returning the exit code so that deferred calls run.
func run() int {
	var f flags
	var linkSizes, fleetProcs, memRelays string
	flag.StringVar(&f.service, "service", "", "the atom-uploads binary, for (3) and (4) (required; scripts/bench builds it)")
	flag.StringVar(&f.only, "only", "d,r,b,a,link,mem,fleet", "which measurements to run, in order")
	flag.IntVar(&f.runs, "runs", 3, "runs of each measurement (but -d-runs, -link-runs and -fleet-runs)")
	flag.IntVar(&f.dRuns, "d-runs", 5, "runs of (d), which are short and noisy")
	flag.IntVar(&f.linkRuns, "link-runs", 3, "runs of (a) at the link cap")
	flag.IntVar(&f.fleetRuns, "fleet-runs", 1, "runs of (3) for each process count")
	flag.StringVar(&f.profileDir, "profile-dir", "", "write CPU profiles of the service's worker during (b), (d) and (r) to this directory (keep it out of the repository)")
	flag.StringVar(&f.scratch, "scratch", "", "directory for the service processes' logs (default: a new temporary one, kept)")
	flag.Int64Var(&f.partSize, "part-size", 8<<20, "part size of the uploads but (d)'s and (r)'s")
	flag.Int64Var(&f.pipelinedSize, "a-size", 512<<20, "(a) file size on loopback")
	flag.Float64Var(&f.browserRate, "a-browser-rate", 50, "(a) the browser's upload rate on loopback, MB/s")
	flag.Float64Var(&f.linkRate, "link-rate", 25, "the YouTube link's bandwidth cap for (a), (3) and (4), MB/s (25 MB/s = 200 Mbit/s)")
	flag.DurationVar(&f.linkRTT, "link-rtt", 40*time.Millisecond, "the YouTube link's round trip, added to every request")
	flag.StringVar(&linkSizes, "link-sizes", "512MiB,2GiB", "(a) file sizes at the link cap")
	flag.Float64Var(&f.linkBrowserRate, "link-browser-rate", 20, "(a) the browser's upload rate at the link cap, MB/s (below the cap)")
	flag.DurationVar(&f.followUpPoll, "follow-up-poll", 2*time.Second, "(a) the worker's poll interval of YouTube's processing (30s in the service), so that the calls of the follow-ups are counted sooner; whole seconds (SQS delays are)")
	flag.Int64Var(&f.throughput, "b-size", 1<<30, "(b) file size")
	flag.IntVar(&f.events, "d-uploads", 500, "(d) part events (one per upload)")
	flag.IntVar(&f.reassemblyParts, "r-parts", 1000, "(r) parts")
	flag.Int64Var(&f.reassemblyPartSize, "r-part-size", 5<<20, "(r) part size")
	flag.IntVar(&f.fleetUploads, "fleet-uploads", 32, "(3) uploads at once")
	flag.Int64Var(&f.fleetSize, "fleet-size", 256<<20, "(3) size of each upload")
	flag.Float64Var(&f.fleetBrowserRate, "fleet-browser-rate", 1, "(3) each browser's upload rate, MB/s")
	flag.StringVar(&fleetProcs, "fleet-procs", "2,4", "(3) service processes, one run each")
	flag.IntVar(&f.fleetConcurrency, "fleet-concurrency", 0, "(3) messages each service process handles at once (0: the service's default, 16)")
	flag.DurationVar(&f.fleetTimeout, "fleet-timeout", 30*time.Minute, "(3) longest wait for every upload")
	flag.StringVar(&memRelays, "mem-relays", "1,8,32", "(4) relays in flight")
	flag.Int64Var(&f.memChunk, "mem-chunk", maxChunk, "(4) the chunk each relay sends")
	flag.DurationVar(&f.memHold, "mem-hold", 3*time.Second, "(4) how long the relays are watched once all are in flight")
	tiny := flag.Bool("tiny", false, "everything once, with tiny sizes (scripts/test): checks that the bench works, measures nothing")
	flag.Parse()
	if *tiny {
		set := map[string]bool{}
		flag.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
		for name, v := range tinyFlags {
			if !set[name] {
				_ = flag.Set(name, v)
			}
		}
	}
	var err error
	if f.linkSizes, err = sizes(linkSizes); err == nil {
		if f.fleetProcs, err = relayCounts(fleetProcs); err == nil {
			f.memRelays, err = relayCounts(memRelays)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}
	if f.service == "" {
		fmt.Fprintln(os.Stderr, "bench: -service PATH is required (scripts/bench builds it)")
		return 2
	}
	if f.memChunk%f.partSize != 0 || f.memChunk > maxChunk {
		fmt.Fprintln(os.Stderr, "bench: -mem-chunk must be a multiple of -part-size, at most 64 MiB")
		return 2
	}
	if f.scratch == "" {
		if f.scratch, err = os.MkdirTemp("", "atom-uploads-bench-"); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
	}
	ctx := context.Background()
	b, err := newBench(ctx, f)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	defer b.close()
	start := time.Now()
	err = b.run(ctx)
	fmt.Println(b.table(start))
	fmt.Fprintf(os.Stderr, "bench: %s in all; service logs in %s\n", time.Since(start).Round(time.Second), f.scratch)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	return 0
}

type bench struct {
	f       flags
	aws     aws.Config
	clients devstack.Clients
	yt      *youtubetest.Server
	ytURL   string
	ytSrv   *httptest.Server
	ytConns atomic.Int64 // connections opened to the stand-in
	client  *youtube.Client
	scratch string
	load    string // load average when the run started

	results map[string]samples // by section
	done    []string           // sections run, in order
}

func newBench(ctx context.Context, f flags) (*bench, error) {
	if os.Getenv("AWS_ENDPOINT_URL_S3") == "" {
		return nil, errors.New("no local stack: run it through scripts/bench")
	}
	cfg, err := devstack.AWSConfig(ctx)
	if err != nil {
		return nil, err
	}
	clients, _ := devstack.NewClients(cfg)
	b := &bench{f: f, aws: cfg, clients: clients, scratch: f.scratch, results: map[string]samples{}}
	b.yt = youtubetest.New(youtubetest.Options{ClientID: clientID, ClientSecret: clientSecret, RefreshToken: refreshToken})
	b.ytSrv = httptest.NewUnstartedServer(b.yt)
	b.ytSrv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			b.ytConns.Add(1)
		}
	}
	b.ytSrv.Start()
	b.ytURL = b.ytSrv.URL
	b.client, err = youtube.New(youtube.Config{
		APIBaseURL: b.ytURL + "/", TokenURL: b.ytURL + "/token",
		ClientID: clientID, ClientSecret: clientSecret, RefreshToken: refreshToken,
	}, &http.Client{})
	if err != nil {
		return nil, err
	}
	if l, err := os.ReadFile("/proc/loadavg"); err == nil {
		b.load = strings.Join(strings.Fields(string(l))[:3], " ")
	}
	return b, nil
}

func (b *bench) close() { b.ytSrv.Close() }

// run runs the sections named by -only, each its number of times.
func (b *bench) run(ctx context.Context) error {
	for _, name := range strings.Split(b.f.only, ",") {
		if err := b.section(ctx, strings.TrimSpace(name)); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// repeat runs fn n times into the section's samples, saying so on stderr.
func (b *bench) repeat(section, what string, n int, fn func(run int) (obs, error)) error {
	s := b.results[section]
	if s == nil {
		s = samples{}
		b.results[section] = s
		b.done = append(b.done, section)
	}
	for i := range n {
		start := time.Now()
		o, err := fn(i)
		if err != nil {
			return err
		}
		s.add(o)
		fmt.Fprintf(os.Stderr, "bench: %s %s run %d/%d in %s\n", section, what, i+1, n, time.Since(start).Round(time.Second))
	}
	return nil
}

func (b *bench) section(ctx context.Context, name string) error {
	switch name {
	case "a":
		return b.repeat("a", "", b.f.runs, func(int) (obs, error) { return b.pipelined(ctx, b.f.pipelinedSize, b.f.browserRate) })
	case "link":
		b.yt.SetLink(b.f.linkRate*1e6, b.f.linkRTT)
		defer b.yt.SetLink(0, 0)
		for _, size := range b.f.linkSizes {
			if err := b.repeat("link "+mb(size), "", b.f.linkRuns, func(int) (obs, error) { return b.pipelined(ctx, size, b.f.linkBrowserRate) }); err != nil {
				return err
			}
		}
		return nil
	case "b":
		return b.repeat("b", "", b.f.runs, func(run int) (obs, error) { return b.relayThroughput(ctx, run) })
	case "d":
		return b.repeat("d", "", b.f.dRuns, func(run int) (obs, error) { return b.events(ctx, run) })
	case "r":
		fx, err := b.reassemblySetup(ctx)
		if fx != nil {
			defer b.cleanup(fx.r, fx.c)
		}
		if err != nil {
			return err
		}
		return b.repeat("r", "", b.f.runs, func(run int) (obs, error) { return b.reassembly(ctx, fx, run) })
	case "fleet":
		for _, p := range b.f.fleetProcs {
			if err := b.repeat("fleet "+strconv.Itoa(p), "", b.f.fleetRuns, func(int) (obs, error) { return b.fleet(ctx, p) }); err != nil {
				return err
			}
		}
		return nil
	case "mem":
		for i := range b.f.runs {
			for _, n := range b.f.memRelays {
				if err := b.repeat("mem "+strconv.Itoa(n), fmt.Sprintf("(round %d)", i+1), 1, func(int) (obs, error) { return b.memory(ctx, n) }); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return fmt.Errorf("no measurement %q (a, link, b, d, r, fleet or mem)", name)
}

// sizes parses "512MiB,2GiB".
func sizes(s string) ([]int64, error) {
	var out []int64
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		unit := int64(1)
		switch {
		case strings.HasSuffix(f, "GiB"):
			unit, f = 1<<30, strings.TrimSuffix(f, "GiB")
		case strings.HasSuffix(f, "MiB"):
			unit, f = 1<<20, strings.TrimSuffix(f, "MiB")
		}
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("size %q", f)
		}
		out = append(out, n*unit)
	}
	return out, nil
}

// machine describes this machine for the table's heading.
func machine() string {
	model := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kib, _ := strconv.ParseFloat(strings.Fields(rest)[0], 64)
				mem = fmt.Sprintf("%.0f GiB", kib/(1<<20))
			}
		}
	}
	return fmt.Sprintf("%d cores (%s), %s, %s", runtime.NumCPU(), model, mem, runtime.Version())
}

// onePart is the time of one part at the link: its bytes at the cap and
// one round trip.
func (b *bench) onePart() float64 {
	return float64(b.f.partSize)/(b.f.linkRate*1e6) + b.f.linkRTT.Seconds()
}
