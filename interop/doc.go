// Package interop tests our server and client against implementations we did not write.
package interop
