package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// table renders what was measured: the heading, the main table, where
// the CPU went.
func (b *bench) table(start time.Time) string {
	var out strings.Builder
	fmt.Fprintf(&out, "Measured %s in one run of the bench (%s in all) on %s; load average %s when it started.\n",
		start.UTC().Format("2006-01-02"), time.Since(start).Round(time.Minute), machine(), b.load)
	fmt.Fprintf(&out, "Each cell: median (min–max) over the runs (n); a ratio is taken within each run, then summarized. "+
		"The YouTube link, where stated: %s MB/s token bucket shared by all request bodies, %s round trip per request.\n\n",
		strconv.FormatFloat(b.f.linkRate, 'f', -1, 64), b.f.linkRTT)
	rows := [][]string{{"", "measurement", "n", "service", "baseline (same run)", "ratio"}, {"---", "---", "---", "---", "---", "---"}}
	for _, sec := range b.done {
		rows = append(rows, b.rows(sec, b.results[sec])...)
	}
	if cost := b.costRows(); len(cost) > 0 {
		rows = append(rows, cost...)
	}
	for _, r := range rows {
		out.WriteString("| " + strings.Join(r, " | ") + " |\n")
	}
	out.WriteString("\nWhere the CPU went (cores busy, median over the runs; the machine has " + strconv.Itoa(machineCores()) + "):\n\n")
	out.WriteString(b.cpuTable())
	return out.String()
}

