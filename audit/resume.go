package audit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// tailWindow is the most resume reads at once: a whole line, its newline
// and the newline before it.
const tailWindow = MaxLineBytes + 2

// resume finds where an existing log of size bytes continues. end is the
// size after its last newline (less than size when the last line is torn);
// prev is the hash of the last complete line, or 64 zeros when there is
// none. It reads at most two windows of tailWindow bytes from the end.
func resume(r io.ReaderAt, size int64) (end int64, prev string, err error) {
	if size == 0 {
		return 0, zeroPrev, nil
	}
	// Where do the complete lines end?
	buf, off, err := readBefore(r, size)
	if err != nil {
		return 0, "", err
	}
	i := bytes.LastIndexByte(buf, '\n')
	switch {
	case i >= 0:
		end = off + int64(i) + 1
	case off == 0:
		return 0, zeroPrev, nil // the whole file is one torn line
	default:
		return 0, "", fmt.Errorf("last line is longer than %d bytes", MaxLineBytes)
	}
	// The last complete line ends with the newline at end-1. Unless a torn
	// line follows it, the first window already ends there.
	if end < size {
		if buf, off, err = readBefore(r, end); err != nil {
			return 0, "", err
		}
	}
	content := buf[:len(buf)-1]
	last := content
	if j := bytes.LastIndexByte(content, '\n'); j >= 0 {
		last = content[j+1:]
	} else if off > 0 {
		return 0, "", fmt.Errorf("last line is longer than %d bytes", MaxLineBytes)
	}
	if len(last) > MaxLineBytes {
		return 0, "", fmt.Errorf("last line is longer than %d bytes", MaxLineBytes)
	}
	if _, reason := linePrev(last); reason != "" {
		return 0, "", fmt.Errorf("last line is not an audit record (%s)", reason)
	}
	return end, hashLine(last), nil
}

// readBefore reads the at most tailWindow bytes that end at end, and says
// where they start.
func readBefore(r io.ReaderAt, end int64) ([]byte, int64, error) {
	off := max(end-tailWindow, 0)
	buf := make([]byte, end-off)
	n, err := r.ReadAt(buf, off)
	if n == len(buf) {
		err = nil // ReadAt may say io.EOF with a full read at the end
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF // the file shrank under us
		}
		return nil, 0, fmt.Errorf("read last line: %w", err)
	}
	return buf, off, nil
}
