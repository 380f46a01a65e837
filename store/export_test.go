package store

// SetListMaxExamined changes how many uploads a filtered List examines
// before it stops with a cursor, for the test's duration.
func SetListMaxExamined(n int) (restore func()) {
	old := listMaxExamined
	listMaxExamined = n
	return func() { listMaxExamined = old }
}