func (b *bench) rows(sec string, s samples) [][]string {
	n := func(name string) string { return strconv.Itoa(s.n(name)) }
	switch {
	case sec == "a":
		return [][]string{{"(a)",
			fmt.Sprintf("last part in S3 → YouTube complete, %s in %s parts, browser at %.0f MB/s, loopback link", mb(b.f.pipelinedSize), mb(b.f.partSize), b.f.browserRate),
			n("sooner"),
			"pipelined " + s.spread("pipelined", "%.2f") + " s",
			"naive (the whole file after the last part, google.golang.org/api Media upload) " + s.spread("naive", "%.2f") + " s",
			"**" + s.spread("sooner", "%.1f") + "× sooner**"}}
	case strings.HasPrefix(sec, "link "):
		size := strings.TrimPrefix(sec, "link ")
		one := b.onePart()
		s2 := samples{}
		for _, t := range s["pipelined"] {
			s2.add(obs{"x": t / one})
		}
		return [][]string{
			{"(a)",
				fmt.Sprintf("the same at the YouTube link, %s in %s parts, browser at %.0f MB/s", size, mb(b.f.partSize), b.f.linkBrowserRate),
				n("sooner"),
				"pipelined " + s.spread("pipelined", "%.2f") + " s",
				"naive " + s.spread("naive", "%.1f") + " s",
				"**" + s.spread("sooner", "%.0f") + "× sooner**"},
			{"(a)",
				fmt.Sprintf("pipelined tail at the link, %s, against one part at the link (%s / cap + round trip)", size, mb(b.f.partSize)),
				n("pipelined"),
				"tail " + s.spread("pipelined", "%.2f") + " s: the last part's event (S3 → queue → checked and marked) " + s.spread("event", "%.2f") + " s, then the relay " + s.spread("relay", "%.2f") + " s",
				fmt.Sprintf("one part %.2f s", one),
				"**" + s2.spread("x", "%.2f") + "×** one part"},
		}
	case sec == "b":
		return [][]string{{"(b)",
			fmt.Sprintf("relay throughput S3 → YouTube stand-in, %s already in S3 (and reassembled), loopback", mb(b.f.throughput)),
			n("ratio"),
			"relay " + s.spread("relay", "%.0f") + " MB/s",
			"plain loopback copy of the same bytes " + s.spread("plain", "%.0f") + " MB/s",
			"**" + s.spread("ratio", "%.2f") + "**"}, {"(b)",
			"the same against a plain copy that also keeps a SHA-256 of the bytes it sends, as the relay does (details.sha256)",
			n("ratioHashed"),
			"relay " + s.spread("relay", "%.0f") + " MB/s",
			"plain copy with its SHA-256 " + s.spread("hashed", "%.0f") + " MB/s",
			"**" + s.spread("ratioHashed", "%.2f") + "**"}}
	case sec == "d":
		return [][]string{
			{"(d)",
				fmt.Sprintf("part events/s, 16 at once (%d events, each the last part of an upload to s3Bucket: GetItem, HeadObject, the pin's conditional UpdateItem, the conditional UpdateItem)", b.f.events),
				n("ratio4"),
				"service " + s.spread(modeService, "%.0f") + "/s (" + s.spread(modeService+".calls", "%.1f") + " AWS calls/event)",
				"bare loop of the 4 calls the issue names (receive, HeadObject, conditional UpdateItem, delete) " + s.spread(modeBare4, "%.0f") + "/s (" + s.spread(modeBare4+".calls", "%.1f") + " calls/event)",
				"**" + s.spread("ratio4", "%.2f") + "**"},
			{"(d)",
				"the same against a bare loop of the service's own calls (receive, GetItem, HeadObject, the pin's conditional UpdateItem, the conditional UpdateItem, delete): the service's overhead",
				n("ratio6"),
				"service " + s.spread(modeService, "%.0f") + "/s",
				"bare loop of the service's 6 calls " + s.spread(modeBare6, "%.0f") + "/s (" + s.spread(modeBare6+".calls", "%.1f") + " calls/event)",
				"**" + s.spread("ratio6", "%.2f") + "**"},
		}
	case sec == "r":
		return [][]string{{"(r)",
			fmt.Sprintf("reassembly of %d parts of %s (%s), 8 UploadPartCopy at once", b.f.reassemblyParts, mb(b.f.reassemblyPartSize), mb(int64(b.f.reassemblyParts)*b.f.reassemblyPartSize)),
			n("ratio"),
			"service " + s.spread("service", "%.1f") + " s (its log's durationMs)",
			"bare loop of CreateMultipartUpload, UploadPartCopy, CompleteMultipartUpload " + s.spread("bare", "%.1f") + " s",
			"**" + s.spread("ratio", "%.2f") + "** (bare time / service time)"}}
	case strings.HasPrefix(sec, "fleet "):
		procs := strings.TrimPrefix(sec, "fleet ")
		conc := "16, the default"
		if b.f.fleetConcurrency > 0 {
			conc = strconv.Itoa(b.f.fleetConcurrency)
		}
		what := fmt.Sprintf("%d uploads of %s at once, browsers at %s MB/s each, %s service processes (each %s messages at once) on one queue and table, at the link",
			b.f.fleetUploads, mb(b.f.fleetSize), strconv.FormatFloat(b.f.fleetBrowserRate, 'f', -1, 64), procs, conc)
		var peaks, idles []string
		for _, k := range s.names("peak.") {
			peaks = append(peaks, s.spread(k, "%.0f"))
		}
		for _, k := range s.names("idle.") {
			idles = append(idles, s.spread(k, "%.0f"))
		}
		return [][]string{
			{"(3)", what + ": aggregate relay throughput while the link is busy (10–90 % of the bytes)", n("ratio"),
				s.spread("throughput", "%.1f") + " MB/s (overall " + s.spread("overall", "%.1f") + " MB/s, start → last video)",
				fmt.Sprintf("the link's cap %s MB/s", strconv.FormatFloat(b.f.linkRate, 'f', -1, 64)),
				"**" + s.spread("ratio", "%.2f") + "** of the cap"},
			{"(3)", procs + " processes: completion (start → video complete), worst upload against the median", n("fairness"),
				"worst " + s.spread("worst", "%.0f") + " s",
				"median " + s.spread("median", "%.0f") + " s (browsers done at " + s.spread("browsers", "%.0f") + " s)",
				"**" + s.spread("fairness", "%.2f") + "**"},
			{"(3)", procs + " processes: a part's wait for its event to be handled (in S3 → marked complete), and the chunks relayed", n("lag.p99"),
				"median " + s.spread("lag.median", "%.1f") + " s, 99th percentile " + s.spread("lag.p99", "%.1f") + " s",
				"mean chunk " + s.spread("chunk", "%.1f") + " MiB (parts of " + mb(b.f.partSize) + ", chunks of up to " + mb(maxChunk) + "); " +
					s.spread("conns", "%.0f") + " connections opened to YouTube for " + s.spread("puts", "%.0f") + " chunk PUTs",
				""},
			{"(3)", procs + " processes: peak RSS of each; lease takeovers, resyncs and restarts", n("takeovers"),
				"peak " + strings.Join(peaks, ", ") + " MiB; takeovers " + s.spread("takeovers", "%.0f") + ", offset queries " + s.spread("syncs", "%.0f") +
					", session restarts " + s.spread("restarts", "%.0f") + ", warnings " + s.spread("warnings", "%.0f") + ", errors " + s.spread("errors", "%.0f"),
				"idle " + strings.Join(idles, ", ") + " MiB; takeovers expected 0",
				""},
		}
	case strings.HasPrefix(sec, "mem "):
		relays, _ := strconv.Atoi(strings.TrimPrefix(sec, "mem "))
		row := []string{"(4)",
			fmt.Sprintf("peak RSS of one service process with %d relay(s) in flight (each streaming one %s chunk at the link)", relays, mb(b.f.memChunk)),
			n("peak"),
			"peak " + s.spread("peak", "%.0f") + " MiB (" + s.spread("inflight", "%.0f") + " in flight at once)",
			"before the relays " + s.spread("before", "%.0f") + " MiB, idle " + s.spread("idle", "%.0f") + " MiB",
			s.spread("perRelay", "%.2f") + " MiB a relay"}
		if first := b.results["mem "+strconv.Itoa(b.f.memRelays[0])]; relays != b.f.memRelays[0] && first != nil {
			slope := (s.median("peak") - first.median("peak")) / float64(relays-b.f.memRelays[0])
			row[5] += fmt.Sprintf("; **%.2f MiB** a relay from %d to %d", slope, b.f.memRelays[0], relays)
		}
		return [][]string{row}
	}
	return nil
}

