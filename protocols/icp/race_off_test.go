//go:build !race

package icp

// raceDetector is true in a -race build, whose instrumentation multiplies memory use and time.
const raceDetector = false
