//go:build !unix

package backend

var platformPermanent []error
