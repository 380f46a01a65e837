package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Where the two cores went during a measurement: CPU time of each process
// of the local stack (their pids are in $ATOM_UPLOADS_STACK/pids), of this
// process (the YouTube stand-in, the browsers, the in-process worker), of
// the service processes, and of the rest of the machine ("others": on a
// shared machine, whatever else runs), in cores (CPU seconds per second).

const clockTicks = 100 // USER_HZ: /proc's unit of CPU time on Linux

// cpuMeter measures CPU use over windows; the processes it follows can be
// added while it runs (service processes).
type cpuMeter struct {
	mu    sync.Mutex
	pids  map[string]int
	start map[string]uint64
	busy0 uint64
	t0    time.Time
}

// stackPids are the local stack's processes, by name.
func stackPids() map[string]int {
	out := map[string]int{}
	dir := os.Getenv("ATOM_UPLOADS_STACK")
	if dir == "" {
		return out
	}
	files, _ := filepath.Glob(filepath.Join(dir, "pids", "*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			out[filepath.Base(f)] = pid
		}
	}
	return out
}

// startCPU starts a window over the stack and this process.
func startCPU() *cpuMeter {
	m := &cpuMeter{pids: stackPids(), start: map[string]uint64{}, t0: time.Now()}
	m.pids["bench"] = os.Getpid()
	for name, pid := range m.pids {
		m.start[name], _ = procTicks(pid)
	}
	m.busy0, _ = machineBusy()
	return m
}

// follow adds a process from now on.
func (m *cpuMeter) follow(name string, pid int) {
	t, _ := procTicks(pid)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pids[name], m.start[name] = pid, t
}

// sample reads a followed process's ticks while it still runs (a process
// that has exited can no longer be read).
func (m *cpuMeter) sample(name string) uint64 {
	m.mu.Lock()
	pid := m.pids[name]
	m.mu.Unlock()
	t, _ := procTicks(pid)
	return t
}

// stop ends the window: cores used by each process, "machine" (every
// core's busy time) and "others" (the machine less the processes
// followed). final gives ticks read earlier for processes that have exited
// since.
func (m *cpuMeter) stop(final map[string]uint64) obs {
	m.mu.Lock()
	defer m.mu.Unlock()
	wall := time.Since(m.t0).Seconds()
	out := obs{}
	var ours float64
	for name, pid := range m.pids {
		t, err := procTicks(pid)
		if f, ok := final[name]; ok {
			t, err = f, nil
		}
		if err != nil || t < m.start[name] {
			continue
		}
		cores := float64(t-m.start[name]) / clockTicks / wall
		out["cpu."+name] = cores
		ours += cores
	}
	if busy, err := machineBusy(); err == nil {
		machine := float64(busy-m.busy0) / clockTicks / wall
		out["cpu.machine"] = machine
		out["cpu.others"] = max(machine-ours, 0)
	}
	return out
}

// procTicks is a process's user+system CPU time, all threads, in ticks.
func procTicks(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name is in parentheses and may hold spaces: count
	// fields after its closing one. utime and stime are fields 14 and 15.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("unreadable /proc/%d/stat", pid)
	}
	return u + st, nil
}

// machineBusy is the busy time of all cores (everything but idle and
// iowait), in ticks.
func machineBusy() (uint64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return 0, fmt.Errorf("unreadable /proc/stat")
	}
	var total uint64
	for i, v := range f[1:] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, err
		}
		if i == 8 || i == 9 { // guest time is already in user time
			continue
		}
		if i != 3 && i != 4 { // idle, iowait
			total += n
		}
	}
	return total, nil
}
