package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/kdisc/kdisc"
	"github.com/kdisc/kdisc/config"
	"github.com/kdisc/kdisc/dump"
	"github.com/kdisc/kdisc/shm"
)

// watchEvery is how often `kdisc nodes -w` looks the service up again: a
// lookup is a few atomic loads and no system call, and a change is
// printed within this (well under the 100 ms the contract allows).
const watchEvery = 20 * time.Millisecond

// watchNodes is `kdisc nodes -w`: print the answer line now and again
// whenever it changes ([] while not found), until SIGINT or SIGTERM. It
// reads the tables only.
func watchNodes(cfg *config.Config, shmDir, service string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d, err := kdisc.Attach(shmDir, cfg, trustedUIDs()...)
	if err != nil {
		fmt.Fprintf(stderr, "kdisc nodes: %v\n", err)
		return exitError
	}
	defer d.Close()
	tick := time.NewTicker(watchEvery)
	defer tick.Stop()
	var (
		buf        []kdisc.Node
		line, last []byte
		lastAnswer kdisc.Answer
	)
	for first := true; ; first = false {
		nodes, answer := d.Lookup(buf[:0], service)
		buf = nodes
		line = line[:0]
		if answer == kdisc.Found {
			line = shm.AppendNodesJSON(line, nodes)
		} else {
			line = append(line, "[]"...)
		}
		line = append(line, '\n')
		if first || !bytes.Equal(line, last) {
			if _, err := stdout.Write(line); err != nil {
				fmt.Fprintf(stderr, "kdisc nodes: %v\n", err)
				return exitError
			}
			last = append(last[:0], line...)
		}
		if answer != kdisc.Found && (first || answer != lastAnswer) {
			fmt.Fprintf(stderr, "kdisc nodes: %s not found: %s\n", service, answer)
		}
		lastAnswer = answer
		select {
		case <-ctx.Done():
			return exitOK
		case <-tick.C:
		}
	}
}

// writeDump prints the dump as format says: json (one line, as the
// control API) or table.
func writeDump(stdout io.Writer, d dump.Dump, format string) error {
	if format == "table" {
		return dump.WriteTable(stdout, d)
	}
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	return enc.Encode(d)
}

// checkOutput validates -o.
func checkOutput(format string) error {
	if format != "json" && format != "table" {
		return fmt.Errorf("-o: %q: want json or table", format)
	}
	return nil
}
