package transcode

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"strings"
)

// What ffprobe and ffmpeg may read of an upload.
//
// libavformat will demux anything it recognises, and some of its demuxers
// read other files or URLs named inside the input: an HLS or DASH playlist
// its segments, a concat list its entries, image2 a file pattern, SDP a
// network stream. An upload is user bytes, so both tools open it with
// libavformat's own guards: -protocol_whitelist file (the input is a local
// temp file, and nothing else may be opened through any other protocol) and
// -format_whitelist with only the demuxers below. ffprobe names the demuxer,
// the backend checks it against the same list, and ffmpeg is given it with
// -f, so it never picks one from the bytes itself.

// inputFormat is a demuxer the backend lets read an upload.
type inputFormat struct {
	// name is the demuxer's full name, as ffprobe reports it in
	// format_name and as -format_whitelist matches it.
	name string
	// short is the name given to ffmpeg with -f.
	short string
	// options are further input options of this demuxer for ffmpeg.
	options []string
}

// inputFormats are the containers a newsroom uploads: each holds its media
// in the one file and opens nothing else. Never a playlist, a list of
// files, an image sequence or a stream description.
var inputFormats = []inputFormat{
	// QuickTime / MP4: phones, cameras, editing exports. Its external data
	// references (drefs) are off by default; they stay off explicitly.
	{name: "mov,mp4,m4a,3gp,3g2,mj2", short: "mov", options: []string{"-enable_drefs", "0", "-use_absolute_path", "0"}},
	// Matroska / WebM: screen recorders (OBS), browser recordings.
	{name: "matroska,webm", short: "matroska"},
	// AVI: older cameras and desktop exports.
	{name: "avi", short: "avi"},
	// MPEG-TS: broadcast and off-air captures, AVCHD camcorders (.mts, .m2ts).
	{name: "mpegts", short: "mpegts"},
	// MXF: broadcast cameras (XDCAM, P2) and Avid exports.
	{name: "mxf", short: "mxf"},
	// MPEG-PS: DVD .vob, .mpg and camcorder .mod/.tod files.
	{name: "mpeg", short: "mpeg"},
	// FLV: RTMP and older live-stream recordings.
	{name: "flv", short: "flv"},
	// DV: DV and HDV tape captures (raw DIF).
	{name: "dv", short: "dv"},
}

// protocolWhitelist lets libavformat open local files only: the input is
// given as a file: URL, and no demuxer above opens anything else.
const protocolWhitelist = "file"

// formatWhitelist is the -format_whitelist value: every accepted demuxer.
var formatWhitelist = func() string {
	names := make([]string, len(inputFormats))
	for i, f := range inputFormats {
		names[i] = f.name
	}
	return strings.Join(names, ",")
}()

// acceptedNames says which containers are accepted, for people.
const acceptedNames = "MP4, MOV, MKV, WebM, AVI, MPEG-TS, MXF, MPEG-PS (.mpg, .vob), FLV or DV"

// acceptedFormat returns the accepted demuxer ffprobe named, if it is one.
func acceptedFormat(formatName string) (inputFormat, bool) {
	for _, f := range inputFormats {
		if f.name == formatName {
			return f, true
		}
	}
	return inputFormat{}, false
}

// inputArgs are the options and the input of an ffprobe run (format zero:
// the demuxer is to be found) or an ffmpeg run (the demuxer ffprobe found).
func inputArgs(input string, format inputFormat) []string {
	args := []string{"-protocol_whitelist", protocolWhitelist, "-format_whitelist", formatWhitelist}
	if format.short != "" {
		args = append(args, "-f", format.short)
		args = append(args, format.options...)
	}
	return append(args, "-i", inputURL(input))
}

// inputURL names the input file with the file protocol explicitly, so no
// part of the path can be taken for another protocol.
func inputURL(input string) string { return "file:" + input }

// notAContainer is the failure of an input that is not in an accepted
// container. what says what it looks like instead ("" if unknown); cause
// (the tool's own words) goes to the log, never into the reason.
func notAContainer(what string, cause error) error {
	if what != "" {
		return &jobError{
			reason: "the file is not a video container this service accepts (it looks like " + what + "); upload the video file itself",
			cause:  cause,
		}
	}
	return &jobError{
		reason: "the file is not a video container this service accepts; upload the video file itself, as " + acceptedNames,
		cause:  cause,
	}
}

// sniffLen is how much of the input lookalike reads.
const sniffLen = 4096

// lookalikeOf reads the start of the file at path and says what it looks
// like (see lookalike); "" when it cannot be read or is not recognised.
func lookalikeOf(path string) string {
	file, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer file.Close()
	head, err := io.ReadAll(io.LimitReader(file, sniffLen))
	if err != nil {
		return ""
	}
	return lookalike(head)
}

// lookalike says, in words for people, what the start of a file that is
// not an accepted container looks like: a playlist, a list of files, a
// stream description or a still image; "" when nothing is recognised. It
// only words the refusal: the refusal itself is libavformat's whitelist and
// the check of the probed demuxer.
func lookalike(head []byte) string {
	text := bytes.TrimLeft(bytes.TrimPrefix(head, []byte("\xef\xbb\xbf")), " \t\r\n")
	switch {
	case hasPrefixFold(text, "#EXTM3U"):
		return "an HLS playlist"
	case hasPrefixFold(text, "ffconcat version"), isConcatList(text):
		return "a concat list naming other files"
	case bytes.Contains(head, []byte("<MPD")):
		return "a DASH manifest"
	case hasPrefixFold(text, "[playlist]"), bytes.Contains(head, []byte("<playlist")):
		return "a playlist"
	case bytes.HasPrefix(text, []byte("v=0")):
		return "a stream description (SDP)"
	case strings.HasPrefix(http.DetectContentType(head), "image/"):
		return "a still image"
	}
	return ""
}

func hasPrefixFold(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && strings.EqualFold(string(b[:len(prefix)]), prefix)
}

// isConcatList reports whether text starts like a list of ffmpeg's concat
// demuxer without its "ffconcat" header: its first line that is neither
// blank nor a # comment is a file directive.
func isConcatList(text []byte) bool {
	for line := range bytes.Lines(text) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		return bytes.HasPrefix(line, []byte("file ")) || bytes.HasPrefix(line, []byte("file\t"))
	}
	return false
}
