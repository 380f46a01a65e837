package upload_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"atomuploads/upload"
)

const (
	testAtomID = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
	testRegion = "eu-west-1"
	testBucket = "useruploadbucket"
)

// startRequest is a valid request with both destinations.
func startRequest() upload.StartRequest {
	return upload.StartRequest{
		Filename:    "clip.mp4",
		Size:        24617583,
		ContentType: "video/mp4",
		Destinations: []upload.DestinationRequest{
			{Type: upload.YouTube, YouTube: upload.YouTubeMetadata{
				Title:         "A clip",
				Description:   "What happened",
				Tags:          []string{"news", "sport"},
				CategoryID:    "25",
				PrivacyStatus: "unlisted",
			}},
			{Type: upload.S3Bucket},
		},
	}
}

func youtubeOnly(m upload.YouTubeMetadata) []upload.DestinationRequest {
	return []upload.DestinationRequest{{Type: upload.YouTube, YouTube: m}}
}

func validMeta() upload.YouTubeMetadata { return startRequest().Destinations[0].YouTube }

func TestNewRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(r *upload.StartRequest)
		atomID string // testAtomID when ""
		id     string // testUploadID when ""
		want   []string
	}{
		// filename
		{name: "filename empty", change: func(r *upload.StartRequest) { r.Filename = "" }, want: []string{"filename is required"}},
		{name: "filename too long", change: func(r *upload.StartRequest) { r.Filename = strings.Repeat("a", 252) + ".mp4" }, want: []string{"filename must be at most 255 bytes, got 256"}},
		{name: "filename too long in bytes, not runes", change: func(r *upload.StartRequest) { r.Filename = strings.Repeat("é", 128) }, want: []string{"filename must be at most 255 bytes, got 256"}},
		{name: "filename invalid UTF-8", change: func(r *upload.StartRequest) { r.Filename = "clip\xff.mp4" }, want: []string{"filename must be valid UTF-8"}},
		{name: "filename with slash", change: func(r *upload.StartRequest) { r.Filename = "dir/clip.mp4" }, want: []string{`filename must not contain '/' or '\'`}},
		{name: "filename with backslash", change: func(r *upload.StartRequest) { r.Filename = `C:\clip.mp4` }, want: []string{`filename must not contain '/' or '\'`}},
		{name: "filename with newline", change: func(r *upload.StartRequest) { r.Filename = "clip\n.mp4" }, want: []string{"filename must not contain control characters"}},
		{name: "filename with NUL", change: func(r *upload.StartRequest) { r.Filename = "clip\x00.mp4" }, want: []string{"filename must not contain control characters"}},
		{name: "filename with DEL", change: func(r *upload.StartRequest) { r.Filename = "clip\x7f.mp4" }, want: []string{"filename must not contain control characters"}},
		{name: "filename with C1 control", change: func(r *upload.StartRequest) { r.Filename = "clip\u0085.mp4" }, want: []string{"filename must not contain control characters"}},
		{name: "filename with a bidi override", change: func(r *upload.StartRequest) { r.Filename = "clip\u202Egpj.mp4" }, want: []string{"filename must not contain invisible formatting characters"}},
		{name: "filename with a zero-width space", change: func(r *upload.StartRequest) { r.Filename = "cl\u200Bip.mp4" }, want: []string{"filename must not contain invisible formatting characters"}},
		{name: "filename with a byte order mark", change: func(r *upload.StartRequest) { r.Filename = "\uFEFFclip.mp4" }, want: []string{"filename must not contain invisible formatting characters"}},
		{name: "filename with a replacement character", change: func(r *upload.StartRequest) { r.Filename = "clip\uFFFD.mp4" }, want: []string{"filename must be valid UTF-8"}},
		{name: "contentType with a NUL in a parameter", change: func(r *upload.StartRequest) { r.ContentType = "video/mp4;a=\"\u0000\"" }, want: []string{"contentType must not contain control characters"}},
		{name: "contentType with a newline", change: func(r *upload.StartRequest) { r.ContentType = "video/mp4\r\nX-Evil: 1" }, want: []string{"contentType must not contain control characters"}},

		// contentType
		{name: "contentType not a media type", change: func(r *upload.StartRequest) { r.ContentType = "video/" }, want: []string{`contentType "video/" is not a media type`}},
		{name: "contentType two media types", change: func(r *upload.StartRequest) { r.ContentType = "video/mp4,video/webm" }, want: []string{`contentType "video/mp4,video/webm" is not a media type`}},
		{name: "contentType bad parameters", change: func(r *upload.StartRequest) { r.ContentType = "video/mp4;=x" }, want: []string{`contentType "video/mp4;=x" is not a media type`}},
		{name: "contentType without subtype", change: func(r *upload.StartRequest) { r.ContentType = "video" }, want: []string{`contentType "video" must be video/* or application/octet-stream`}},
		{name: "contentType image", change: func(r *upload.StartRequest) { r.ContentType = "image/png" }, want: []string{`contentType "image/png" must be video/* or application/octet-stream`}},
		{name: "contentType audio", change: func(r *upload.StartRequest) { r.ContentType = "audio/mpeg" }, want: []string{`contentType "audio/mpeg" must be video/* or application/octet-stream`}},
		{name: "contentType other application", change: func(r *upload.StartRequest) { r.ContentType = "application/json" }, want: []string{`contentType "application/json" must be video/* or application/octet-stream`}},

		// size
		{name: "size zero", change: func(r *upload.StartRequest) { r.Size = 0 }, want: []string{"size must be at least 1 byte, got 0"}},
		{name: "size negative", change: func(r *upload.StartRequest) { r.Size = -5 }, want: []string{"size must be at least 1 byte, got -5"}},
		{name: "size over the maximum", change: func(r *upload.StartRequest) { r.Size = upload.MaxFileSize + 1 }, want: []string{"size 256000000001 is above YouTube's limit of 256 GB (256000000000 bytes)"}},

		// destinations
		{name: "no destinations", change: func(r *upload.StartRequest) { r.Destinations = nil }, want: []string{"destinations must name at least one of youtube, s3Bucket"}},
		{name: "empty destinations", change: func(r *upload.StartRequest) { r.Destinations = []upload.DestinationRequest{} }, want: []string{"destinations must name at least one of youtube, s3Bucket"}},
		{name: "unknown destination", change: func(r *upload.StartRequest) {
			r.Destinations = append(r.Destinations, upload.DestinationRequest{Type: "vimeo"})
		}, want: []string{`destinations[2].type "vimeo" is unknown (use youtube or s3Bucket)`}},
		{name: "destination type in another case", change: func(r *upload.StartRequest) {
			r.Destinations = []upload.DestinationRequest{{Type: "S3Bucket"}}
		}, want: []string{`destinations[0].type "S3Bucket" is unknown`}},
		{name: "missing destination type", change: func(r *upload.StartRequest) {
			r.Destinations = []upload.DestinationRequest{{}}
		}, want: []string{"destinations[0].type is required (youtube or s3Bucket)"}},
		{name: "duplicate s3Bucket", change: func(r *upload.StartRequest) {
			r.Destinations = append(r.Destinations, upload.DestinationRequest{Type: upload.S3Bucket})
		}, want: []string{"destinations[2]: only one s3Bucket destination is allowed"}},
		{name: "duplicate youtube", change: func(r *upload.StartRequest) {
			r.Destinations = append(r.Destinations, r.Destinations[0])
		}, want: []string{"destinations[2]: only one youtube destination is allowed"}},

		// youtube metadata
		{name: "title missing", change: func(r *upload.StartRequest) {
			m := validMeta()
			m.Title = ""
			r.Destinations = youtubeOnly(m)
		}, want: []string{"destinations[0].title is required for a youtube destination"}},
		{name: "title with a newline", change: func(r *upload.StartRequest) {
			m := validMeta()
			m.Title = "A clip\nwith a second line"
			r.Destinations = youtubeOnly(m)
		}, want: []string{"destinations[0].title must not contain control or invisible formatting characters"}},
		{name: "description with a NUL", change: func(r *upload.StartRequest) {
			m := validMeta()
			m.Description = "text\x00more"
			r.Destinations = youtubeOnly(m)
		}, want: []string{"destinations[0].description must not contain control characters other than line breaks and tabs"}},
		{name: "tag with a control character", change: func(r *upload.StartRequest) {
			m := validMeta()
			m.Tags = []string{"news\x1b[31m"}
			r.Destinations = youtubeOnly(m)
		}, want: []string{"destinations[0].tags[0] must be non-empty and must not contain <, >, ',' or control characters"}},
		{name: "title blank", change: func(r *upload.StartRequest) {
			m := validMeta()
			m.Title = " \t "
			r.Destinations = youtubeOnly(m)
		}, want: []string{"destinations[0].title is required for a youtube destination"}},
		{name: "title too long", change: func(r *upload.StartRequest) {
			m := validMeta()
			m.Title = strings.Repeat("é", upload.MaxTitleRunes+1)
			r.Destinations = youtubeOnly(m)
		}, want: []string{"destinations[0].title must be at most 100 characters, got 101"}},
		{name: "title with <", change: func(r *upload.StartRequest) {
			m := validMeta()
			m.Title = "a <b>bold</b> title"
			r.Destinations = youtubeOnly(m)
		}, want: []string{"destinations[0].title must not contain < or >"}},
		{name: "title too long and with >", change: func(r *upload.StartRequest) {
			m := validMeta()
			m.Title = strings.Repeat(">", upload.MaxTitleRunes+1)
			r.Destinations = youtubeOnly(m)
		}, want: []string{"title must be at most 100 characters, got 101", "title must not contain < or >"}},
		{name: "description too long", change: func(r *upload.StartRequest) {
			m := validMeta()
			m.Description = strings.Repeat("d", upload.MaxDescriptionBytes+1)
			r.Destinations = youtubeOnly(m)
		}, want: []string{"destinations[0].description must be at most 5000 bytes, got 5001"}},
		{name: "description with >", change: func(r *upload.StartRequest) {
			m := validMeta()
			m.Description = "a > b"
			r.Destinations = youtubeOnly(m)
		}, want: []string{"destinations[0].description must not contain < or >"}},
		{name: "tag empty", change: func(r *upload.StartRequest) {
			m := validMeta()
			m.Tags = []string{"news", ""}
			r.Destinations = youtubeOnly(m)
		}, want: []string{"destinations[0].tags[1] must be non-empty and must not contain <, >, ',' or control characters"}},
		{name: "tag blank", change: func(r *upload.StartRequest) {
			m := validMeta()
			m.Tags = []string{"  "}
			r.Destinations = youtubeOnly(m)
		}, want: []string{"destinations[0].tags[0] must be non-empty"}},
		{name: "tag with comma", change: func(r *upload.StartRequest) {
			m := validMeta()
			m.Tags = []string{"news,sport"}
			r.Destinations = youtubeOnly(m)
		}, want: []string{"destinations[0].tags[0] must be non-empty and must not contain <, >, ',' or control characters"}},
		{name: "tag with < >", change: func(r *upload.StartRequest) {
			m := validMeta()
			m.Tags = []string{"ok", "<x>"}
			r.Destinations = youtubeOnly(m)
		}, want: []string{"destinations[0].tags[1] must be non-empty"}},
		{name: "tags too long in all", change: func(r *upload.StartRequest) {
			m := validMeta()
			m.Tags = []string{strings.Repeat("a", 250), strings.Repeat("ü", 251)}
			r.Destinations = youtubeOnly(m)
		}, want: []string{"destinations[0].tags must be at most 500 characters in all, got 501"}},
		{name: "categoryId letters", change: func(r *upload.StartRequest) {
			m := validMeta()
			m.CategoryID = "news"
			r.Destinations = youtubeOnly(m)
		}, want: []string{`destinations[0].categoryId "news" must be a YouTube category number such as "25"`}},
		{name: "categoryId negative", change: func(r *upload.StartRequest) {
			m := validMeta()
			m.CategoryID = "-25"
			r.Destinations = youtubeOnly(m)
		}, want: []string{`categoryId "-25" must be a YouTube category number`}},
		{name: "categoryId too many digits", change: func(r *upload.StartRequest) {
			m := validMeta()
			m.CategoryID = "12345"
			r.Destinations = youtubeOnly(m)
		}, want: []string{`categoryId "12345" must be a YouTube category number`}},
		{name: "privacyStatus bad", change: func(r *upload.StartRequest) {
			m := validMeta()
			m.PrivacyStatus = "secret"
			r.Destinations = youtubeOnly(m)
		}, want: []string{`destinations[0].privacyStatus "secret" must be private, unlisted or public`}},
		{name: "privacyStatus in another case", change: func(r *upload.StartRequest) {
			m := validMeta()
			m.PrivacyStatus = "Public"
			r.Destinations = youtubeOnly(m)
		}, want: []string{`privacyStatus "Public" must be private, unlisted or public`}},
		{name: "youtube second in the list", change: func(r *upload.StartRequest) {
			m := validMeta()
			m.Title = ""
			r.Destinations = []upload.DestinationRequest{{Type: upload.S3Bucket}, {Type: upload.YouTube, YouTube: m}}
		}, want: []string{"destinations[1].title is required"}},

		// ids
		{name: "atomId empty", atomID: "-", change: func(*upload.StartRequest) {}, want: []string{`atomId "-" must be 1-100 letters, digits, '-' or '_'`}},
		{name: "atomId with slash", atomID: "a/b", change: func(*upload.StartRequest) {}, want: []string{`atomId "a/b" must be 1-100 letters`}},
		{name: "atomId too long", atomID: strings.Repeat("a", 101), change: func(*upload.StartRequest) {}, want: []string{"must be 1-100 letters, digits, '-' or '_'"}},
		{name: "uploadId invalid", id: "not-an-id", change: func(*upload.StartRequest) {}, want: []string{`upload id "not-an-id" is not a valid id`}},
		{name: "uploadId lower case", id: strings.ToLower(testUploadID), change: func(*upload.StartRequest) {}, want: []string{"upload id \"" + strings.ToLower(testUploadID) + "\" is not a valid id"}},

		// every problem at once
		{
			name:   "every problem in one error",
			atomID: "_bad",
			id:     "bad",
			change: func(r *upload.StartRequest) {
				r.Filename = "a/b"
				r.ContentType = "text/plain"
				r.Size = 0
				r.Destinations = []upload.DestinationRequest{
					{Type: upload.YouTube, YouTube: upload.YouTubeMetadata{
						Description: "<p>", Tags: []string{"a,b"}, CategoryID: "x", PrivacyStatus: "everyone",
					}},
					{Type: "dropbox"},
					{Type: upload.YouTube},
					{},
				}
			},
			want: []string{
				`atomId "_bad" must be 1-100`,
				`upload id "bad" is not a valid id`,
				"filename must not contain '/'",
				`contentType "text/plain" must be video/*`,
				"size must be at least 1 byte, got 0",
				"destinations[0].title is required",
				"destinations[0].description must not contain < or >",
				"destinations[0].tags[0] must be non-empty",
				`destinations[0].categoryId "x"`,
				`destinations[0].privacyStatus "everyone"`,
				`destinations[1].type "dropbox" is unknown`,
				"destinations[2]: only one youtube destination is allowed",
				"destinations[3].type is required",
			},
		},
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, cet)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := startRequest()
			tt.change(&req)
			atomID, id := tt.atomID, tt.id
			if atomID == "" {
				atomID = testAtomID
			}
			if id == "" {
				id = testUploadID
			}
			u, err := upload.New(req, atomID, id, now, testRegion, testBucket, upload.DefaultPartSize)
			if u != nil {
				t.Errorf("New() = %+v, want nil", u)
			}
			if code := upload.ErrorCode(err); code != upload.EINVALID {
				t.Fatalf("New() error = %v (code %q), want code %q", err, code, upload.EINVALID)
			}
			msg := upload.ErrorMessage(err)
			for _, want := range tt.want {
				if !strings.Contains(msg, want) {
					t.Errorf("New() error = %q, want it to contain %q", msg, want)
				}
			}
			// Each wanted substring is one problem; nothing else is reported.
			if got, want := strings.Count(msg, "; ")+1, len(tt.want); got != want {
				t.Errorf("New() error lists %d problems, want %d: %q", got, want, msg)
			}
		})
	}
}

