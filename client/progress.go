package client

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progressPrinter shows PutParts progress: a bar redrawn in place with \r on
// a terminal, one plain line per event otherwise. Calls are serialised by
// PutParts.
type progressPrinter struct {
	w     io.Writer
	tty   bool
	drawn int // width of the bar line on screen, 0 when none
}

const barWidth = 30

// update shows one event.
func (p *progressPrinter) update(ev Progress) {
	if ev.Retry {
		p.clear()
		fmt.Fprintf(p.w, "part %d/%d failed (attempt %d): %v; retrying in %s\n",
			ev.Part+1, ev.PartsTotal, ev.Attempt, ev.Err, ev.Wait.Round(time.Millisecond))
		if p.tty {
			p.bar(ev)
		}
		return
	}
	if p.tty {
		p.bar(ev)
		return
	}
	fmt.Fprintf(p.w, "part %d/%d uploaded (%.1f%%)\n", ev.Part+1, ev.PartsTotal, percent(ev.BytesDone, ev.Size))
}

// finish ends the bar's line.
func (p *progressPrinter) finish() {
	if p.tty && p.drawn > 0 {
		fmt.Fprintln(p.w)
		p.drawn = 0
	}
}

func (p *progressPrinter) clear() {
	if p.tty && p.drawn > 0 {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", p.drawn))
		p.drawn = 0
	}
}

func (p *progressPrinter) bar(ev Progress) {
	frac := 0.0
	if ev.Size > 0 {
		frac = float64(ev.BytesDone) / float64(ev.Size)
	}
	filled := int(frac * barWidth)
	line := fmt.Sprintf("[%s%s] %5.1f%%  %s / %s  %d/%d parts  %s/s",
		strings.Repeat("=", filled), strings.Repeat(" ", barWidth-filled), 100*frac,
		humanBytes(ev.BytesDone), humanBytes(ev.Size), ev.PartsDone, ev.PartsTotal,
		humanBytes(rate(ev.BytesSent, ev.Elapsed)))
	pad := ""
	if n := p.drawn - len(line); n > 0 {
		pad = strings.Repeat(" ", n)
	}
	fmt.Fprintf(p.w, "\r%s%s", line, pad)
	p.drawn = len(line)
}

func percent(n, total int64) float64 {
	if total <= 0 {
		return 100
	}
	return 100 * float64(n) / float64(total)
}

func rate(n int64, d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64(float64(n) / d.Seconds())
}

// humanBytes renders n in binary units: 512 B, 12.0 MiB.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
