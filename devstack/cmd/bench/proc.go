package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"atomuploads/devstack"
)

// service is one process of the service binary (-service), on the
// resources, with the YouTube stand-in of this process, its JSON logs
// (info level) in a file of the bench's scratch directory, and its RSS
// sampled.
type service struct {
	name string
	cmd  *exec.Cmd
	logs string
	addr string

	mu      sync.Mutex
	peak    int64 // KiB, sampled VmRSS
	stopped chan struct{}
	sampler sync.WaitGroup
	exited  chan error
}

// startService starts a service process and waits until it is healthy;
// env entries are added to (and override) its environment.
func (b *bench) startService(ctx context.Context, name string, r devstack.Resources, c devstack.Created, env ...string) (*service, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	logf, err := os.Create(filepath.Join(b.scratch, fmt.Sprintf("%s-%d.log", name, time.Now().UnixNano())))
	if err != nil {
		return nil, err
	}
	s := &service{name: name, logs: logf.Name(), addr: addr, stopped: make(chan struct{}), exited: make(chan error, 1)}
	s.cmd = exec.Command(b.f.service)
	s.cmd.Env = append(os.Environ(),
		"UPLOADS_HTTP_ADDR="+addr, "UPLOADS_API_TOKENS=bench-token-0123456789",
		"UPLOADS_AWS_S3_USE_PATH_STYLE=true", "UPLOADS_UPLOADS_BUCKET="+r.Bucket,
		"UPLOADS_UPLOADS_CREDENTIALS_ROLE_ARN=arn:aws:iam::000000000000:role/bench",
		"UPLOADS_TABLE_NAME="+r.Table, "UPLOADS_QUEUE_URL="+c.QueueURL,
		"UPLOADS_YOUTUBE_API_BASE_URL="+b.ytURL+"/", "UPLOADS_YOUTUBE_TOKEN_URL="+b.ytURL+"/token",
		"UPLOADS_YOUTUBE_CLIENT_ID="+clientID, "UPLOADS_YOUTUBE_CLIENT_SECRET="+clientSecret,
		"UPLOADS_YOUTUBE_REFRESH_TOKEN="+refreshToken, "UPLOADS_LOG_LEVEL=info",
		// Metrics on, as in production, on a port of each process's own:
		// the fleet runs several at once.
		"UPLOADS_METRICS_ADDR=127.0.0.1:0",
		// As scripts/run and the tests: kumo ends a long poll only when a
		// message is sent, not when a delayed one becomes visible (README,
		// Known limitations); SQS does.
		"UPLOADS_WORKER_RECEIVE_WAIT=1s")
	s.cmd.Env = append(s.cmd.Env, env...)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	logf.Close() // the child has its own descriptor
	go func() { s.exited <- s.cmd.Wait() }()
	s.sampler.Add(1)
	go s.sample()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := healthy(ctx, addr); err == nil {
			return s, nil
		}
		select {
		case err := <-s.exited:
			s.exited <- err
			s.stop()
			return nil, fmt.Errorf("service %s exited at start (%w); its log: %s", name, err, s.logs)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("service %s not healthy after 30 s; its log: %s", name, s.logs)
		}
	}
}

func healthy(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/healthcheck", http.NoBody)
	if err != nil {
		return err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return errors.New(res.Status)
	}
	return nil
}

func (s *service) pid() int { return s.cmd.Process.Pid }

// sample keeps the peak of VmRSS, every 50 ms, until stop.
func (s *service) sample() {
	defer s.sampler.Done()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-s.stopped:
			return
		case <-t.C:
			if v, err := rss(s.pid(), "VmRSS"); err == nil {
				s.mu.Lock()
				s.peak = max(s.peak, v)
				s.mu.Unlock()
			}
		}
	}
}

// rssNow is the current VmRSS in MiB.
func (s *service) rssNow() float64 {
	v, _ := rss(s.pid(), "VmRSS")
	return float64(v) / 1024
}

// peakRSS is the process's peak RSS so far in MiB: the kernel's high-water
// mark (VmHWM) or the sampled peak, whichever is higher.
func (s *service) peakRSS() float64 {
	hwm, _ := rss(s.pid(), "VmHWM")
	s.mu.Lock()
	defer s.mu.Unlock()
	return float64(max(hwm, s.peak)) / 1024
}

// stop sends SIGTERM (as ECS does) and waits for the exit, killing the
// process after 30 s.
func (s *service) stop() {
	select {
	case <-s.stopped:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.exited:
		s.exited <- err
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		err := <-s.exited
		s.exited <- err
	}
	close(s.stopped)
	s.sampler.Wait()
}

// kill ends the process at once.
func (s *service) kill() {
	select {
	case <-s.stopped:
		return
	default:
	}
	_ = s.cmd.Process.Kill()
	err := <-s.exited
	s.exited <- err
	close(s.stopped)
	s.sampler.Wait()
}

// logLine is what the bench reads of the service's log lines.
type logLine struct {
	Level    string    `json:"level"`
	Time     time.Time `json:"time"`
	Msg      string    `json:"msg"`
	UploadID string    `json:"uploadId"`
	Part     int       `json:"part"`
	Bytes    int64     `json:"bytes"`
}

// lines calls fn with each line of the process's JSON log.
func (s *service) lines(fn func(logLine)) error {
	f, err := os.Open(s.logs)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line logLine
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			line = logLine{Msg: "(not JSON)"}
		}
		fn(line)
	}
	return sc.Err()
}

// logCounts counts the lines of the process's JSON log by message, and
// by level as "level:<level>".
func (s *service) logCounts() (map[string]int, error) {
	out := map[string]int{}
	err := s.lines(func(l logLine) {
		out[l.Msg]++
		if l.Level != "" {
			out["level:"+l.Level]++
		}
	})
	return out, err
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
