package shm

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A writer that dies without Close (SIGKILL) leaves the ready flag set;
// readers must not take it for a live one.
func TestReadyNeedsALiveWriter(t *testing.T) {
	if path := os.Getenv("KDISC_SHM_WRITER"); path != "" {
		w, err := Create(path, 64<<10) // the helper process: write, then wait to be killed
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		w.SetReady(true)
		fmt.Println("ready")
		select {}
	}
	path := filepath.Join(t.TempDir(), "kubernetes")
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe, "-test.run=^TestReadyNeedsALiveWriter$")
	cmd.Env = append(os.Environ(), "KDISC_SHM_WRITER="+path)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "ready\n", line)

	r, err := Open(path)
	require.NoError(t, err)
	defer r.Close()
	assert.True(t, r.Ready(), "a live writer that said ready")

	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	// Ready reads only the header (no system call): a killed writer's
	// heartbeat goes silent, and readers notice within deadAfter.
	killed := time.Now()
	poll(t, deadAfter+time.Second, "readers to notice the writer died", func() bool { return !r.Ready() })
	t.Logf("a killed writer was noticed after %v", time.Since(killed).Round(time.Millisecond))

	w, err := Create(path, 64<<10)
	require.NoError(t, err)
	defer w.Close()
	w.SetReady(true)
	wr := w.Reader()
	defer wr.Close()
	assert.True(t, wr.Ready(), "an in-process reader of a live writer")
	assert.True(t, r.Ready(), "a new writer on the same file")
}

func TestReaderOfClosedWriterFindsNothing(t *testing.T) {
	w, err := Create("", 64<<10)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	r := w.Reader()
	_, ok := r.Lookup(nil, "a/b:c")
	assert.False(t, ok)
	assert.False(t, r.Ready())
	assert.NoError(t, r.Close())
}

func TestUnsafeTableDirIsRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "open")
	require.NoError(t, os.Mkdir(dir, 0o777))
	require.NoError(t, os.Chmod(dir, 0o777))
	_, err := Create(filepath.Join(dir, "kubernetes"), 64<<10)
	assert.ErrorContains(t, err, "writable by every user")

	target := t.TempDir()
	link := filepath.Join(t.TempDir(), "link")
	require.NoError(t, os.Symlink(target, link))
	_, err = Create(filepath.Join(link, "kubernetes"), 64<<10)
	assert.ErrorContains(t, err, "symlink")

	real := filepath.Join(t.TempDir(), "real")
	w, err := Create(real, 64<<10)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	table := filepath.Join(t.TempDir(), "kubernetes")
	require.NoError(t, os.Symlink(real, table))
	_, err = Create(table, 64<<10)
	assert.Error(t, err, "the table itself must not be a symlink")
}
