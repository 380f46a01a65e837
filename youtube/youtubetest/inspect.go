package youtubetest

import (
	"net/url"
	"slices"
	"time"
)

// Request kinds counted by Requests.
const (
	KindToken        = "token"        // token endpoint
	KindInitiate     = "initiate"     // session initiation
	KindChunk        = "chunk"        // chunk with bytes
	KindStatus       = "status"       // status query (bytes */total)
	KindCancel       = "cancel"       // DELETE on a session
	KindList         = "list"         // videos.list
	KindUnauthorized = "unauthorized" // refused for a missing or bad token
	KindInjected     = "injected"     // answered with an injected failure
	KindOther        = "other"        // anything else
)

// Chunk is one accepted chunk: Length bytes committed from Start.
type Chunk struct {
	Start  int64
	Length int64
}

// Video is an uploaded video as the server holds it.
type Video struct {
	ID            string
	Title         string
	Description   string
	Tags          []string
	CategoryID    string
	PrivacyStatus string
	ContentType   string // X-Upload-Content-Type of the session
	Size          int64
	SHA256        string // hex SHA-256 of the bytes committed, in order
	// Sessions counts the sessions started with the same title and
	// declared length as the one that completed, itself included: more
	// than 1 means the client restarted the upload.
	Sessions int
	// Chunks are the accepted chunks of the completing session, in order.
	Chunks []Chunk
}

// Session states reported by SessionInfo.
const (
	SessionActive    = "active"
	SessionComplete  = "complete"
	SessionCancelled = "cancelled"
	SessionExpired   = "expired"
)

// SessionInfo describes one resumable session.
type SessionInfo struct {
	UploadID  string
	Title     string
	Declared  int64 // X-Upload-Content-Length, or the total once a request gave it; -1 while unknown
	Committed int64
	State     string
	VideoID   string // when complete
	Created   time.Time
	// Receiving is set while a chunk's body is being read.
	Receiving bool
}

// Videos returns the uploaded videos in the order they were completed.
func (s *Server) Videos() []Video {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Video, 0, len(s.videoOrder))
	for _, v := range s.videoOrder {
		m := v.sess.meta
		n := 0
		for _, o := range s.order {
			if o.meta.Title == m.Title && o.declared == v.sess.declared {
				n++
			}
		}
		out = append(out, Video{
			ID:            v.id,
			Title:         m.Title,
			Description:   m.Description,
			Tags:          slices.Clone(m.Tags),
			CategoryID:    m.CategoryID,
			PrivacyStatus: m.PrivacyStatus,
			ContentType:   v.sess.contentType,
			Size:          v.sess.committed,
			SHA256:        v.sha256,
			Sessions:      n,
			Chunks:        slices.Clone(v.sess.chunks),
		})
	}
	return out
}

// Video returns the video with the given id.
func (s *Server) Video(id string) (Video, bool) {
	for _, v := range s.Videos() {
		if v.ID == id {
			return v, true
		}
	}
	return Video{}, false
}

// Sessions returns every session in creation order.
func (s *Server) Sessions() []SessionInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	out := make([]SessionInfo, 0, len(s.order))
	for _, sess := range s.order {
		info := SessionInfo{
			UploadID:  sess.id,
			Title:     sess.meta.Title,
			Declared:  sess.declared,
			Committed: sess.committed,
			State:     SessionActive,
			Created:   sess.created,
			Receiving: sess.busy,
		}
		switch {
		case sess.video != nil:
			info.State, info.VideoID = SessionComplete, sess.video.id
		case sess.cancelled:
			info.State = SessionCancelled
		case s.expired(sess, now):
			info.State = SessionExpired
		}
		out = append(out, info)
	}
	return out
}

// Violations returns the protocol violations seen, in order. A client that
// speaks the protocol correctly leaves it empty.
func (s *Server) Violations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.violations)
}

// Requests returns how many requests of each kind (Kind…) were served.
func (s *Server) Requests() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.requests))
	for k, v := range s.requests {
		out[k] = v
	}
	return out
}

// BytesReceived returns the chunk body bytes read, committed or not.
func (s *Server) BytesReceived() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.received
}

// BytesCommitted returns the chunk body bytes committed to sessions.
func (s *Server) BytesCommitted() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.committed
}

// UploadID returns the upload_id of a session URI, "" if it has none.
func UploadID(sessionURI string) string {
	u, err := url.Parse(sessionURI)
	if err != nil {
		return ""
	}
	return u.Query().Get("upload_id")
}
