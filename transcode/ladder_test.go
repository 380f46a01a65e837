package transcode

import (
	"fmt"
	"strings"
	"testing"
)

func TestLadderFollowsTheSource(t *testing.T) {
	tests := []struct {
		name string
		src  Source
		want string // name:WxH@videoBitrate, highest first
	}{
		{"1080p landscape gets the whole ladder", Source{Width: 1920, Height: 1080},
			"1080p:1920x1080@5000000 720p:1280x720@3000000 360p:640x360@800000"},
		{"4K is capped at the ladder's top", Source{Width: 3840, Height: 2160},
			"1080p:1920x1080@5000000 720p:1280x720@3000000 360p:640x360@800000"},
		{"720p is never scaled up to 1080p", Source{Width: 1280, Height: 720},
			"720p:1280x720@3000000 360p:640x360@800000"},
		{"between rungs: the rungs below", Source{Width: 1600, Height: 900},
			"720p:1280x720@3000000 360p:640x360@800000"},
		{"360p gets 360p only", Source{Width: 640, Height: 360},
			"360p:640x360@800000"},
		{"portrait is measured by its short side", Source{Width: 1080, Height: 1920},
			"1080p:1080x1920@5000000 720p:720x1280@3000000 360p:360x640@800000"},
		{"small portrait", Source{Width: 360, Height: 640},
			"360p:360x640@800000"},
		{"square", Source{Width: 720, Height: 720},
			"720p:720x720@3000000 360p:360x360@800000"},
		{"below the lowest rung: the source's own size", Source{Width: 320, Height: 240},
			"240p:320x240@355555"},
		{"odd sizes are made even, never larger", Source{Width: 319, Height: 179},
			"178p:316x178@195580"},
		{"odd long side", Source{Width: 1281, Height: 721},
			"720p:1278x720@3000000 360p:640x360@800000"},
		{"anamorphic-looking width rounds down to even", Source{Width: 854, Height: 480},
			"360p:640x360@800000"},
		{"tiny", Source{Width: 16, Height: 12},
			"12p:16x12@50000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ladder, err := Ladder(nil, tt.src)
			if err != nil {
				t.Fatalf("Ladder: %v", err)
			}
			var got []string
			for _, e := range ladder {
				got = append(got, fmt.Sprintf("%s:%dx%d@%d", e.Name, e.Width, e.Height, e.VideoBitrate))
				if e.Width > tt.src.Width || e.Height > tt.src.Height {
					t.Errorf("%s is %dx%d, larger than the source's %dx%d", e.Name, e.Width, e.Height, tt.src.Width, tt.src.Height)
				}
				if e.Width%2 != 0 || e.Height%2 != 0 {
					t.Errorf("%s is %dx%d, want even sizes", e.Name, e.Width, e.Height)
				}
			}
			if s := strings.Join(got, " "); s != tt.want {
				t.Errorf("ladder = %s\nwant     %s", s, tt.want)
			}
		})
	}
}

func TestLadderOrdersAConfiguredSetHighestFirst(t *testing.T) {
	rs := []Rendition{
		{Name: "low", Height: 240, VideoBitrate: 400_000},
		{Name: "high", Height: 720, VideoBitrate: 2_000_000, AudioBitrate: 160_000},
		{Name: "mid", Height: 480, VideoBitrate: 1_000_000},
	}
	ladder, err := Ladder(rs, Source{Width: 1280, Height: 720})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ladder {
		names = append(names, e.Name)
	}
	if got := strings.Join(names, ","); got != "high,mid,low" {
		t.Errorf("ladder = %s, want high,mid,low", got)
	}
	if got := audioBitrate(ladder); got != 160_000 {
		t.Errorf("audio bitrate = %d, want the highest rung's 160000", got)
	}
	if rs[0].Name != "low" {
		t.Error("Ladder reordered the configured set")
	}
	if _, err := Ladder(rs, Source{Width: 1, Height: 720}); err == nil {
		t.Error("Ladder(1x720) = nil error, want one")
	}
}
