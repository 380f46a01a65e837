package transcode

import (
	"fmt"
	"math"
	"slices"
)

// Source is what the ladder follows: the original's video as it is
// displayed (rotation and pixel aspect ratio applied) and whether it has
// sound.
type Source struct {
	Width, Height int
	// FrameRate is the average frame rate, 0 when unknown. No rendition is
	// encoded at a higher one: frames are never duplicated.
	FrameRate float64
	HasAudio  bool
	// Duration in seconds, 0 when unknown.
	Duration float64
}

func (s Source) short() int { return min(s.Width, s.Height) }

func (s Source) portrait() bool { return s.Height > s.Width }

// Encoding is one rendition as it is encoded for a source.
type Encoding struct {
	Rendition
	// Width and Height are the output picture's size: even, never larger
	// than the source's, in the source's displayed aspect ratio.
	Width, Height int
}

// Ladder is the renditions a source gets, highest first:
//
//   - every rung whose short side (Rendition.Height) is at most the
//     source's short side: a source is never scaled up, and portrait and
//     square sources are measured by their short side too, so a 1080×1920
//     phone video gets the 1080p rung at 1080×1920;
//   - when no rung fits (a source smaller than the lowest rung), one
//     rendition at the source's own size, made even, named "<short side>p",
//     with the lowest rung's bitrates scaled down by the pixel count.
//
// The long side follows the displayed aspect ratio and is rounded to the
// nearest pixel, then down to an even number, so it never exceeds the
// source's.
func Ladder(renditions []Rendition, src Source) ([]Encoding, error) {
	if src.Width < 2 || src.Height < 2 {
		return nil, fmt.Errorf("the video's picture is %dx%d pixels: too small to encode", src.Width, src.Height)
	}
	rs := renditionsOrDefault(renditions)
	slices.SortStableFunc(rs, func(a, b Rendition) int { return b.Height - a.Height })
	short := src.short()
	var out []Encoding
	for _, r := range rs {
		if r.Height <= short {
			out = append(out, encodingFor(r, src))
		}
	}
	if len(out) > 0 {
		return out, nil
	}
	lowest := rs[len(rs)-1]
	h := even(short)
	scale := float64(h*h) / float64(lowest.Height*lowest.Height)
	own := Rendition{
		Name:         fmt.Sprintf("%dp", h),
		Height:       h,
		VideoBitrate: max(int(float64(lowest.VideoBitrate)*scale), 50_000),
		AudioBitrate: lowest.AudioBitrate,
	}
	return []Encoding{encodingFor(own, src)}, nil
}

func encodingFor(r Rendition, src Source) Encoding {
	short, long := src.Width, src.Height
	if !src.portrait() {
		short, long = src.Height, src.Width
	}
	l := even(int(math.Round(float64(r.Height) * float64(long) / float64(short))))
	e := Encoding{Rendition: r, Width: l, Height: r.Height}
	if src.portrait() {
		e.Width, e.Height = r.Height, l
	}
	return e
}

// even rounds n down to an even number, at least 2.
func even(n int) int { return max(n&^1, 2) }

// audioBitrate is the bitrate of the audio rendition and the MP4's sound:
// the highest rung's.
func audioBitrate(ladder []Encoding) int { return ladder[0].audioBitrate() }
