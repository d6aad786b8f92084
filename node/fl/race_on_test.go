//go:build race

package fl

// raceDetector is true in a -race build, whose instrumentation multiplies memory use.
const raceDetector = true
