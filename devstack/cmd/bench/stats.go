package main

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
)

// obs are the values one run of a measurement observed, by name.
type obs map[string]float64

// samples are the values of every run, by name, in run order.
type samples map[string][]float64

func (s samples) add(o obs) {
	for k, v := range o {
		s[k] = append(s[k], v)
	}
}

// median of the named values; 0 when there are none.
func (s samples) median(name string) float64 { return median(s[name]) }

// spread formats the named values as "median (min–max)", each with the
// format; one value stands alone.
func (s samples) spread(name, format string) string { return spread(s[name], format) }

// n is how many runs gave the named value.
func (s samples) n(name string) int { return len(s[name]) }

// names with the prefix, sorted.
func (s samples) names(prefix string) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(s)) {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	return out
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func spread(v []float64, format string) string {
	switch len(v) {
	case 0:
		return "–"
	case 1:
		return fmt.Sprintf(format, v[0])
	}
	return fmt.Sprintf(format+" ("+format+"–"+format+")", median(v), slices.Min(v), slices.Max(v))
}