// costRows are the AWS calls per uploaded GiB of the (a) runs at the link.
func (b *bench) costRows() [][]string {
	var rows [][]string
	for _, sec := range b.done {
		if !strings.HasPrefix(sec, "link ") {
			continue
		}
		s := b.results[sec]
		med := map[string]int64{}
		for _, k := range s.names("calls.") {
			if !strings.HasSuffix(k, "Empty") {
				med[strings.TrimPrefix(k, "calls.")] = int64(s.median(k) * 100) // hundredths, for perUnit
			}
		}
		var cells []string
		for _, svc := range []string{"DynamoDB", "S3", "SQS"} {
			cells = append(cells, perUnit(med, 100, svc))
		}
		rows = append(rows, []string{"(4)",
			"AWS calls of the service per uploaded GiB, one upload of " + strings.TrimPrefix(sec, "link ") + " to YouTube, its follow-ups included (SDK middleware; receives that found nothing are not counted: an idle process makes 3 a minute)",
			strconv.Itoa(s.n("pipelined")), strings.Join(cells, "; "), "", ""})
	}
	return rows
}

// cpuTable says where the CPU went in each measured window.
func (b *bench) cpuTable() string {
	type window struct {
		name   string
		s      samples
		prefix string
	}
	var ws []window
	for _, sec := range b.done {
		s := b.results[sec]
		switch {
		case sec == "d":
			ws = append(ws, window{"(d) service", s, modeService + ".cpu."}, window{"(d) bare loop, 4 calls", s, modeBare4 + ".cpu."}, window{"(d) bare loop, the service's 6 calls", s, modeBare6 + ".cpu."})
		case sec == "r":
			ws = append(ws, window{"(r) service", s, "service.cpu."}, window{"(r) bare loop", s, "bare.cpu."})
		case sec == "b":
			ws = append(ws, window{"(b) relay", s, "relay.cpu."}, window{"(b) plain copy", s, "plain.cpu."}, window{"(b) plain copy with its SHA-256", s, "hashed.cpu."})
		case strings.HasPrefix(sec, "fleet "):
			ws = append(ws, window{"(3) " + strings.TrimPrefix(sec, "fleet ") + " processes", s, "cpu."})
		}
	}
	cols := []string{"bench", "service", "minio", "dynamodb", "kumo", "bridge", "others", "machine"}
	var out strings.Builder
	out.WriteString("| window | " + strings.Join([]string{"this process (stand-in, browsers, in-process worker)", "service processes", "MinIO", "DynamoDB Local", "kumo (SQS)", "event bridge", "others on the machine", "machine"}, " | ") + " |\n")
	out.WriteString("|---" + strings.Repeat("|---", len(cols)) + "|\n")
	for _, w := range ws {
		cells := []string{w.name}
		for _, c := range cols {
			if len(w.s[w.prefix+c]) == 0 {
				cells = append(cells, "–")
				continue
			}
			cells = append(cells, fmt.Sprintf("%.2f", w.s.median(w.prefix+c)))
		}
		out.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
	return out.String()
}

func machineCores() int {
	n := 0
	b, _ := os.ReadFile("/proc/stat")
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], "cpu") && f[0] != "cpu" {
			n++
		}
	}
	return n
}
