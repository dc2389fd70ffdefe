// Package delta makes and applies compact, signed delta packages between firmware images.
package delta
