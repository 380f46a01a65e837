package transcode

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// mediaPlaylist is what the ffmpeg backend reads back from a media playlist
// ffmpeg wrote: its init segment and its segments with their durations.
type mediaPlaylist struct {
	Init     string // file name of the init segment (EXT-X-MAP)
	Segments []segment
}

type segment struct {
	Name     string
	Duration float64 // seconds
}

// parseMediaPlaylist reads a VOD media playlist of fMP4 segments.
func parseMediaPlaylist(r io.Reader) (mediaPlaylist, error) {
	var (
		pl       mediaPlaylist
		duration = -1.0
		ended    bool
	)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "":
		case strings.HasPrefix(line, "#EXT-X-MAP:"):
			uri, ok := attribute(strings.TrimPrefix(line, "#EXT-X-MAP:"), "URI")
			if !ok {
				return pl, fmt.Errorf("EXT-X-MAP without URI")
			}
			pl.Init = uri
		case strings.HasPrefix(line, "#EXTINF:"):
			v, _, _ := strings.Cut(strings.TrimPrefix(line, "#EXTINF:"), ",")
			d, err := strconv.ParseFloat(v, 64)
			if err != nil || d < 0 {
				return pl, fmt.Errorf("bad EXTINF %q", line)
			}
			duration = d
		case line == "#EXT-X-ENDLIST":
			ended = true
		case strings.HasPrefix(line, "#"):
		default:
			if duration < 0 {
				return pl, fmt.Errorf("segment %q without EXTINF", line)
			}
			pl.Segments = append(pl.Segments, segment{Name: line, Duration: duration})
			duration = -1
		}
	}
	if err := sc.Err(); err != nil {
		return pl, err
	}
	switch {
	case pl.Init == "":
		return pl, fmt.Errorf("no init segment (EXT-X-MAP)")
	case len(pl.Segments) == 0:
		return pl, fmt.Errorf("no segments")
	case !ended:
		return pl, fmt.Errorf("no EXT-X-ENDLIST")
	}
	return pl, nil
}

// attribute returns the value of one attribute of an attribute list
// (NAME=value,NAME="quoted value").
func attribute(list, name string) (string, bool) {
	for list != "" {
		var key string
		key, list, _ = strings.Cut(list, "=")
		var val string
		if strings.HasPrefix(list, `"`) {
			end := strings.Index(list[1:], `"`)
			if end < 0 {
				return "", false
			}
			val, list = list[1:1+end], list[2+end:]
			list = strings.TrimPrefix(list, ",")
		} else {
			val, list, _ = strings.Cut(list, ",")
		}
		if strings.TrimSpace(key) == name {
			return val, true
		}
	}
	return "", false
}

// rates are a track's measured bitrates, in bits/s.
type rates struct {
	Peak    int // the highest of its segments (a last segment under 1 s excepted)
	Average int // all segments, over the whole duration
}

// measure sums the sizes of a playlist's segments, in dir.
func measure(dir string, pl mediaPlaylist) (rates, error) {
	var (
		r             rates
		size          int64
		total, peakOf float64
	)
	for i, s := range pl.Segments {
		st, err := os.Stat(filepath.Join(dir, s.Name))
		if err != nil {
			return r, err
		}
		size += st.Size()
		total += s.Duration
		last := i == len(pl.Segments)-1
		if s.Duration <= 0 || (last && i > 0 && s.Duration < 1) {
			continue
		}
		if rate := float64(st.Size()*8) / s.Duration; rate > peakOf {
			peakOf = rate
		}
	}
	if total > 0 {
		r.Average = int(float64(size*8) / total)
	}
	r.Peak = int(peakOf + 0.5)
	if r.Peak < r.Average {
		r.Peak = r.Average
	}
	return r, nil
}

// avcCodec reads the RFC 6381 codec string (avc1.PPCCLL) of an H.264
// track from its init segment's avcC box.
func avcCodec(init []byte) (string, error) {
	i := bytes.Index(init, []byte("avcC"))
	if i < 0 || len(init) < i+8 {
		return "", fmt.Errorf("no avcC box in the init segment")
	}
	b := init[i+4:]
	if b[0] != 1 {
		return "", fmt.Errorf("avcC version %d", b[0])
	}
	return fmt.Sprintf("avc1.%02x%02x%02x", b[1], b[2], b[3]), nil
}

// aacLC is the codec string of the AAC-LC audio both backends encode.
const aacLC = "mp4a.40.2"

// variant is one video variant of the master playlist.
type variant struct {
	URI           string
	Width, Height int
	Bandwidth     int // peak bits/s, audio included
	Average       int // average bits/s, audio included
	Codecs        string
}

// audioGroup is the GROUP-ID of the audio rendition.
const audioGroup = "audio"

// masterPlaylist writes an HLS master playlist (RFC 8216): the audio
// rendition, when there is one (audioURI), and every video variant with
// BANDWIDTH, AVERAGE-BANDWIDTH, RESOLUTION, CODECS and FRAME-RATE (when
// known).
func masterPlaylist(variants []variant, audioURI string, frameRate float64) []byte {
	var b strings.Builder
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n")
	if audioURI != "" {
		fmt.Fprintf(&b, "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=%q,NAME=\"Audio\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\",URI=%q\n",
			audioGroup, audioURI)
	}
	for _, v := range variants {
		fmt.Fprintf(&b, "#EXT-X-STREAM-INF:BANDWIDTH=%d,AVERAGE-BANDWIDTH=%d,RESOLUTION=%dx%d,CODECS=%q",
			v.Bandwidth, v.Average, v.Width, v.Height, v.Codecs)
		if frameRate > 0 && frameRate <= 240 {
			fmt.Fprintf(&b, ",FRAME-RATE=%.3f", frameRate)
		}
		if audioURI != "" {
			fmt.Fprintf(&b, ",AUDIO=%q", audioGroup)
		}
		fmt.Fprintf(&b, "\n%s\n", v.URI)
	}
	return []byte(b.String())
}