func TestNewAccepts(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, cet)
	wantMeta := validMeta()
	tests := []struct {
		name   string
		change func(r *upload.StartRequest)
		want   func(u *upload.Upload) // edits the record expected for startRequest()
	}{
		{name: "the contract's example", change: func(*upload.StartRequest) {}, want: func(*upload.Upload) {}},
		{name: "contentType empty defaults to octet-stream", change: func(r *upload.StartRequest) { r.ContentType = "" },
			want: func(u *upload.Upload) { u.ContentType = "application/octet-stream" }},
		{name: "contentType octet-stream", change: func(r *upload.StartRequest) { r.ContentType = "application/octet-stream" },
			want: func(u *upload.Upload) { u.ContentType = "application/octet-stream" }},
		{name: "contentType with parameters in canonical form", change: func(r *upload.StartRequest) { r.ContentType = "Video/MP4;  Codecs=avc1" },
			want: func(u *upload.Upload) { u.ContentType = "video/mp4; codecs=avc1" }},
		{name: "contentType parameter quoted as needed", change: func(r *upload.StartRequest) { r.ContentType = `video/mp4; codecs="avc1.64001F, mp4a.40.2"` },
			want: func(u *upload.Upload) { u.ContentType = `video/mp4; codecs="avc1.64001F, mp4a.40.2"` }},
		{name: "description with line breaks and tabs", change: func(r *upload.StartRequest) { r.Destinations[0].YouTube.Description = "line one\r\n\tline two" },
			want: func(u *upload.Upload) { u.Destinations[0].Meta.Description = "line one\r\n\tline two" }},
		{name: "filename of 255 bytes", change: func(r *upload.StartRequest) { r.Filename = strings.Repeat("a", 251) + ".mov" },
			want: func(u *upload.Upload) { u.Filename = strings.Repeat("a", 251) + ".mov" }},
		{name: "filename with spaces and accents", change: func(r *upload.StartRequest) { r.Filename = "Fête de la musique (final).mp4" },
			want: func(u *upload.Upload) { u.Filename = "Fête de la musique (final).mp4" }},
		{name: "one byte", change: func(r *upload.StartRequest) { r.Size = 1 },
			want: func(u *upload.Upload) { u.Size = 1 }},
		{name: "the maximum size grows the part", change: func(r *upload.StartRequest) { r.Size = upload.MaxFileSize },
			want: func(u *upload.Upload) { u.Size, u.PartSize = upload.MaxFileSize, 98*upload.ChunkAlign }},
		{name: "s3Bucket only", change: func(r *upload.StartRequest) { r.Destinations = r.Destinations[1:] },
			want: func(u *upload.Upload) { u.Destinations = u.Destinations[1:] }},
		{name: "youtube only, privacy defaults to private", change: func(r *upload.StartRequest) {
			m := validMeta()
			m.PrivacyStatus = ""
			r.Destinations = youtubeOnly(m)
		}, want: func(u *upload.Upload) {
			m := validMeta()
			m.PrivacyStatus = "private"
			u.Destinations = []upload.Destination{{Type: upload.YouTube, Status: upload.DestWaiting, Meta: &m}}
		}},
		{name: "youtube at the limits", change: func(r *upload.StartRequest) {
			r.Destinations[0].YouTube = upload.YouTubeMetadata{
				Title:         strings.Repeat("é", upload.MaxTitleRunes),
				Description:   strings.Repeat("d", upload.MaxDescriptionBytes),
				Tags:          []string{strings.Repeat("a", 250), strings.Repeat("ü", 250)},
				CategoryID:    "1234",
				PrivacyStatus: "public",
			}
		}, want: func(u *upload.Upload) {
			u.Destinations[0].Meta = &upload.YouTubeMetadata{
				Title:         strings.Repeat("é", upload.MaxTitleRunes),
				Description:   strings.Repeat("d", upload.MaxDescriptionBytes),
				Tags:          []string{strings.Repeat("a", 250), strings.Repeat("ü", 250)},
				CategoryID:    "1234",
				PrivacyStatus: "public",
			}
		}},
		{name: "youtube with only a title", change: func(r *upload.StartRequest) {
			r.Destinations[0].YouTube = upload.YouTubeMetadata{Title: "Just a title"}
		}, want: func(u *upload.Upload) {
			u.Destinations[0].Meta = &upload.YouTubeMetadata{Title: "Just a title", PrivacyStatus: "private"}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := startRequest()
			tt.change(&req)
			got, err := upload.New(req, testAtomID, testUploadID, now, testRegion, testBucket, upload.DefaultPartSize)
			if err != nil {
				t.Fatalf("New() error = %v, want nil", err)
			}
			meta := wantMeta
			want := &upload.Upload{
				ID:          testUploadID,
				AtomID:      testAtomID,
				Filename:    "clip.mp4",
				Size:        24617583,
				ContentType: "video/mp4",
				Status:      upload.StatusUploading,
				CreatedAt:   now.UTC(),
				UpdatedAt:   now.UTC(),
				Region:      testRegion,
				Bucket:      testBucket,
				PartSize:    upload.DefaultPartSize,
				Destinations: []upload.Destination{
					{Type: upload.YouTube, Status: upload.DestWaiting, Meta: &meta},
					{Type: upload.S3Bucket, Status: upload.DestWaiting},
				},
				Completed: map[int]bool{},
			}
			tt.want(want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("New() = %+v, want %+v", got, want)
				for i := range min(len(got.Destinations), len(want.Destinations)) {
					t.Logf("destination %d: got %+v meta %+v, want %+v meta %+v", i,
						got.Destinations[i], got.Destinations[i].Meta, want.Destinations[i], want.Destinations[i].Meta)
				}
			}
			if got.CreatedAt.Location() != time.UTC || got.UpdatedAt.Location() != time.UTC {
				t.Errorf("New() times = %v, %v, want them in UTC", got.CreatedAt, got.UpdatedAt)
			}
			if got.Completed == nil {
				t.Errorf("New() Completed = nil, want an empty map the worker can write to")
			}
			if got.AllPartsComplete() {
				t.Errorf("New() AllPartsComplete() = true, want false for a fresh upload")
			}
		})
	}
}

// TestNewPlansWithPreferredPartSize checks that New uses PartSize's plan.
func TestNewPlansWithPreferredPartSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		preferred int64
		size      int64
		want      int64
	}{
		{preferred: 0, size: 24617583, want: upload.MinPartSize},
		{preferred: 16 * upload.MiB, size: 24617583, want: 16 * upload.MiB},
		{preferred: 6*upload.MiB + 1, size: 24617583, want: 6*upload.MiB + upload.ChunkAlign},
	}
	for _, tt := range tests {
		req := startRequest()
		req.Size = tt.size
		u, err := upload.New(req, testAtomID, testUploadID, time.Now(), testRegion, testBucket, tt.preferred)
		if err != nil {
			t.Fatalf("New() with preferred %d error = %v, want nil", tt.preferred, err)
		}
		if u.PartSize != tt.want {
			t.Errorf("New() with preferred %d PartSize = %d, want %d", tt.preferred, u.PartSize, tt.want)
		}
		if want, _ := upload.PartSize(tt.size, tt.preferred); u.PartSize != want {
			t.Errorf("New() PartSize = %d, PartSize() = %d, want them equal", u.PartSize, want)
		}
	}
}
