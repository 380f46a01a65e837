package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"atomuploads/api"
	"atomuploads/devstack/stacktest"
	"atomuploads/upload"
)

// serve runs the API's own HTTP server (api.HTTP, as main does) on a free
// loopback port.
func serve(t testing.TB, srv *api.Server, cfg api.Listener) string {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	log, _ := stacktest.NewLogger(t)
	h := api.NewHTTP(srv, cfg, log)
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_ = h.Stop(ctx) // connections the test holds open end with the deadline
	})
	return h.Addr().String()
}

// rawRequest opens a connection to addr and writes a request head.
func rawRequest(t testing.TB, addr, head string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if head != "" {
		if _, err := io.WriteString(conn, head); err != nil {
			t.Fatal(err)
		}
	}
	return conn
}

// TestSlowBodyIsCut: a client that trickles its body (a byte a second) is
// answered 408 at the request timeout, though the server's ReadTimeout is
// far off, and its connection is closed.
func TestSlowBodyIsCut(t *testing.T) {
	const timeout = 2 * time.Second
	srv, _ := newFakeAPI(t, stuckUploads{}, timeout)
	addr := serve(t, srv, api.Listener{ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Hour, WriteTimeout: time.Hour})
	conn := rawRequest(t, addr, "POST /api2/atom/atom-1/uploads HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer "+token+
		"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
	began := time.Now()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for range 1000 {
			select {
			case <-stop:
				return
			case <-time.After(time.Second):
			}
			if _, err := conn.Write([]byte(" ")); err != nil {
				return
			}
		}
	}()
	_ = conn.SetReadDeadline(time.Now().Add(timeout + 10*time.Second))
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer to a trickled body after %s: %v", time.Since(began), err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	took := time.Since(began)
	if res.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), "did not arrive in time") {
		t.Errorf("trickled body: %d %s, want 408", res.StatusCode, body)
	}
	if took < timeout-100*time.Millisecond || took > timeout+3*time.Second {
		t.Errorf("answered after %s, want about the %s request timeout", took, timeout)
	}
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) && !isReset(err) {
		t.Errorf("after the 408 the connection is still open (read: %v)", err)
	}
}

func isReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) && !errors.Is(err, os.ErrDeadlineExceeded)
}

// TestIdleConnectionIsClosed: a keep-alive connection that sends no second
// request is closed after the idle timeout.
func TestIdleConnectionIsClosed(t *testing.T) {
	const idle = time.Second
	srv, _ := newFakeAPI(t, stuckUploads{})
	addr := serve(t, srv, api.Listener{ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, WriteTimeout: time.Minute, IdleTimeout: idle})
	conn := rawRequest(t, addr, "GET /healthcheck HTTP/1.1\r\nHost: test\r\n\r\n")
	_ = conn.SetReadDeadline(time.Now().Add(idle + 10*time.Second))
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || res.Close {
		t.Fatalf("healthcheck: %d close=%v, want 200 on a kept-alive connection", res.StatusCode, res.Close)
	}
	began := time.Now()
	_, err = br.ReadByte()
	took := time.Since(began)
	if !errors.Is(err, io.EOF) {
		t.Fatalf("the idle connection: %v after %s, want it closed (EOF)", err, took)
	}
	// The idle time began when the server had written the answer, a
	// little before the client had read it.
	if took < idle/2 || took > idle+3*time.Second {
		t.Errorf("the idle connection was closed after %s, want about %s", took, idle)
	}
}

// TestConnectionsBeyondTheCapWait: with two connections held open and a cap
// of two, a third client's request waits (it is not refused and the server
// does not fail), and is answered once a connection closes.
func TestConnectionsBeyondTheCapWait(t *testing.T) {
	srv, _ := newFakeAPI(t, stuckUploads{})
	addr := serve(t, srv, api.Listener{ReadHeaderTimeout: time.Minute, ReadTimeout: time.Minute, WriteTimeout: time.Minute,
		IdleTimeout: time.Minute, MaxConnections: 2})
	held := []net.Conn{rawRequest(t, addr, ""), rawRequest(t, addr, "")}
	time.Sleep(200 * time.Millisecond) // both accepted: the cap is reached
	done := make(chan error, 1)
	go func() {
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		req, _ := http.NewRequest("GET", "http://"+addr+"/healthcheck", http.NoBody)
		res, err := c.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != 200 {
				err = errors.New(res.Status)
			}
		}
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("a third connection was served beyond the cap of 2 (error %v)", err)
	case <-time.After(time.Second):
	}
	held[0].Close()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("the waiting request failed: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting request was not served after a connection closed")
	}
}

// TestLongAnswerOutlivesReadTimeout: a list whose answer takes longer than
// the server's ReadTimeout is delivered whole: the read deadline is lifted
// once the request is read (net/http's background read would otherwise
// cancel the request's context when it passes).
func TestLongAnswerOutlivesReadTimeout(t *testing.T) {
	const readTimeout = time.Second
	f := &failingUploads{list: func(ctx context.Context, fn func(*upload.Upload) error) (string, error) {
		for range 6 {
			time.Sleep(readTimeout / 2)
			if err := ctx.Err(); err != nil {
				return "", err
			}
			if err := fn(someUpload(t)); err != nil {
				return "", err
			}
		}
		return "", nil
	}}
	srv, logs := newFakeAPI(t, f, 2*readTimeout)
	addr := serve(t, srv, api.Listener{ReadHeaderTimeout: readTimeout, ReadTimeout: readTimeout, WriteTimeout: time.Minute, IdleTimeout: time.Minute})
	status, body, err := get(t, "http://"+addr+"/api2/atom/atom-1/uploads?view=summary")
	if err != nil || status != 200 || !json.Valid(body) {
		t.Errorf("a list of %s: %d, %d bytes, %v; want it whole\n%s", 3*readTimeout, status, len(body), err, logs.String())
	}
}
