package main

import "testing"

func TestMedianAndSpread(t *testing.T) {
	s := samples{}
	for _, v := range []float64{3, 1, 2} {
		s.add(obs{"x": v})
	}
	s.add(obs{"y": 4})
	if got := s.median("x"); got != 2 {
		t.Fatalf("median of 3, 1, 2 = %v, want 2", got)
	}
	if got := s.spread("x", "%.1f"); got != "2.0 (1.0–3.0)" {
		t.Fatalf("spread = %q", got)
	}
	if got := s.spread("y", "%.0f"); got != "4" {
		t.Fatalf("one value = %q, want it alone", got)
	}
	if got := s.spread("z", "%.0f"); got != "–" {
		t.Fatalf("no value = %q", got)
	}
	if got := median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Fatalf("median of an even count = %v, want 2.5", got)
	}
}
