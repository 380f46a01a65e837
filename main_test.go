package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"atomuploads/atomapi/atomapitest"
	"atomuploads/devstack/stacktest"
	"atomuploads/youtube/youtubetest"
)

// The test binary doubles as the service: with ATOM_UPLOADS_RUN_MAIN=1 it
// runs main's run with its arguments, so the tests start, signal and kill
// real service processes.
func TestMain(m *testing.M) {
	if os.Getenv("ATOM_UPLOADS_RUN_MAIN") == "1" {
		os.Exit(run(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// service is one service process.
type service struct {
	cmd         *exec.Cmd
	out         *lockedBuffer
	done        chan struct{}
	err         error
	addr        string
	metricsAddr string // of /metrics and the health detail
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startService starts the service with the given UPLOADS_ settings on top
// of the test's environment (the local stack's AWS_ variables), as this
// test binary running main (TestMain).
func startService(t testing.TB, env map[string]string) *service {
	t.Helper()
	return startProcess(t, os.Args[0], []string{"ATOM_UPLOADS_RUN_MAIN=1"}, env)
}

// startProcess starts the program at path with extra and the UPLOADS_
// settings env on top of the test's environment. Unless env says where, its
// metrics listen on a free port of their own, so that processes started
// side by side do not collide on the default :9090.
func startProcess(t testing.TB, path string, extra []string, env map[string]string) *service {
	t.Helper()
	s := &service{out: &lockedBuffer{}, done: make(chan struct{}), addr: env["UPLOADS_HTTP_ADDR"]}
	var ok bool
	if s.metricsAddr, ok = env["UPLOADS_METRICS_ADDR"]; !ok {
		s.metricsAddr = freeAddr(t)
	}
	s.cmd = exec.Command(path)
	s.cmd.Env = append(append(os.Environ(), extra...), "UPLOADS_METRICS_ADDR="+s.metricsAddr)
	for k, v := range env {
		s.cmd.Env = append(s.cmd.Env, k+"="+v)
	}
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s.err = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		_ = s.cmd.Process.Kill()
		<-s.done
		if t.Failed() {
			t.Logf("service output:\n%s", s.out.String())
		}
	})
	return s
}

// exitCode waits for the process and returns its exit status.
func (s *service) exitCode(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(timeout):
		t.Fatalf("the service did not exit within %s", timeout)
	}
	var ee *exec.ExitError
	if errors.As(s.err, &ee) {
		return ee.ExitCode()
	}
	if s.err != nil {
		t.Fatal(s.err)
	}
	return 0
}

// healthcheck runs the binary's healthcheck subcommand against url.
func healthcheckCmd(url string) int {
	cmd := exec.Command(os.Args[0], "healthcheck", "-url", url, "-timeout", "1s")
	cmd.Env = append(os.Environ(), "ATOM_UPLOADS_RUN_MAIN=1")
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		return -1
	}
	return 0
}

func (s *service) waitHealthy(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for healthcheckCmd("http://"+s.addr+"/healthcheck") != 0 {
		select {
		case <-s.done:
			t.Fatalf("the service exited: %v\n%s", s.err, s.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the service did not become healthy:\n%s", s.out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// serviceEnv is the configuration of a service on the test's stack, with
// the YouTube and atom API stand-ins.
func serviceEnv(t testing.TB, st *stacktest.Stack, ytURL, atomURL string) map[string]string {
	t.Helper()
	return map[string]string{
		"UPLOADS_HTTP_ADDR":                      freeAddr(t),
		"UPLOADS_API_TOKENS":                     "test-token-0123456789",
		"UPLOADS_AWS_S3_USE_PATH_STYLE":          "true",
		"UPLOADS_UPLOADS_BUCKET":                 st.Bucket,
		"UPLOADS_UPLOADS_PART_SIZE":              "5242880",
		"UPLOADS_UPLOADS_REQUIRE_PART_CHECKSUMS": "true",
		"UPLOADS_UPLOADS_CREDENTIALS_ROLE_ARN":   "arn:aws:iam::000000000000:role/upload",
		"UPLOADS_TABLE_NAME":                     st.Table,
		"UPLOADS_QUEUE_URL":                      st.QueueURL,
		"UPLOADS_QUEUE_DEAD_LETTER_URL":          st.DLQURL,
		"UPLOADS_YOUTUBE_API_BASE_URL":           ytURL + "/",
		"UPLOADS_YOUTUBE_TOKEN_URL":              ytURL + "/token",
		"UPLOADS_YOUTUBE_CLIENT_ID":              "client",
		"UPLOADS_YOUTUBE_CLIENT_SECRET":          "client-secret",
		"UPLOADS_YOUTUBE_REFRESH_TOKEN":          "refresh-token",
		"UPLOADS_ATOM_API_BASE_URL":              atomURL,
		"UPLOADS_ATOM_API_HMAC_SECRET":           "hmac-secret",
		"UPLOADS_SHUTDOWN_GRACE":                 "5s",
		"UPLOADS_WORKER_VISIBILITY_TIMEOUT":      "10s", // the production ratio: at least twice the lease
		"UPLOADS_WORKER_LEASE_TTL":               "4s",
		"UPLOADS_WORKER_POLL_INTERVAL":           "1s",
		"UPLOADS_WORKER_RETRY_BACKOFF":           "200ms",
		"UPLOADS_WORKER_STRANDED_AFTER":          "20s",
		"UPLOADS_WORKER_SWEEP_INTERVAL":          "1s",
		// kumo answers a long poll only when a message is sent, so a
		// follow-up or redelivered message would wait for the end of a
		// 20 s poll: short polls keep the tests off that wake-up.
		"UPLOADS_WORKER_RECEIVE_WAIT": "1s",
		"UPLOADS_LOG_LEVEL":           "debug",
	}
}

func newStandIns(t testing.TB, opts youtubetest.Options) (*youtubetest.Server, string, *atomapitest.Server, string) {
	t.Helper()
	opts.ClientID, opts.ClientSecret, opts.RefreshToken = "client", "client-secret", "refresh-token"
	yt := youtubetest.New(opts)
	ytSrv := httptest.NewServer(yt)
	t.Cleanup(ytSrv.Close)
	atom, atomURL := newAtomStandIn(t, atomapitest.Options{})
	return yt, ytSrv.URL, atom, atomURL
}

// newAtomStandIn starts an atom API stand-in that takes serviceEnv's HMAC
// secret.
func newAtomStandIn(t testing.TB, opts atomapitest.Options) (*atomapitest.Server, string) {
	t.Helper()
	opts.HMACSecret = "hmac-secret"
	atom := atomapitest.New(opts)
	atomSrv := httptest.NewServer(atom)
	t.Cleanup(atomSrv.Close)
	return atom, atomSrv.URL
}

func TestBadConfigurationExits2ListingEveryProblem(t *testing.T) {
	s := startService(t, map[string]string{
		"UPLOADS_HTTP_ADDR":        "",
		"UPLOADS_WORKER_LEASE_TTL": "soon",
		"UPLOADS_API_TOKENS":       "",
	})
	if code := s.exitCode(t, 10*time.Second); code != 2 {
		t.Fatalf("exit code %d, want 2", code)
	}
	out := s.out.String()
	for _, want := range []string{"invalid configuration", "UPLOADS_HTTP_ADDR", "UPLOADS_WORKER_LEASE_TTL", "UPLOADS_QUEUE_URL", "UPLOADS_API_TOKENS"} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not name %s:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "\n  - "); n < 4 {
		t.Errorf("%d problems listed, want one line each for at least 4:\n%s", n, out)
	}
}

func TestHealthcheckAndGracefulStop(t *testing.T) {
	st := stacktest.New(t)
	_, ytURL, _, atomURL := newStandIns(t, youtubetest.Options{})
	s := startService(t, serviceEnv(t, st, ytURL, atomURL))
	s.waitHealthy(t)
	if code := healthcheckCmd("http://" + freeAddr(t) + "/healthcheck"); code != 1 {
		t.Errorf("healthcheck of a port nobody serves: exit %d, want 1", code)
	}
	res, err := http.Get("http://" + s.addr + "/api2/atom/a/uploads")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Errorf("API without a token: %d, want 401", res.StatusCode)
	}

	began := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := s.exitCode(t, 10*time.Second); code != 0 {
		t.Errorf("exit code after SIGTERM %d, want 0", code)
	}
	if took := time.Since(began); took > 6*time.Second {
		t.Errorf("stopping took %s, more than the 5s grace", took)
	}
	if out := s.out.String(); !strings.Contains(out, `"msg":"stopped"`) || strings.Contains(out, `"level":"error"`) {
		t.Errorf("logs of a clean stop:\n%s", out)
	}
}

// ctx returns a context bound to the test.
func testCtx(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
