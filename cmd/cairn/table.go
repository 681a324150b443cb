package main

import (
	"io"
	"strings"
)

// table prints rows in aligned columns in restic's table style: a header
// line, a line of dashes, the rows (a cell may span several lines), a
// closing line of dashes and footer lines. Columns are separated by two
// spaces and trailing blanks are trimmed.
type table struct {
	headers []string
	rows    [][]string
	footer  []string
	// blankBetween prints an empty line between rows, which restic does
	// when some cell spans several lines.
	blankBetween bool
}

func (t *table) addRow(cells ...string) { t.rows = append(t.rows, cells) }

// printTable prints a table to stdout.
func (t *terminal) printTable(tb *table) error {
	var b strings.Builder
	if err := tb.write(&b); err != nil {
		return err
	}
	if b.Len() > 0 {
		t.Print(b.String())
	}
	return nil
}

func (t *table) write(w io.Writer) error {
	if len(t.headers) == 0 {
		return nil
	}
	widths := make([]int, len(t.headers))
	measure := func(cells []string) {
		for i, c := range cells {
			for _, line := range strings.Split(c, "\n") {
				widths[i] = max(widths[i], displayWidth(line))
			}
		}
	}
	measure(t.headers)
	for _, r := range t.rows {
		measure(r)
	}
	total := 2 * (len(widths) - 1)
	for _, wd := range widths {
		total += wd
	}
	sep := strings.Repeat("-", total) + "\n"

	var b strings.Builder
	t.printRow(&b, t.headers, widths)
	b.WriteString(sep)
	for i, r := range t.rows {
		if t.blankBetween && i > 0 {
			b.WriteString("\n")
		}
		t.printRow(&b, r, widths)
	}
	b.WriteString(sep)
	for _, f := range t.footer {
		b.WriteString(f + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (t *table) printRow(b *strings.Builder, cells []string, widths []int) {
	lines := make([][]string, len(cells))
	n := 1
	for i, c := range cells {
		lines[i] = strings.Split(c, "\n")
		n = max(n, len(lines[i]))
	}
	for l := 0; l < n; l++ {
		var line strings.Builder
		for i := range cells {
			v := ""
			if l < len(lines[i]) {
				v = lines[i][l]
			}
			if i > 0 {
				line.WriteString("  ")
			}
			line.WriteString(v)
			if pad := widths[i] - displayWidth(v); pad > 0 {
				line.WriteString(strings.Repeat(" ", pad))
			}
		}
		b.WriteString(strings.TrimRight(line.String(), " ") + "\n")
	}
}
